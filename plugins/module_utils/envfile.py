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
_ASSIGNMENT = re.compile(r"^(?P<lead>[ \t]*(?:export[ \t]+)?)(?P<key>" + _KEY + r")(?P<eq>[ \t]*=[ \t]*)(?P<rest>.*)$")
_COMMENTED = re.compile(r"^[ \t]*#[ \t]*(?:export[ \t]+)?(?P<key>" + _KEY + r")[ \t]*=")
_VALID_KEY = re.compile(r"^" + _KEY + r"$")
# Values written without quotes: what Mastodon's own setup wizard writes for URLs, names and keys.
_PLAIN_VALUE = re.compile(r"^[A-Za-z0-9_./:@,+=%-]*$")


class EnvFileError(ValueError):
    """A setting that cannot be written safely."""


def _split_ending(line):
    for ending in ("\r\n", "\n", "\r"):
        if line.endswith(ending):
            return line[: -len(ending)], ending
    return line, ""


def parse_value(rest):
    """The value of ``KEY=<rest>`` as dotenv readers see it, and the trailing inline comment.

    Returns ``(value, comment)`` where ``comment`` is the text kept after the value
    (``' # note'``) or ``''``.
    """
    stripped = rest.lstrip(" \t")
    if stripped[:1] in ("'", '"'):
        quote = stripped[0]
        index = 1
        chars = []
        while index < len(stripped):
            char = stripped[index]
            if quote == '"' and char == "\\" and index + 1 < len(stripped):
                following = stripped[index + 1]
                chars.append({"n": "\n", "t": "\t"}.get(following, following))
                index += 2
                continue
            if char == quote:
                return "".join(chars), stripped[index + 1:]
            chars.append(char)
            index += 1
        # Unterminated quote: take the text verbatim.
        return stripped, ""
    match = re.search(r"[ \t]+#", stripped)
    if match:
        return stripped[: match.start()], stripped[match.start():]
    return stripped.rstrip(" \t"), ""


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


def update_env(text, settings):
    """Apply ``settings`` to the dotenv ``text``.

    Returns ``(new_text, changed_keys)``; ``changed_keys`` in the order of ``settings``.
    """
    settings = normalise_settings(settings)
    lines = text.splitlines(True)
    changed = []
    for key, value in settings.items():
        formatted = format_value(value)
        active = []
        commented = None
        for index, line in enumerate(lines):
            body, _ending = _split_ending(line)
            match = _ASSIGNMENT.match(body)
            if match and match.group("key") == key:
                active.append((index, match))
            elif commented is None and _COMMENTED.match(body) and _COMMENTED.match(body).group("key") == key:
                commented = index
        key_changed = False
        if active:
            for index, match in active:
                old_value, comment = parse_value(match.group("rest"))
                if old_value == value:
                    continue
                _body, ending = _split_ending(lines[index])
                lines[index] = "%s%s%s%s%s%s" % (match.group("lead"), key, match.group("eq"), formatted, comment, ending)
                key_changed = True
        elif commented is not None:
            _body, ending = _split_ending(lines[commented])
            lines[commented] = "%s=%s%s" % (key, formatted, ending or "\n")
            key_changed = True
        else:
            if lines and not _split_ending(lines[-1])[1]:
                lines[-1] += "\n"
            if MARKER + "\n" not in lines and MARKER + "\r\n" not in lines:
                if lines and lines[-1].strip():
                    lines.append("\n")
                lines.append(MARKER + "\n")
            lines.append("%s=%s\n" % (key, formatted))
            key_changed = True
        if key_changed:
            changed.append(key)
    return "".join(lines), changed


def read_env(text):
    """``{KEY: value}`` of the active assignments (the last one wins, as in dotenv readers)."""
    values = {}
    for line in text.splitlines():
        match = _ASSIGNMENT.match(line)
        if match:
            values[match.group("key")] = parse_value(match.group("rest"))[0]
    return values


def is_secret_key(key):
    return bool(SECRET_KEY_PATTERN.search(key))


def mask_secrets(text, changed_keys=()):
    """``text`` with the value of every secret-looking assignment (active or commented) masked.

    A masked value of a key listed in ``changed_keys`` reads ``******** (changed)`` so that a diff
    still shows that the secret was replaced, without showing it.
    """
    out = []
    for line in text.splitlines(True):
        body, ending = _split_ending(line)
        commented = _COMMENTED.match(body)
        match = _ASSIGNMENT.match(body)
        key = match.group("key") if match else (commented.group("key") if commented else None)
        if key and is_secret_key(key):
            head = body[: body.index("=") + 1]
            if match and key in changed_keys:
                body = head + MASK + " (changed)"
            else:
                body = head + (MASK if body[len(head):].strip() else "")
        out.append(body + ending)
    return "".join(out)
