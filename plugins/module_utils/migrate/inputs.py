# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inputs of playbooks/migrate.yml, checked before anything changes: one message per bad input.

``input_problems(values)`` takes the ``migrate_*`` variables as the user set them (or their defaults)
and returns a list of ``(variable, message)``, one pair for each input that is wrong and nothing for
the others. Each message starts with the variable's name, says what was given and what is accepted.
An input derived from another one (``migrate_media_domain`` defaults to ``s3.`` + ``migrate_domain``)
is not reported again when the input it comes from is the wrong one. No request is sent: an unknown
Vultr cluster name is refused here, with the list of clusters, not after the S3 client's retries.

``in_user_words(message)`` turns the module options a module's message names (``access_key``,
``db_password``, ``misskey_dir``) into the ``migrate_*`` variables that feed them.

Plain Python, unit-tested in tests/unit/test_migrate_inputs.py; the migrate role calls it through
the filters of plugins/filter/migrate_inputs.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import (
    BucketNameError,
    validate_bucket_name,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.media_plan import default_media_domain
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.values import is_valid
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import S3ConfigError, resolve_endpoint

APPS = ("mastodon", "misskey")
PROXY_MODES = ("subdomain", "directory", "system")
COPY_SCOPES = ("cache", "local")

# An https URL or a host, with an optional port; the host is a DNS name (nginx_values' one checker).
_MEDIA_HOST = re.compile(r"(?:https://)?([^:/]*)(?::[0-9]{1,5})?")


def _shown(value, limit=80):
    """A value as the message shows it: repr (a newline is visible), cut when long."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _is_list(value):
    return isinstance(value, (list, tuple))


def _integer(value):
    """An int from an int or a string of digits (``-e name=3`` gives a string); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
        return int(value)
    return None


def _dns_name(value):
    return isinstance(value, str) and is_valid(value, "dns_name")


def _media_host(value):
    match = _MEDIA_HOST.fullmatch(value) if isinstance(value, str) else None
    return match is not None and _dns_name(match.group(1))


def _check_app(values, problems):
    app = values.get("migrate_app")
    if app not in APPS:
        problems.append(("migrate_app", "migrate_app must be mastodon or misskey, not %s." % _shown(app)))
    mode = values.get("migrate_proxy_mode")
    if mode not in PROXY_MODES:
        problems.append(("migrate_proxy_mode", "migrate_proxy_mode must be subdomain, directory or system, not %s."
                         % _shown(mode)))
    elif mode == "system" and app == "misskey":
        problems.append(("migrate_proxy_mode",
                         "migrate_proxy_mode=system does not apply to Misskey (it replaces Mastodon's /system "
                         "directory; Misskey serves its local files at /files itself): use subdomain or directory."))


def _check_names(values, problems):
    domain = values.get("migrate_domain")
    domain_ok = _dns_name(domain)
    if domain in (None, ""):
        problems.append(("migrate_domain", "migrate_domain is required: the app's DNS name, such as example.social."))
    elif not domain_ok:
        problems.append(("migrate_domain", "migrate_domain must be a DNS name such as example.social, not %s."
                         % _shown(domain)))
    media = values.get("migrate_media_domain")
    # Empty: the default s3.<migrate_domain> (media_plan), wrong only because migrate_domain is: reported once, above.
    if media in (None, "") and isinstance(domain, str):
        media = default_media_domain(domain)
    derived = isinstance(domain, str) and media == default_media_domain(domain)
    if values.get("migrate_proxy_mode") == "subdomain" and (domain_ok or not derived):
        if not _dns_name(media):
            problems.append(("migrate_media_domain",
                             "migrate_media_domain (the media host of mode subdomain) must be a DNS name such as "
                             "s3.example.social, not %s." % _shown(media)))
        elif domain_ok and media.lower() == domain.lower():
            problems.append(("migrate_media_domain",
                             "migrate_media_domain must be a DNS name other than migrate_domain (%s): the media "
                             "proxy gets its own server block, the app's name stays the app's." % domain))
    hosts = values.get("migrate_extra_media_hosts")
    if not _is_list(hosts):
        problems.append(("migrate_extra_media_hosts",
                         "migrate_extra_media_hosts must be a list of https URLs or host names, not %s."
                         % _shown(hosts)))
    else:
        refused = [h for h in hosts if not _media_host(h)]
        if refused:
            problems.append(("migrate_extra_media_hosts",
                             "migrate_extra_media_hosts refused %s: each must be an https URL or a host name such "
                             "as https://media.example.com." % ", ".join(_shown(h) for h in refused)))


def _check_storage(values, problems):
    bucket = values.get("migrate_bucket")
    if bucket in (None, ""):
        problems.append(("migrate_bucket", "migrate_bucket is required: the bucket's name, such as "
                         "example-social-media."))
    else:
        try:
            validate_bucket_name(bucket)
        except BucketNameError as exc:
            problems.append(("migrate_bucket", "migrate_bucket: %s" % exc))
    endpoint = values.get("migrate_endpoint")
    try:
        resolve_endpoint(endpoint)
    except S3ConfigError as exc:
        problems.append(("migrate_endpoint", "migrate_endpoint: %s." % str(exc).rstrip(".")))
    access = values.get("migrate_access_key") or ""
    secret = values.get("migrate_secret_key") or ""
    if access and not secret:
        problems.append(("migrate_secret_key", "migrate_secret_key is empty while migrate_access_key is set: give "
                         "both (or AWS_SECRET_ACCESS_KEY in the environment)."))
    elif secret and not access:
        problems.append(("migrate_access_key", "migrate_access_key is empty while migrate_secret_key is set: give "
                         "both (or AWS_ACCESS_KEY_ID in the environment)."))
    elif not access and not values.get("migrate_vultr_api_key"):
        problems.append(("migrate_access_key",
                         "no S3 keys: set migrate_access_key and migrate_secret_key (or AWS_ACCESS_KEY_ID and "
                         "AWS_SECRET_ACCESS_KEY in the environment, as the AWX credential does), or "
                         "migrate_vultr_api_key (VULTR_API_KEY) to create the Object Storage subscription."))


def _check_copy(values, problems):
    scope = values.get("migrate_copy_scope")
    if not _is_list(scope) or any(s not in COPY_SCOPES for s in scope):
        problems.append(("migrate_copy_scope", "migrate_copy_scope must be a list of cache and/or local, such as "
                         "[cache, local], not %s." % _shown(scope)))
    count = _integer(values.get("migrate_shard_count"))
    index = _integer(values.get("migrate_shard_index"))
    if count is None or count < 1:
        problems.append(("migrate_shard_count", "migrate_shard_count must be a whole number of 1 or more, not %s."
                         % _shown(values.get("migrate_shard_count"))))
    elif index is None or not 0 <= index < count:
        given = _shown(values.get("migrate_shard_index"))
        problems.append(("migrate_shard_index", "migrate_shard_index must be a whole number from 0 to %d "
                         "(migrate_shard_count is %d), not %s." % (count - 1, count, given)))


def input_problems(values):
    """One ``(variable, message)`` for each wrong input of ``values`` (the migrate_* variables)."""
    problems = []
    for check in (_check_app, _check_names, _check_storage, _check_copy):
        check(values, problems)
    return problems


# What a module's message calls the option a migrate_* variable feeds, and that variable.
_MODULE_WORDS = (
    ("Check access_key/secret_key.",
     "Check migrate_access_key/migrate_secret_key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)."),
    ("check db_user/db_password (or DB_USER/DB_PASS)",
     "check migrate_db_user/migrate_db_password (or DB_USER/DB_PASS in migrate_env_file)"),
    ("(misskey_dir) or the version (misskey_version)",
     "(migrate_misskey_dir) or the version (migrate_misskey_version)"),
)


def in_user_words(message):
    """``message`` with the module options it names replaced by the migrate_* variables that feed them."""
    text = str(message)
    for module_words, user_words in _MODULE_WORDS:
        text = text.replace(module_words, user_words)
    return text
