# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The values the Misskey /files/ fallback writes into nginx's configuration, checked (issue 20).

``templates/nginx/misskey-files.conf.j2`` renders Misskey's stored ``objectStorageBaseUrl`` and
``objectStoragePrefix`` (rows the app's admin - or anyone who can write the database - controls), the
role's ``misskey_files_upstream`` and the snippet's path into nginx syntax: a comment line, a
``proxy_pass`` and a quoted ``rewrite`` replacement, and an ``include`` line in the site file. Every
value is matched whole (``re.fullmatch``: ``$`` in a pattern would also accept a final newline, which
ends the comment line and lets the rest of the value become directives) against a set of characters
that nginx reads as plain text in all of those places: no whitespace, control character, ``;``,
quotes, braces, ``$``, ``#`` or backslash. The template then renders only what ``fallback_values``
returns. May import: the standard library only.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re

# scheme://host[:port][/path]: letters, digits and . _ ~ / - in the path (what Misskey's own URLs use).
_BASE_URL = re.compile(r"https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/-]*)?")
_PREFIX = re.compile(r"[A-Za-z0-9._~/-]*")
# Misskey's own address: http(s)://host-or-[v6]:port, optional trailing slash, no path.
_UPSTREAM = re.compile(
    r"https?://(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?/?")
# An absolute path nginx reads as one token (the same set as nginx_proxy's path check).
_PATH = re.compile(r"/[^\s;{}\"'$\\#\x00-\x1f\x7f]*")


def _shown(value):
    """A value in an error message: repr, so that a newline or a control character is visible."""
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _check(problems, name, value, pattern, what):
    if not isinstance(value, str):
        problems.append("%s must be a string, not %s" % (name, type(value).__name__))
        return False
    if pattern.fullmatch(value) is None:
        problems.append("%s must be %s (got %s)" % (name, what, _shown(value)))
        return False
    return True


def _port_ok(url):
    match = re.search(r":([0-9]{1,5})(?:/|\Z)", url.split("//", 1)[1])
    return match is None or 0 < int(match.group(1)) < 65536


def fallback_values(base_url, prefix, upstream, snippet_file):
    """Check the four values; returns ``{"problems": [...], "redirect": ..., "upstream": ..., "snippet_file": ...}``.

    ``redirect`` is the target the old ``/files/KEY`` URL is redirected to, without KEY: the base URL
    without its trailing slashes, then the prefix without its outer slashes and a slash (nothing when
    the prefix is empty). With any problem the rendered values are empty strings.
    """
    problems = []
    url_ok = _check(problems, "The meta row's objectStorageBaseUrl", base_url, _BASE_URL,
                    "an http(s) URL of letters, digits and . _ ~ / - (with an optional port)")
    if url_ok and not _port_ok(base_url):
        problems.append("The meta row's objectStorageBaseUrl has a port out of range (got %s)" % _shown(base_url))
    _check(problems, "The meta row's objectStoragePrefix", prefix, _PREFIX, "letters, digits and . _ ~ / - only")
    up_ok = _check(problems, "misskey_files_upstream", upstream, _UPSTREAM, "http(s)://HOST:PORT")
    if up_ok and not _port_ok(upstream):
        problems.append("misskey_files_upstream has a port out of range (got %s)" % _shown(upstream))
    _check(problems, "The snippet path (misskey_nginx_snippets_dir)", snippet_file, _PATH,
           "an absolute path without spaces, quotes, ;, braces, $, #, backslashes or control characters")
    if problems:
        return {"problems": problems, "redirect": "", "upstream": "", "snippet_file": ""}
    prefix = prefix.strip("/")
    redirect = base_url.rstrip("/") + "/" + (prefix + "/" if prefix else "")
    return {"problems": [], "redirect": redirect, "upstream": upstream, "snippet_file": snippet_file}
