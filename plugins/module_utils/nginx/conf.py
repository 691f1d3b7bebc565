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

# nginx -T prints each file as "# configuration file PATH:" on a line of its own, then its text.
_FILE_RE = re.compile(r"^# configuration file (.+?):[ \t\r]*$", re.M)
_SPACE = " \t\r\n"
_UNESCAPE = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


class Directive:
    """One directive of a file: name, arguments (unquoted, unescaped as nginx does), the file, its line,
    and the names of the blocks around it (("http", "server"), ...)."""

    __slots__ = ("name", "args", "file", "line", "context")

    def __init__(self, name, args, file, line, context):
        self.name, self.args, self.file, self.line, self.context = name, args, file, line, context

    def __repr__(self):
        return "Directive(%r, %r, %r, %d)" % (self.name, self.args, self.file, self.line)


class _Incomplete(Exception):
    """The text ends inside a directive, a quoted string or a block."""


class NginxSyntaxError(Exception):
    """Text nginx itself would refuse."""


def _word(raw):
    """A token's text as nginx stores it: \\" \\' \\\\ \\t \\r \\n unescaped, any other backslash kept."""
    out, i = [], 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw) and raw[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[raw[i + 1]])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def parse(text, path=""):
    """The directives of one configuration file's text, read with the rules of nginx's own tokenizer
    (ngx_conf_read_token in src/core/ngx_conf_file.c):

    - a backslash escapes the next character, inside and outside quotes (so \\" does not end a string);
    - "#" starts a comment only where a token could start (a#b is one word; "a # b" is a string);
    - a token ends at a space, tab, CR, LF, ";" or "{"; "}" is a block end only where a token could start;
    - a quoted string must be followed by a space, ";", "{" or ")" (which starts the next word: if ($a = "b"));
    - "${" inside a token is a variable ("${host}"), not a block start.

    Raises NginxSyntaxError where nginx would report an error, _Incomplete when the text ends inside a
    directive, string or block."""
    directives, stack, args, token = [], [], [], None
    line, directive_line = 1, 1
    sharp = quoted = need_space = d_quoted = s_quoted = variable = False
    last_space = True

    def finish(ch):
        if not args:
            raise NginxSyntaxError('unexpected "%s" in %s:%d' % (ch, path, line))
        directives.append(Directive(args[0], list(args[1:]), path, directive_line, tuple(stack)))
        if ch == "{":
            stack.append(args[0])
        del args[:]

    for ch in text:
        if ch == "\n":
            line += 1
            sharp = False
        if sharp:
            continue
        if quoted:
            quoted = False
            token.append(ch)
            continue
        if need_space:
            if ch in _SPACE:
                last_space, need_space = True, False
                continue
            if ch in ";{":
                need_space, last_space = False, True
                finish(ch)
                continue
            if ch != ")":
                raise NginxSyntaxError('unexpected "%s" in %s:%d' % (ch, path, line))
            # if ($host != "x"): a ")" after a string starts the next word (nginx does the same).
            need_space, last_space = False, True
        if last_space:
            if ch in _SPACE:
                continue
            if ch in ";{":
                finish(ch)
                continue
            if ch == "}":
                if args or not stack:
                    raise NginxSyntaxError('unexpected "}" in %s:%d' % (path, line))
                stack.pop()
                continue
            if ch == "#":
                sharp = True
                continue
            if not args:
                directive_line = line
            token, last_space = [], False
            if ch == "\\":
                quoted = True
                token.append(ch)
            elif ch == '"':
                d_quoted = True
            elif ch == "'":
                s_quoted = True
            else:
                token.append(ch)
            variable = ch == "$"
            continue
        if ch == "{" and variable:
            token.append(ch)
            continue
        variable = False
        if ch == "\\":
            quoted = True
            token.append(ch)
            continue
        if ch == "$":
            variable = True
            token.append(ch)
            continue
        found = False
        if d_quoted:
            if ch == '"':
                d_quoted, need_space, found = False, True, True
        elif s_quoted:
            if ch == "'":
                s_quoted, need_space, found = False, True, True
        elif ch in _SPACE or ch in ";{":
            last_space, found = True, True
        if not found:
            token.append(ch)
            continue
        args.append(_word("".join(token)))
        token = None
        if ch in ";{":
            finish(ch)
    if token is not None or args or stack or quoted:
        raise _Incomplete()
    return directives


