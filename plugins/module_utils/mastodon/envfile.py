# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edit a dotenv file (Mastodon's ``.env.production``) without touching anything else.

Rules, in this order, for every ``KEY: value`` asked for:

1. every active assignment of ``KEY`` (``KEY=...`` or ``export KEY=...``) gets the new value in
   place; the line keeps its ``export``, its own line ending and any inline ``# comment``;
   when the value already equals the parsed old value the line is left byte for byte;
2. else, the first commented-out sample assignment (``# KEY=...`` / ``#KEY=...``) is replaced
   in place by the assignment, so the sample line is not duplicated;
3. else, the assignment is appended at the end, below one marker comment.

Every other line is kept byte for byte (the text is handled with ``surrogateescape`` so even
bytes that are not UTF-8 survive). Plain Python: unit-tested in tests/unit/test_envfile.py.

Reading follows Ruby dotenv's parser (``lib/dotenv/parser.rb`` of bkeepers/dotenv 3.x, which
Mastodon uses for ``.env.production``): the ``LINE`` regular expression is applied to the whole
text (so a quoted value may span lines); ``export`` prefixes and ``KEY: value`` are accepted; an
unquoted value ends at the first ``#`` (``DB_PASS=abc#def`` is ``abc``) and is stripped; single
quotes are verbatim; in double quotes and unquoted values ``\\X`` is ``X`` and a ``\\n`` in double
quotes stays the two characters ``\\n`` (unless ``DOTENV_LINEBREAK_MODE=legacy``); ``$VAR`` and
``${VAR}`` expand (not in single quotes; ``\\$`` is a literal ``$``) from the values above in the
file (Mastodon would also look in its process environment, which a module cannot see: unknown
names expand to ``''``); ``$(command)`` is left as written (never run); the last assignment wins.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re

MARKER = "# Object storage (managed by fediverse.object_storage)"
MASK = "********"
# Keys whose values never leave the module: AWS_SECRET_ACCESS_KEY, AWS_ACCESS_KEY_ID, DB_PASS,
# SECRET_KEY_BASE, OTP_SECRET, VAPID_PRIVATE_KEY, SMTP_PASSWORD, ...
SECRET_KEY_PATTERN = re.compile(r"SECRET|PASS|KEY|TOKEN|CREDENTIAL", re.IGNORECASE)

_KEY = r"[A-Za-z_][A-Za-z0-9_.]*"
_COMMENTED = re.compile(r"^[ \t]*#[ \t]*(?:export[ \t]+)?(?P<key>" + _KEY + r")[ \t]*=")
_VALID_KEY = re.compile(r"^" + _KEY + r"$")
# Values written without quotes: what Mastodon's own setup wizard writes for URLs, names and keys.
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@,+=%-]*$")


# bkeepers/dotenv lib/dotenv/parser.rb, Parser::LINE (Ruby's ``$``/``^`` are line anchors, ``\z``
# is Python's ``\Z``, ``\w`` is ASCII).
_DOTENV_LINE = re.compile(r"""
    (?:^|\A)
    \s*
    (?:export\s+)?
    (?P<key>[\w.]+)
    (?P<sep>\s*=\s*?|:\s+?)
    (?P<value>
      \s*'(?:\\'|[^'])*'
      |
      \s*"(?:\\"|[^"])*"
      |
      [^\#\r\n]+
    )?
    \s*
    (?:\#.*)?
    (?:$|\Z)
""", re.VERBOSE | re.MULTILINE | re.ASCII)
_QUOTED = re.compile(r"\A(['\"])(.*)\1\Z", re.DOTALL)
_UNESCAPE = re.compile(r"\\([^$])")
# dotenv/substitutions/variable.rb
_VARIABLE = re.compile(r"(\\)?(\$)(?!\()\{?([A-Z0-9_]+)?\}?", re.IGNORECASE)
# dotenv/substitutions/command.rb (balanced parentheses, nested one level here): ``\$(...)`` is
# unescaped; an unescaped ``$(command)`` is left as written (this module never runs commands).
_COMMAND = re.compile(r"(\\)?\$(\((?:[^()]|\([^()]*\))+\))")
_RUBY_STRIP = " \t\n\v\f\r\x00"
# Credentials inside a URL: scheme://user:PASSWORD@host (also redis://:PASSWORD@host). The
# password runs to the last "@" before white space: a diff rather masks too much than too little.
_URL_CREDENTIALS = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/?#@]*:)(?P<password>\S*)@")


class EnvFileError(ValueError):
    """A setting that cannot be written safely."""


def _split_ending(line):
    for ending in ("\r\n", "\n", "\r"):
        if line.endswith(ending):
            return line[: -len(ending)], ending
    return line, ""


