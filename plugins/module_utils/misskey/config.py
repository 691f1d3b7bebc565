# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Misskey's storage settings: version line, v10 ``drive:`` section, v11+ ``meta`` row.

* ``detect_version(package_json_text)`` -> ``MisskeyVersion`` (10 = MongoDB, the storage settings
  live in ``.config/default.yml``; 11 and later = PostgreSQL, they live in the ``meta`` row).
* ``replace_drive(text, drive)`` rewrites only the top-level ``drive:`` block of a v10
  ``default.yml``, line based, so every other line and comment is kept; PyYAML is only used to
  check the result (it would drop the comments if it wrote the file).
* ``meta_changes(...)`` decides which ``meta`` columns to update; only existing columns are used.
* ``parse_yaml(text, what)``: the mapping of a Misskey YAML file, for every room that reads one
  (``db_settings`` here, ``misskey_storage``, the ``misskey_drive_move`` module).

Plain Python: unit-tested in tests/unit/test_misskey_config.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import json
import re

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import resolve_endpoint

try:
    import yaml
    HAS_YAML = True
except ImportError:  # pragma: no cover
    HAS_YAML = False

MASK = "********"
SECRET_NAME = re.compile(r"secret|pass|key|token", re.IGNORECASE)


class MisskeyConfigError(ValueError):
    """Raised before anything is changed, with a message an admin can act on."""


# --- version ---------------------------------------------------------------------------------

class MisskeyVersion(object):
    def __init__(self, version, major):
        self.version = version
        self.major = major

    @property
    def uses_postgresql(self):
        return self.major >= 11

    @property
    def line(self):
        return "postgresql" if self.uses_postgresql else "v10"

    def as_dict(self):
        return dict(version=self.version, major=self.major, line=self.line,
                    uses_postgresql=self.uses_postgresql)


_VERSION = re.compile(r"^v?(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?:\.[0-9]+)?(?:[-+].*)?$")
# 10 (MongoDB; also the meisskey fork 10.102.x-m544), 11..13 (PostgreSQL), then CalVer 2023.x+.
_KNOWN_MAJORS = (10, 11, 12, 13)
_FIRST_CALVER = 2023


def parse_version(version):
    """``MisskeyVersion`` for a version string; unknown shapes raise ``MisskeyConfigError``."""
    text = str(version if version is not None else "").strip()
    match = _VERSION.match(text)
    if not match:
        raise MisskeyConfigError(
            "cannot tell the Misskey version from %r: expected e.g. 10.102.544-m544, 12.117.1 or 2025.4.0; "
            "set the version explicitly (misskey_version) if this is a fork with its own numbering" % text)
    major = int(match.group("major"))
    if major in _KNOWN_MAJORS or _FIRST_CALVER <= major < 2100:
        return MisskeyVersion(text, major)
    raise MisskeyConfigError(
        "unknown Misskey version %s: supported are 10.x (MongoDB, drive: in default.yml), 11.x-13.x and "
        "2023.x or later (PostgreSQL meta table); set misskey_version to the upstream version this "
        "fork is based on" % text)


def read_package_json(package_json_text, source="package.json"):
    """The mapping of a package.json that has a ``version`` (``MisskeyConfigError`` otherwise); the one
    reader of it, for ``detect_version`` and misskey/fork's ``detect``."""
    try:
        data = json.loads(package_json_text)
    except ValueError as exc:
        # The place only, never a quote of the file.
        raise MisskeyConfigError("%s is not valid JSON (line %s, column %s)" % (
            source, getattr(exc, "lineno", "?"), getattr(exc, "colno", "?"))) from None
    if not isinstance(data, dict) or not data.get("version"):
        raise MisskeyConfigError("%s has no \"version\": is this Misskey's directory?" % source)
    return data


def detect_version(package_json_text, source="package.json"):
    return parse_version(read_package_json(package_json_text, source)["version"])


# --- endpoint --------------------------------------------------------------------------------

