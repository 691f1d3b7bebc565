# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The values the nginx templates (templates/nginx/*.j2) render, checked before they are written.

One checker per kind of value. A value that passes cannot become nginx syntax where the template
puts it: no whitespace (nginx's token separators are space, tab, CR and LF; other Unicode spaces
and line separators are refused too), no ``;``, ``{``, ``}``, quotes, ``\\``, ``$`` or ``#`` unless
the kind allows it where it is rendered (a header value, inside double quotes, may hold ``;``, ``#``
and ``'``). Every pattern is matched whole (``fullmatch``): a trailing newline is never accepted.

The one rule set per kind: a bucket name is ``bucket_rules.bucket_name_problems`` (the rules of the
bucket module and of the ``bucket_name_error`` filter), a DNS name is checked here for the nginx_proxy
role and for migrate.yml's inputs (``migrate/inputs.py``).

Plain Python, unit-tested in tests/unit/test_nginx_values.py and (hostile values, hypothesis)
tests/unit/test_nginx_inputs.py; the nginx_proxy role's checks (``nginx/inputs.py``) call it, and the
filter plugins/filter/nginx_refused.py (``values | fediverse.object_storage.nginx_refused('path')``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import bucket_name_problems

# Characters that are nginx syntax outside quotes (or start a variable, or a comment).
_NGINX_SPECIAL = frozenset(" \t\r\n;{}\"'\\$#")
# Inside a double-quoted string: what ends it, escapes, or starts a variable.
_QUOTED_SPECIAL = frozenset("\"\\${}")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
_PORT = r"(?::[0-9]{1,5})?"

_PATTERNS = {
    # 20g, 500m, 10m, 1024
    "size": r"[0-9]+[kKmMgG]?",
    # nginx time: 48h, 5m, 100s, 500ms
    "time": r"[0-9]+(?:ms|s|m|h|d|w|M|y)?",
    "cache_levels": r"[12](?::[12]){0,2}",
    # nginx_proxy_name: the zone, the named locations, the variable and the file names
    "zone_name": r"[a-z][a-z0-9_]{0,31}",
    "s3_endpoint": r"(?:https://)?[A-Za-z0-9.-]+" + _PORT + r"/?",
    # two labels at least: s3.example.com
    "dns_name": _LABEL + r"(?:\." + _LABEL + r")+",
    # a resolver: IPv4, [IPv6] or host name, optional port
    "address": r"(?:[0-9.]+|\[[0-9A-Fa-f:.]+\]|" + _HOST + r")" + _PORT,
    # listen address (the port is rendered by the template)
    "listen_address": r"(?:[0-9.]+|\[[0-9A-Fa-f:.]+\]|" + _HOST + r")",
    "header_name": r"[A-Za-z0-9][A-Za-z0-9-]{0,63}",
    "cors_origin": r"\*|null|https?://" + _HOST + _PORT,
    # /storage/ (directory mode's URL prefix)
    "directory_path": r"/(?:[A-Za-z0-9_-]+/)+",
    "port": r"[0-9]{1,5}",
    # systemd's RestartSec= (templates/systemd/nginx-restart.conf.j2): 5, 5s, 500ms, 1min
    "systemd_time": r"[0-9]+(?:ms|s|min)?",
}
_COMPILED = {kind: re.compile(pattern) for kind, pattern in _PATTERNS.items()}


def _text(value):
    """The value as nginx would see it rendered, or None when it is not a scalar Jinja renders as is."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def _path(text):
    """An absolute path rendered bare (ssl_certificate PATH;, alias PATH/;) and in comments."""
    return text.startswith("/") and text.isprintable() and not _NGINX_SPECIAL.intersection(text)


def _header_value(text):
    """Rendered inside double quotes: add_header NAME "VALUE";"""
    return text.isprintable() and not _QUOTED_SPECIAL.intersection(text)


def _port(text):
    return bool(_COMPILED["port"].fullmatch(text)) and 0 < int(text) < 65536


def _dns_name(text):
    return len(text) <= 253 and bool(_COMPILED["dns_name"].fullmatch(text))


def _bucket(text):
    """The bucket module's own rules (bucket/rules.py), which also refuse the dots that would break the
    endpoint's wildcard certificate (BUCKET.ewr1.vultrobjects.com): 3-63 of a-z, 0-9 and -."""
    return not bucket_name_problems(text)


_FUNCTIONS = {
    "bucket": _bucket,
    "path": _path,
    "header_value": _header_value,
    "port": _port,
    "dns_name": _dns_name,
}

KINDS = tuple(sorted(set(_PATTERNS) | set(_FUNCTIONS)))


def is_valid(value, kind):
    """True when ``value`` is a ``kind`` that can be rendered into nginx's configuration as is."""
    if kind not in KINDS:
        raise ValueError("unknown kind of nginx value %r (known: %s)" % (kind, ", ".join(KINDS)))
    text = _text(value)
    if text is None:
        return False
    check = _FUNCTIONS.get(kind)
    if check is not None:
        return bool(check(text))
    return bool(_COMPILED[kind].fullmatch(text))


def refused(values, kind):
    """The items of ``values`` (a list, or one value) that are not a valid ``kind``, in their order."""
    items = list(values) if isinstance(values, (list, tuple)) else [values]
    return [item for item in items if not is_valid(item, kind)]