class Assignment(object):
    """One assignment found by dotenv's ``LINE`` expression, with its offsets in the text."""

    __slots__ = ("key", "value", "raw", "key_start", "value_start", "value_end", "line_start", "line_end")

    def __init__(self, key, value, raw, key_start, value_start, value_end, line_start, line_end):
        self.key = key
        self.value = value
        self.raw = raw
        self.key_start = key_start
        self.value_start = value_start
        self.value_end = value_end
        self.line_start = line_start  # offset of the start of the key's line
        self.line_end = line_end  # offset just past the last character of the value


def _substitute(value, env):
    def replace(match):
        if match.group(1) == "\\":
            return match.group(0)[1:]
        if match.group(3):
            return env.get(match.group(3), "")
        return match.group(0)

    return _VARIABLE.sub(replace, value)


def dotenv_value(raw, env=None):
    """dotenv's ``parse_value``: the value of the text captured after ``KEY=``.

    ``env``: the values assigned above (for ``$VAR`` expansion and ``DOTENV_LINEBREAK_MODE``).
    """
    env = env or {}
    value = (raw or "").strip(_RUBY_STRIP)
    match = _QUOTED.match(value)
    quote = None
    if match:
        quote, value = match.group(1), match.group(2)
    if quote == '"':
        if env.get("DOTENV_LINEBREAK_MODE") == "legacy":
            value = value.replace("\\n", "\n").replace("\\r", "\r")
        else:
            value = value.replace("\\n", "\\\\n").replace("\\r", "\\\\r")
        value = _UNESCAPE.sub(lambda m: m.group(1), value)
    elif quote is None:
        value = _UNESCAPE.sub(lambda m: m.group(1), value)
    if quote != "'":
        value = _substitute(value, env)
        value = _COMMAND.sub(lambda m: m.group(0)[1:] if m.group(1) else m.group(0), value)
    return value


def assignments(text):
    """Every assignment of ``text`` as dotenv reads it, in order (``Assignment`` objects).

    The text is scanned as is (dotenv first turns ``\\r\\n`` and ``\\r`` into ``\\n``: a lone
    ``\\r`` is a line break for dotenv, here it stays part of the line; Mastodon's files use ``\\n``).
    """
    env = {}
    found = []
    for match in _DOTENV_LINE.finditer(text):
        raw = match.group("value") or ""
        value = dotenv_value(raw, env)
        env[match.group("key")] = value
        key_start = match.start("key")
        value_start = match.end("sep") if match.group("value") is None else match.start("value")
        value_end = value_start + len(raw)
        line_start = text.rfind("\n", 0, key_start) + 1
        found.append(Assignment(match.group("key"), value, raw, key_start, value_start, value_end,
                                line_start, value_end))
    return found