def endpoint_parts(endpoint):
    """``(host, port or None, use_ssl)`` for Misskey's endPoint/port/useSSL settings.

    >>> endpoint_parts("ewr1")
    ('ewr1.vultrobjects.com', None, True)
    """
    url = resolve_endpoint(endpoint)
    scheme, rest = url.split("://", 1)
    hostport = rest.split("/", 1)[0]
    port = None
    if re.match(r"^.*:[0-9]+$", hostport) and not hostport.endswith("]"):
        hostport, port_text = hostport.rsplit(":", 1)
        port = int(port_text)
    return hostport, port, scheme == "https"


# --- v10: the drive: section of .config/default.yml ------------------------------------------

_PLAIN_SCALAR = re.compile(r"^[A-Za-z0-9_/][A-Za-z0-9_./:@+-]*$")
_YAML_SPECIAL = re.compile(
    r"^(?:true|false|yes|no|on|off|y|n|null|~|[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:e[-+]?[0-9]+)?|0x[0-9a-f]+|0o[0-7]+)$",
    re.IGNORECASE)


def yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if "\n" in text or "\r" in text:
        raise MisskeyConfigError("a drive setting cannot contain a line break")
    if _PLAIN_SCALAR.match(text) and not _YAML_SPECIAL.match(text):
        return text
    return "'%s'" % text.replace("'", "''")


# Order of the keys as in meisskey's .config/example.yml.
_CONFIG_ORDER = ("endPoint", "region", "port", "useSSL", "accessKey", "secretKey", "useProxy",
                 "setPublicRead", "s3ForcePathStyle")


def drive_settings(bucket, prefix, base_url, endpoint, access_key, secret_key, region=None, port=None,
                   use_ssl=None, set_public_read=False, s3_force_path_style=True, use_proxy=None):
    """The ``drive:`` mapping (as PyYAML would load it) for a v10 ``minio`` storage."""
    for name, value in (("bucket", bucket), ("prefix", prefix), ("baseUrl", base_url),
                        ("accessKey", access_key), ("secretKey", secret_key)):
        if value is None or not str(value).strip():
            raise MisskeyConfigError("drive.%s is required" % name)
    host, url_port, url_ssl = endpoint_parts(endpoint)
    config = {"endPoint": host}
    if region:
        config["region"] = str(region)
    if port or url_port:
        config["port"] = int(port or url_port)
    config["useSSL"] = bool(url_ssl if use_ssl is None else use_ssl)
    config["accessKey"] = str(access_key)
    config["secretKey"] = str(secret_key)
    if use_proxy is not None:
        config["useProxy"] = bool(use_proxy)
    config["setPublicRead"] = bool(set_public_read)
    config["s3ForcePathStyle"] = bool(s3_force_path_style)
    return {"storage": "minio", "bucket": str(bucket), "prefix": str(prefix).strip("/"),
            "baseUrl": str(base_url).rstrip("/"), "config": config}


def render_drive(drive, ending="\n"):
    lines = ["drive:"]
    for key in ("storage", "bucket", "prefix", "baseUrl"):
        value = drive[key]
        lines.append("  %s: %s" % (key, "'minio'" if key == "storage" and value == "minio" else yaml_scalar(value)))
    lines.append("  config:")
    for key in _CONFIG_ORDER:
        if key in drive["config"]:
            lines.append("    %s: %s" % (key, yaml_scalar(drive["config"][key])))
    return ending.join(lines) + ending


def _drive_block(lines):
    """``(start, end)`` line indexes of the active top-level ``drive:`` block, or None."""
    start = None
    for index, line in enumerate(lines):
        if re.match(r"^drive[ \t]*:[ \t]*(#.*)?$", line.rstrip("\r\n")):
            if start is not None:
                raise MisskeyConfigError("default.yml has more than one top-level drive: key")
            start = index
    if start is None:
        return None
    end = start + 1
    last_content = start
    while end < len(lines):
        body = lines[end].rstrip("\r\n")
        if body.strip() == "":
            end += 1
            continue
        if body[:1] in (" ", "\t"):
            last_content = end
            end += 1
            continue
        break
    return start, last_content + 1