def _sections(text):
    """[(file path, start of its text, end of its text)] of ``nginx -T`` output, one per header line."""
    matches = list(_FILE_RE.finditer(text))
    return [(m.group(1), m.end() + 1, matches[i + 1].start() if i + 1 < len(matches) else len(text))
            for i, m in enumerate(matches)]


def split_dump(text):
    """``nginx -T`` output as a list of (file path, file text), split at every header line."""
    text = text or ""
    return [(path, text[start:end]) for path, start, end in _sections(text)]


def read_dump(text):
    """(directives, problems) of a whole ``nginx -T`` output: every file parsed as nginx does. A header
    line inside a file that does not end there (inside a string or a block) is that file's text, not a
    new file. A file that cannot be read is a problem: the check never reports "no conflict" for text it
    did not read."""
    text = text or ""
    directives, problems = [], []
    sections = _sections(text)
    i = 0
    while i < len(sections):
        path, start, end = sections[i]
        j = i
        while True:
            try:
                directives.extend(parse(text[start:end], path))
                break
            except _Incomplete:
                if j + 1 >= len(sections):
                    problems.append("%s in the output of nginx -T ends inside a directive, string or block" % path)
                    break
                j += 1
                end = sections[j][2]
            except NginxSyntaxError as exc:
                problems.append("cannot read the output of nginx -T: %s" % exc)
                break
        i = j + 1
    return directives, problems


def _norm(path):
    return os.path.normpath(path).rstrip("/") or "/"


def _ignored(ignore_files):
    return set(_norm(p) for p in ignore_files or () if p)


def server_names(text, ignore_files=()):
    """{server name (lower case): [files serving it]} of every server_name in the dump, except in the
    files whose exact path is in ``ignore_files`` (a file elsewhere with the same base name counts).
    A name ".example.com" also serves "example.com" (nginx reports both as conflicting)."""
    found = {}
    ignore = _ignored(ignore_files)
    directives, _problems = read_dump(text)
    for d in directives:
        if d.name != "server_name" or _norm(d.file) in ignore:
            continue
        for name in d.args:
            name = name.lower()
            found.setdefault(name, []).append(d.file)
            if name.startswith(".") and len(name) > 1:
                found.setdefault(name[1:], []).append(d.file)
    return found


_CACHE_DIRECTIVES = ("proxy_cache_path", "fastcgi_cache_path", "uwsgi_cache_path", "scgi_cache_path")


def cache_paths(text):
    """[(directive, path, keys zone name, file)] of every *_cache_path in the dump."""
    found = []
    directives, _problems = read_dump(text)
    for d in directives:
        if d.name in _CACHE_DIRECTIVES and d.args:
            zone = next((a[len("keys_zone="):].split(":", 1)[0] for a in d.args[1:] if a.startswith("keys_zone=")), "")
            found.append((d.name, d.args[0], zone, d.file))
    return found


def conflicts(text, names=(), cache_path="", own_zone="", ignore_files=()):
    """Reasons (strings) why a proxy with server names ``names`` and cache ``cache_path`` (zone
    ``own_zone``) cannot be added to the nginx whose ``nginx -T`` output is ``text``. Empty: none.
    ``ignore_files``: the exact paths of the proxy's own files (their names and zone are not conflicts)."""
    problems = []
    ignore = _ignored(ignore_files)
    problems.extend(read_dump(text)[1])
    served = server_names(text, ignore_files)
    for name in names or ():
        if name and name.lower() in served:
            problems.append(
                "server_name %s is already served by %s: a second server block with the same name on the same "
                "ports is a 'conflicting server name' and nginx picks one of them. Choose another media host name "
                "(migrate_media_domain) or remove that site first." % (name, ", ".join(sorted(set(served[name.lower()])))))
    for directive, other, zone, path in cache_paths(text) if (cache_path or own_zone) else ():
        if own_zone and zone == own_zone:
            if ignore and _norm(path) not in ignore:
                problems.append(
                    "the keys zone %s is already declared by %s (%s %s): nginx refuses a second zone of that name. "
                    "Choose another nginx_proxy_name or remove that zone first." % (zone, path, directive, other))
            continue
        if not cache_path:
            continue
        ours, theirs = _norm(cache_path), _norm(other)
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
