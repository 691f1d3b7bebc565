# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The nginx_proxy role's inputs, checked before any file is written: one message per failed check.

``nginx_proxy_problems(values)`` takes the ``nginx_proxy_*`` variables (``INPUTS``: every one the
checks read) and returns a list of ``(check, message)`` for the checks that fail, in a fixed order, and
nothing for the others. ``check`` is the option checked (or the group: ``durations``, ``paths``,
``ports``, ``certbot``, ``systemd drop-in``, ``mode system``). Every value the templates render
(templates/nginx/*.j2, templates/systemd/nginx-restart.conf.j2) is checked with its kind's checker of
``nginx/values.py``, in every mode that renders it: a value that passes cannot become nginx syntax.

Plain Python, unit-tested in tests/unit/test_nginx_inputs.py (hostile values with hypothesis, the
templates rendered with what passes); roles/nginx_proxy/tasks/checks.yml calls it through the filter
``fediverse.object_storage.nginx_proxy_problems`` (plugins/filter/nginx_inputs.py).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import posixpath

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.values import is_valid, refused

APPS = ("mastodon", "misskey")
MODES = ("subdomain", "directory", "system")
# Paths the application serves itself: never the directory mode's prefix (/system/ is mode system).
APP_PATHS = ("/system/", "/files/", "/api/", "/packs/", "/assets/")
SYSTEMD_RESTART = ("no", "always", "on-success", "on-failure", "on-abnormal", "on-abort", "on-watchdog")
DURATIONS = ("nginx_proxy_cache_inactive", "nginx_proxy_cache_valid", "nginx_proxy_cache_valid_other",
             "nginx_proxy_resolver_valid", "nginx_proxy_resolver_timeout")
PATHS = ("nginx_proxy_cache_path", "nginx_proxy_upstream_ca_file", "nginx_proxy_ssl_certificate",
         "nginx_proxy_ssl_certificate_key", "nginx_proxy_acme_webroot", "nginx_proxy_snippets_dir",
         "nginx_proxy_sites_available_dir", "nginx_proxy_conf_d_dir")

# Every variable the checks read (checks.yml passes exactly these).
INPUTS = tuple(sorted(set(DURATIONS + PATHS + (
    "nginx_proxy_app", "nginx_proxy_mode", "nginx_proxy_name", "nginx_proxy_bucket", "nginx_proxy_s3_endpoint",
    "nginx_proxy_cache_max_size", "nginx_proxy_cache_keys_zone_size", "nginx_proxy_cache_levels",
    "nginx_proxy_local_root", "nginx_proxy_resolvers", "nginx_proxy_cors_origin", "nginx_proxy_extra_headers",
    "nginx_proxy_hide_headers", "nginx_proxy_domain", "nginx_proxy_listen_address", "nginx_proxy_http_port",
    "nginx_proxy_https_port", "nginx_proxy_certbot", "nginx_proxy_certbot_email", "nginx_proxy_directory_path",
    "nginx_proxy_systemd_dropin", "nginx_proxy_systemd_restart", "nginx_proxy_systemd_restart_sec"))))


def _flag(value):
    """Ansible's ``| bool``: true, yes, on, 1 (any case) and 1 are true; everything else is false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.strip().lower() in ("yes", "on", "1", "true")
    return value == 1


def _is_list(value):
    return isinstance(value, (list, tuple))


def _app(v):
    app, mode = v.get("nginx_proxy_app"), v.get("nginx_proxy_mode")
    yield ("nginx_proxy_app", app in APPS, "nginx_proxy_app must be mastodon or misskey, not '%s'" % (app,))
    yield ("nginx_proxy_mode", mode in MODES,
           "nginx_proxy_mode must be subdomain, directory or system, not '%s'" % (mode,))
    yield ("mode system", mode != "system" or app == "mastodon",
           "nginx_proxy_mode=system is for Mastodon only: Misskey serves its local files at /files from the "
           "application itself (not a static directory nginx could serve first), so there is nothing to replace. "
           "Use nginx_proxy_mode=subdomain or directory for Misskey.")


def _bucket(v):
    name, bucket, endpoint = v.get("nginx_proxy_name"), v.get("nginx_proxy_bucket"), v.get("nginx_proxy_s3_endpoint")
    yield ("nginx_proxy_name", isinstance(name, str) and is_valid(name, "zone_name"),
           "nginx_proxy_name must be 1-32 characters a-z, 0-9, _ starting with a letter, not '%s'" % (name,))
    yield ("nginx_proxy_bucket", isinstance(bucket, str) and is_valid(bucket, "bucket"),
           "nginx_proxy_bucket must be a bucket name of 3-63 lowercase letters, digits and hyphens (no dots: a "
           "dotted name breaks the endpoint's wildcard TLS certificate), not '%s'" % (bucket,))
    yield ("nginx_proxy_s3_endpoint", isinstance(endpoint, str) and is_valid(endpoint, "s3_endpoint"),
           "nginx_proxy_s3_endpoint must be an https URL, a host[:port] or a Vultr cluster name such as ewr1 (the "
           "proxy always talks TLS to the bucket), not '%s'" % (endpoint,))


def _cache(v):
    max_size, zone_size = v.get("nginx_proxy_cache_max_size"), v.get("nginx_proxy_cache_keys_zone_size")
    levels = v.get("nginx_proxy_cache_levels")
    yield ("nginx_proxy_cache_max_size", is_valid(max_size, "size"),
           "nginx_proxy_cache_max_size must be a size such as 20g or 500m, not '%s'" % (max_size,))
    yield ("nginx_proxy_cache_keys_zone_size", is_valid(zone_size, "size"),
           "nginx_proxy_cache_keys_zone_size must be a size such as 10m, not '%s'" % (zone_size,))
    yield ("nginx_proxy_cache_levels", is_valid(levels, "cache_levels"),
           "nginx_proxy_cache_levels must be like 1, 1:2 or 1:2:2, not '%s'" % (levels,))
    durations = [v.get(name) for name in DURATIONS]
    yield ("durations", all(is_valid(d, "time") for d in durations),
           "nginx_proxy_cache_inactive, nginx_proxy_cache_valid, nginx_proxy_cache_valid_other, "
           "nginx_proxy_resolver_valid and nginx_proxy_resolver_timeout must be nginx times such as 48h, 5m or 100s "
           "(got %s)" % ", ".join("%s" % (d,) for d in durations))


def _paths(v):
    bad = [name for name in PATHS if not is_valid(v.get(name), "path")]
    yield ("paths", not bad,
           "%s must be absolute paths without spaces, quotes, ;, braces, $, # or control characters (they are "
           "written into nginx's configuration)" % ", ".join(bad))
    root = v.get("nginx_proxy_local_root")
    yield ("nginx_proxy_local_root", root == "" or is_valid(root, "path"),
           "nginx_proxy_local_root must be an absolute path without spaces, quotes, ;, braces, $, # or control "
           "characters (or empty), not '%s'" % (root,))
    cache = v.get("nginx_proxy_cache_path")
    yield ("local_root_cache", not _overlap(root, cache),
           "nginx_proxy_local_root (%s) and nginx_proxy_cache_path (%s) must not be the same directory or one inside "
           "the other: nginx would serve its raw cache files (any object it cached, with the bucket's headers) "
           "as local media" % (root, cache))


def _overlap(root, cache):
    """Whether two absolute paths are the same directory or one lies below the other (by their names:
    both are written into nginx's configuration as they are)."""
    if not (isinstance(root, str) and isinstance(cache, str) and root.startswith("/") and cache.startswith("/")):
        return False
    a, b = [posixpath.normpath(p).rstrip("/") + "/" for p in (root, cache)]
    return a.startswith(b) or b.startswith(a)


def _headers(v):
    resolvers = v.get("nginx_proxy_resolvers")
    refused_resolvers = refused(resolvers, "address")
    yield ("nginx_proxy_resolvers", _is_list(resolvers) and len(resolvers) > 0 and not refused_resolvers,
           "nginx_proxy_resolvers must be a non-empty list of DNS servers, each an address or host name with an "
           "optional port such as 1.1.1.1, [2606:4700::1111] or 127.0.0.1:5353 (nginx resolves the bucket's name "
           "at request time); refused: %s" % (refused_resolvers,))
    origin = v.get("nginx_proxy_cors_origin")
    yield ("nginx_proxy_cors_origin", is_valid(origin, "cors_origin"),
           "nginx_proxy_cors_origin must be *, null or one origin such as https://example.social (scheme, host, "
           "optional port), not '%s'" % (origin,))
    extra = v.get("nginx_proxy_extra_headers")
    pairs = extra if isinstance(extra, dict) else {}
    bad_names, bad_values = refused(list(pairs), "header_name"), refused(list(pairs.values()), "header_value")
    yield ("nginx_proxy_extra_headers", isinstance(extra, dict) and not bad_names and not bad_values,
           "nginx_proxy_extra_headers must map header names (letters, digits and -) to values without double "
           "quotes, backslashes, $, braces or control characters (they are rendered inside double quotes); "
           "refused names: %s, refused values: %s" % (bad_names, bad_values))
    hide = v.get("nginx_proxy_hide_headers")
    refused_hide = refused(hide, "header_name")
    yield ("nginx_proxy_hide_headers", _is_list(hide) and not refused_hide,
           "nginx_proxy_hide_headers must be a list of header names (letters, digits and -); refused: %s"
           % (refused_hide,))


def _server(v):
    mode, domain = v.get("nginx_proxy_mode"), v.get("nginx_proxy_domain")
    domain_ok = isinstance(domain, str) and is_valid(domain, "dns_name")
    yield ("nginx_proxy_domain", mode != "subdomain" or domain_ok,
           "nginx_proxy_mode=subdomain needs nginx_proxy_domain, a DNS name such as s3.example.com (got '%s')"
           % (domain,))
    # Modes directory and system render it too (if ($host != "DOMAIN") in the app's server block).
    yield ("nginx_proxy_domain (modes directory and system)", mode == "subdomain" or domain == "" or domain_ok,
           "nginx_proxy_domain must be empty or a DNS name such as example.social (the only host name the media "
           "are served under; it is written into nginx's configuration), not '%s'" % (domain,))
    listen = v.get("nginx_proxy_listen_address")
    yield ("nginx_proxy_listen_address", listen == "" or is_valid(listen, "listen_address"),
           "nginx_proxy_listen_address must be empty, an IPv4 address, [IPv6] or a host name, not '%s'" % (listen,))
    http, https = v.get("nginx_proxy_http_port"), v.get("nginx_proxy_https_port")
    ports_ok = is_valid(http, "port") and is_valid(https, "port") and int(http) != int(https)
    yield ("ports", mode != "subdomain" or ports_ok,
           "nginx_proxy_http_port and nginx_proxy_https_port must be two different ports 1-65535")
    yield ("certbot", not _flag(v.get("nginx_proxy_certbot")) or bool(v.get("nginx_proxy_certbot_email")),
           "nginx_proxy_certbot needs nginx_proxy_certbot_email (Let's Encrypt account)")
    path = v.get("nginx_proxy_directory_path")
    yield ("nginx_proxy_directory_path", mode != "directory" or (is_valid(path, "directory_path")
                                                                 and path not in APP_PATHS),
           "nginx_proxy_directory_path must look like /storage/ (slashes around, letters, digits, _ and -) and must "
           "not be a path the application serves itself (/system/ is mode system), not '%s'" % (path,))


def _systemd(v):
    restart, restart_sec = v.get("nginx_proxy_systemd_restart"), v.get("nginx_proxy_systemd_restart_sec")
    yield ("systemd drop-in", not _flag(v.get("nginx_proxy_systemd_dropin"))
           or (restart in SYSTEMD_RESTART and is_valid(restart_sec, "systemd_time")),
           "nginx_proxy_systemd_restart must be a systemd Restart= value and nginx_proxy_systemd_restart_sec a time "
           "such as 5 or 5s")


_CHECKS = (_app, _bucket, _cache, _paths, _headers, _server, _systemd)


def nginx_proxy_problems(values):
    """One ``(check, message)`` for each failed check of ``values`` (the nginx_proxy_* variables), in order."""
    values = dict(values)
    return [(name, message) for check in _CHECKS for name, ok, message in check(values) if not ok]