def yaml_error_place(exc):
    """`` (line L, column C)`` of a PyYAML error, without any of its text (which quotes the file)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return ""
    return " (line %d, column %d)" % (mark.line + 1, mark.column + 1)


def parse_yaml(text, what):
    """The mapping a Misskey YAML file (``default.yml``) holds, ``{}`` for an empty one; MisskeyConfigError
    when PyYAML is missing or ``text`` is not a YAML mapping (``what`` names the file; the message never
    quotes the text, only where it is wrong)."""
    if not HAS_YAML:
        raise MisskeyConfigError("PyYAML is required to check %s" % what)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Never the error's text: it quotes the file (a snippet of the bad line, a tag, a value), and the
        # file may be another one than the admin thinks (a link) or hold secrets. Where only.
        raise MisskeyConfigError("%s is not valid YAML%s" % (what, yaml_error_place(exc))) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MisskeyConfigError("%s is not a YAML mapping" % what)
    return data


def replace_drive(text, drive, source="default.yml"):
    """Return ``(new_text, changed)`` with the top-level ``drive:`` block set to ``drive``.

    The block is replaced where it stands (or appended at the end when the file has none); the
    result is checked with PyYAML: ``drive`` must load back equal and every other top-level key
    must be unchanged, else ``MisskeyConfigError`` is raised and nothing should be written.
    """
    original = parse_yaml(text, source)
    if original.get("drive") == drive:
        return text, False
    lines = text.splitlines(True)
    ending = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    block = render_drive(drive, ending)
    found = _drive_block(lines)
    if found is None:
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += ending
        new_text = "".join(lines) + ending + "# Object storage (managed by fediverse.object_storage)" + ending + block
    else:
        start, end = found
        new_text = "".join(lines[:start]) + block + "".join(lines[end:])
    result = parse_yaml(new_text, "the edited " + source)
    if result.get("drive") != drive:
        raise MisskeyConfigError("internal error: the edited drive: section of %s does not load back as written" % source)
    for key in set(original) | set(result):
        if key != "drive" and original.get(key) != result.get(key):
            raise MisskeyConfigError("internal error: editing drive: in %s would change %s:" % (source, key))
    return new_text, True


def mask_yaml_secrets(text):
    """``text`` with the value of every ``key: value`` whose key looks secret masked (for diffs)."""
    out = []
    for line in text.splitlines(True):
        match = re.match(r"^(?P<head>[ \t#]*(?P<key>[A-Za-z_][A-Za-z0-9_]*)[ \t]*:[ \t]*)(?P<value>[^\r\n]*)(?P<end>[\r\n]*)$",
                         line)
        if match and SECRET_NAME.search(match.group("key")) and match.group("value").strip() \
                and not match.group("value").lstrip().startswith("#"):
            line = match.group("head") + MASK + match.group("end")
        out.append(line)
    return "".join(out)


# --- v11+: database settings and the meta row ------------------------------------------------

def db_settings(text, source="default.yml"):
    """``{host, port, db, user, pass}`` of the ``db:`` section of a v11+ ``default.yml``."""
    data = parse_yaml(text, source)
    db = data.get("db")
    if not isinstance(db, dict):
        if isinstance(data.get("mongodb"), dict):
            raise MisskeyConfigError("%s has mongodb: but no db: section: this is Misskey v10 (MongoDB)" % source)
        raise MisskeyConfigError("%s has no db: section (PostgreSQL settings of Misskey v11+)" % source)
    result = {}
    for key in ("host", "port", "db", "user", "pass"):
        if db.get(key) is not None:
            result[key] = db[key]
    if "db" not in result:
        raise MisskeyConfigError("%s: db.db (the database name) is missing" % source)
    return result


# meta column -> module option. Columns differ between versions: only existing ones are set.
META_COLUMNS = (
    ("useObjectStorage", "use_object_storage"),
    ("objectStorageBucket", "bucket"),
    ("objectStoragePrefix", "prefix"),
    ("objectStorageBaseUrl", "base_url"),
    ("objectStorageEndpoint", "endpoint"),
    ("objectStorageRegion", "region"),
    ("objectStoragePort", "port"),
    ("objectStorageUseSSL", "use_ssl"),
    ("objectStorageUseProxy", "use_proxy"),
    ("objectStorageSetPublicRead", "set_public_read"),
    ("objectStorageS3ForcePathStyle", "s3_force_path_style"),
    ("objectStorageAccessKey", "access_key"),
    ("objectStorageSecretKey", "secret_key"),
)
SECRET_COLUMNS = ("objectStorageAccessKey", "objectStorageSecretKey")
REQUIRED_COLUMNS = ("useObjectStorage", "objectStorageBucket", "objectStorageBaseUrl",
                    "objectStorageEndpoint", "objectStorageAccessKey", "objectStorageSecretKey")


def meta_values(use_object_storage=True, bucket=None, prefix=None, base_url=None, endpoint=None, region=None,
                port=None, use_ssl=None, use_proxy=None, set_public_read=None, s3_force_path_style=None,
                access_key=None, secret_key=None):
    """``{column: value}`` wanted in the meta row; ``None`` options are left alone.

    ``endpoint`` may be a Vultr cluster (``ewr1``), a host or a URL: Misskey stores the host in
    ``objectStorageEndpoint`` and the scheme in ``objectStorageUseSSL`` (and the port, if any, in
    ``objectStoragePort``). ``port=0`` and ``region=''`` store NULL (Misskey's defaults).
    """
    options = dict(use_object_storage=use_object_storage, bucket=bucket, prefix=prefix, base_url=base_url,
                   region=region, port=port, use_ssl=use_ssl, use_proxy=use_proxy,
                   set_public_read=set_public_read, s3_force_path_style=s3_force_path_style,
                   access_key=access_key, secret_key=secret_key, endpoint=None)
    if endpoint:
        host, url_port, url_ssl = endpoint_parts(endpoint)
        options["endpoint"] = host
        if options["use_ssl"] is None:
            options["use_ssl"] = url_ssl
        if url_port and not port:
            options["port"] = url_port
    if options["port"] is not None and int(options["port"]) == 0:
        options["port"] = _NULL
    if options["region"] is not None and not str(options["region"]).strip():
        options["region"] = _NULL
    if options["prefix"] is not None:
        options["prefix"] = str(options["prefix"]).strip("/")
    if options["base_url"] is not None:
        options["base_url"] = str(options["base_url"]).rstrip("/")
    wanted = {}
    for column, option in META_COLUMNS:
        value = options[option]
        if value is _NULL:
            wanted[column] = None
        elif value is not None:
            wanted[column] = value
    return wanted


class _Null(object):
    def __repr__(self):
        return "NULL"


_NULL = _Null()


def meta_changes(current, existing_columns, wanted):
    """Compare the meta row with what is wanted.

    Returns ``(updates, skipped)``: ``updates`` = ``{column: new value}`` for existing columns
    whose value differs, ``skipped`` = wanted columns this Misskey version does not have.
    Raises ``MisskeyConfigError`` when a column object storage cannot work without is missing.
    """
    missing = [column for column in REQUIRED_COLUMNS if column in wanted and column not in existing_columns]
    if missing:
        raise MisskeyConfigError("the meta table lacks %s: this is not a Misskey v11+ database" % ", ".join(missing))
    updates = {}
    skipped = []
    for column, value in wanted.items():
        if column not in existing_columns:
            skipped.append(column)
            continue
        if current.get(column) != value:
            updates[column] = value
    return updates, skipped


def mask_meta(row, changed=()):
    """``row`` for a diff: secret columns masked."""
    result = {}
    for column, value in row.items():
        if column in SECRET_COLUMNS or SECRET_NAME.search(column):
            result[column] = (MASK + " (changed)" if column in changed else MASK) if value else value
        else:
            result[column] = value
    return result