def read_env(text):
    """``{KEY: value}`` as Mastodon's dotenv reads it (the last assignment wins)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    values = {}
    for entry in assignments(text):
        values[entry.key] = entry.value
    return values


def parse_value(rest):
    """The value of a one-line ``KEY=<rest>`` as dotenv reads it, and the trailing comment.

    Returns ``(value, comment)``: ``comment`` is the text after the value (``' # note'``) or ``''``.
    """
    found = assignments("K=" + rest)
    if not found or found[0].key != "K":
        return rest.strip(), ""
    entry = found[0]
    value_text = entry.raw
    tail = ("K=" + rest)[entry.value_end:]
    kept = value_text.rstrip(" \t")
    return entry.value, value_text[len(kept):] + tail


def format_value(value):
    """The text written after ``KEY=``; refuses what no dotenv reader can take back."""
    if value is None:
        value = ""
    if isinstance(value, bool):
        value = "true" if value else "false"
    value = str(value)
    if "\n" in value or "\r" in value or "\x00" in value:
        raise EnvFileError("a value with a line break or a NUL byte cannot be written to a dotenv file")
    if _PLAIN_VALUE.match(value):
        return value
    if value.endswith("\\"):
        raise EnvFileError("a value ending with a backslash cannot be written unambiguously")
    if '"' in value or "\\" in value or "$" in value or "`" in value:
        if "'" in value:
            raise EnvFileError("a value holding both quote kinds cannot be written unambiguously")
        return "'%s'" % value
    return '"%s"' % value


def normalise_settings(settings):
    """Check the keys and turn the values into the strings that will be written."""
    result = {}
    for key, value in (settings or {}).items():
        if not _VALID_KEY.match(str(key)):
            raise EnvFileError("%r is not a valid environment variable name" % (key,))
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif value is None:
            value = ""
        result[str(key)] = str(value)
    return result


def _lines(text):
    """``text`` cut after every ``\\n`` only (a ``\\r\\n`` ending stays with its line)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _covered_lines(text, found):
    """Line numbers that belong to an assignment's value (a multi-line value's every line)."""
    covered = {}
    starts = [0]
    for index, char in enumerate(text):
        if char == "\n":
            starts.append(index + 1)

    def line_of(offset):
        lo, hi = 0, len(starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo

    for entry in found:
        first = line_of(entry.key_start)
        last = line_of(max(entry.value_end - 1, entry.key_start))
        for number in range(first, last + 1):
            covered[number] = (entry, first, last)
    return covered


def update_env(text, settings):
    """Apply ``settings`` to the dotenv ``text``.

    Returns ``(new_text, changed_keys)``; ``changed_keys`` in the order of ``settings``.
    """
    settings = normalise_settings(settings)
    changed = []
    for key, value in settings.items():
        formatted = format_value(value)
        before_text = text
        found = assignments(text)
        active = [entry for entry in found if entry.key == key]
        key_changed = False
        if active:
            for entry in reversed(active):
                if entry.value == value:
                    continue
                # Keep what surrounds the value: the separator, leading blanks, trailing blanks and
                # the inline comment; only the value's own text is replaced.
                raw = entry.raw
                lead = len(raw) - len(raw.lstrip(" \t"))
                body = raw.strip(" \t")
                start = entry.value_start + lead
                end = start + len(body)
                if entry.value_start == entry.value_end or not body:
                    start = end = entry.value_start
                text = text[:start] + formatted + text[end:]
                key_changed = True
        else:
            lines = _lines(text)
            covered = _covered_lines(text, found)
            commented = None
            for index, line in enumerate(lines):
                if index in covered:
                    continue
                body, _ending = _split_ending(line)
                match = _COMMENTED.match(body)
                if match and match.group("key") == key:
                    commented = index
                    break
            if commented is not None:
                _body, ending = _split_ending(lines[commented])
                lines[commented] = "%s=%s%s" % (key, formatted, ending or "\n")
            else:
                if lines and not _split_ending(lines[-1])[1]:
                    lines[-1] += "\n"
                if MARKER + "\n" not in lines and MARKER + "\r\n" not in lines:
                    if lines and lines[-1].strip():
                        lines.append("\n")
                    lines.append(MARKER + "\n")
                lines.append("%s=%s\n" % (key, formatted))
            text = "".join(lines)
            key_changed = True
        if key_changed:
            _check_edit(before_text, text, key, value)
            changed.append(key)
    return text, changed


def _check_edit(before_text, after_text, key, value):
    """Refuse an edit that dotenv would not read back as intended (an unterminated quote above
    the appended line, ...): bad input gets a clear error before anything is written."""
    before = read_env(before_text)
    after = read_env(after_text)
    problems = []
    if after.get(key) != value:
        problems.append(key)
    for other in set(before) | set(after):
        if other != key and before.get(other) != after.get(other) and "$" not in before_text:
            problems.append(other)
    if problems:
        raise EnvFileError("setting %s would change how Mastodon reads %s (an unterminated quote or a "
                           "line dotenv cannot parse?): fix the file by hand first"
                           % (key, ", ".join(sorted(set(problems)))))


def is_secret_key(key):
    return bool(SECRET_KEY_PATTERN.search(key))


def mask_url_credentials(text):
    """``scheme://user:PASSWORD@host`` -> ``scheme://user:********@host`` everywhere in ``text``."""
    return _URL_CREDENTIALS.sub(lambda m: m.group("head") + MASK + "@", text)


def mask_secrets(text, changed_keys=()):
    """``text`` for a diff, with nothing secret left in it.

    * the value of every secret-looking assignment (active or commented) is masked; one of a key
      in ``changed_keys`` reads ``******** (changed)`` so a diff still shows it was replaced;
    * a value spanning several lines is masked whole (its first line keeps ``KEY=``, every
      continuation line becomes ``********``);
    * every other line that is not blank, a comment or a plain assignment becomes ``********``;
    * credentials inside URLs (``postgres://u:PASSWORD@``, ``redis://:PASSWORD@``) are masked
      in every line that is kept.
    """
    found = assignments(text)
    covered = _covered_lines(text, found)
    out = []
    for index, line in enumerate(_lines(text)):
        body, ending = _split_ending(line)
        entry_info = covered.get(index)
        if entry_info is not None:
            entry, first, last = entry_info
            if index != first:
                body = MASK
            else:
                head = text[entry.line_start:entry.value_start]
                head = _split_ending(head)[0]
                secret = is_secret_key(entry.key) or first != last
                if secret and entry.key in changed_keys:
                    body = head + MASK + " (changed)"
                elif secret:
                    body = head + (MASK if (entry.raw.strip() or first != last) else "")
                else:
                    body = mask_url_credentials(body)
        elif not body.strip(" \t"):
            pass
        elif body.lstrip(" \t").startswith("#"):
            commented = _COMMENTED.match(body)
            if commented and is_secret_key(commented.group("key")):
                head = body[: body.index("=") + 1]
                body = head + (MASK if body[len(head):].strip() else "")
            else:
                body = mask_url_credentials(body)
        else:
            body = MASK
        out.append(body + ending)
    return "".join(out)
