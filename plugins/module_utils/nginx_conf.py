# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading what a live nginx already serves (the output of ``nginx -T``), and Mastodon's version.

Plain Python, unit-tested in tests/unit/test_nginx_conf.py; used by the migrate role's pre-flight
through the filters in plugins/filter/nginx_conflicts.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import os
import re

_FILE_RE = re.compile(r"^# configuration file (.+?):\s*$", re.M)
# The zone-carrying *_cache_path directives: a zone's files must not sit inside another's path.
_CACHE_PATH_RE = re.compile(r"\b(proxy|fastcgi|uwsgi|scgi)_cache_path\s+(\"[^\"]*\"|'[^']*'|[^\s;]+)([^;]*);")
_KEYS_ZONE_RE = re.compile(r"\bkeys_zone=([^:\s;]+)")
_SERVER_NAME_RE = re.compile(r"\bserver_name\s+([^;]*);")


def _strip_comments(text):
    """nginx comments run from an unquoted # to the end of the line."""
    out = []
    for line in text.splitlines():
        quote = None
        for i, ch in enumerate(line):
            if quote:
                if ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "#":
                line = line[:i]
                break
        out.append(line)
    return "\n".join(out)


def split_dump(text):
    """``nginx -T`` output as a list of (file path, file text without comments)."""
    parts = []
    matches = list(_FILE_RE.finditer(text or ""))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        parts.append((m.group(1), text[m.end():end]))
    return parts


def _unquote(value):
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _norm(path):
    return os.path.normpath(path).rstrip("/") or "/"


def server_names(text, ignore_files=()):
    """{server name (lower case): [files serving it]} of every server_name in the dump, except in
    the files named in ``ignore_files`` (paths or base names)."""
    found = {}
    ignore = set(ignore_files or ())
    for path, body in split_dump(text):
        if path in ignore or os.path.basename(path) in ignore:
            continue
        for m in _SERVER_NAME_RE.finditer(_strip_comments(body)):
            for name in m.group(1).split():
                found.setdefault(_unquote(name).lower(), []).append(path)
    return found


def cache_paths(text):
    """[(directive, path, keys zone name, file)] of every *_cache_path in the dump."""
    found = []
    for path, body in split_dump(text):
        for m in _CACHE_PATH_RE.finditer(_strip_comments(body)):
            zone = _KEYS_ZONE_RE.search(m.group(3))
            found.append((m.group(1) + "_cache_path", _unquote(m.group(2)), zone.group(1) if zone else "", path))
    return found


def conflicts(text, names=(), cache_path="", own_zone="", ignore_files=()):
    """Reasons (strings) why a proxy with server names ``names`` and cache ``cache_path`` (zone
    ``own_zone``) cannot be added to the nginx whose ``nginx -T`` output is ``text``. Empty: none."""
    problems = []
    served = server_names(text, ignore_files)
    for name in names or ():
        if name and name.lower() in served:
            problems.append(
                "server_name %s is already served by %s: a second server block with the same name on the same "
                "ports is a 'conflicting server name' and nginx picks one of them. Choose another media host name "
                "(migrate_media_domain) or remove that site first." % (name, ", ".join(sorted(set(served[name.lower()])))))
    if cache_path:
        ours = _norm(cache_path)
        for directive, other, zone, path in cache_paths(text):
            if own_zone and zone == own_zone:
                continue
            theirs = _norm(other)
            if ours == theirs:
                how = "is the same directory as"
            elif ours.startswith(theirs.rstrip("/") + "/"):
                how = "is inside"
            elif theirs.startswith(ours.rstrip("/") + "/"):
                how = "contains"
            else:
                continue
            problems.append(
                "the proxy cache path %s %s the path %s of %s keys_zone=%s (%s): nginx's cache loader would adopt "
                "the other zone's files after a restart and its manager would delete them. Choose a cache path "
                "outside every other cache (nginx_proxy_cache_path)." % (cache_path, how, other, directive, zone, path))
    return problems


_VERSION_PART_RE = {part: re.compile(r"def\s+%s\s*\n?\s*(\d+)\s*\n?\s*end" % part) for part in ("major", "minor", "patch")}


def mastodon_version(text):
    """(major, minor, patch) from Mastodon's lib/mastodon/version.rb, or None when it is not there."""
    parts = []
    for part in ("major", "minor", "patch"):
        m = _VERSION_PART_RE[part].search(text or "")
        if not m:
            return None
        parts.append(int(m.group(1)))
    return tuple(parts)
