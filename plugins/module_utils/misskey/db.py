# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Misskey's PostgreSQL side (v11 and later): connection settings and the ``meta`` row.

The Misskey counterpart of ``mastodon/db.py`` (Mastodon): plain Python; the connection itself, the ``db_*``
options and psycopg2's guarded import are ``db/postgres.py``'s, shared by both apps.

* ``db_argument_spec`` / ``connection_params_from``: the options of doc fragment ``misskey_db``;
  explicit options win over the ``db:`` section of ``.config/default.yml`` (``host``, ``port``,
  ``db``, ``user``, ``pass``), as Mastodon's win over ``.env.production``.
* ``connect``: a psycopg2 connection or ``MisskeyConfigError`` with a one-line message.
* ``wanted_meta``: what the collection stores in the meta row (never a NULL region: aws-sdk v3,
  Misskey 13.10 and later, fails every upload with "Region is missing"; a non-default port goes
  into ``objectStorageEndpoint`` as ``host:port`` because Misskey's S3 client builds its
  endpoint from that column alone and ignores ``objectStoragePort``).
* ``apply_meta`` / ``restore_meta``: set the object storage columns, keeping the values they had
  before the switch in table ``fediverse_object_storage_meta_backup`` (same database, so the
  saved values are as durable and as private as the meta row itself), and put them back exactly.
* ``drive_argument_spec`` / ``run_module``: the drive options of misskey_config and misskey_meta,
  and the tail every Misskey module ends with (missing library, error -> ``fail_json``, result ->
  ``exit_json``); they take the AnsibleModule and import nothing of Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import contextlib
import json

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import read_config
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (
    META_COLUMNS,
    MisskeyConfigError,
    db_settings,
    mask_meta,
    meta_changes,
    meta_values,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    S3ConfigError,
    region_for,
    resolve_endpoint,
)

# The guarded psycopg2 import, the db_* option values and the wording of a libpq error are db/postgres.py's
# (one place for both apps).
from ansible_collections.fediverse.object_storage.plugins.module_utils.db import postgres
from ansible_collections.fediverse.object_storage.plugins.module_utils.db.postgres import PGError, clean_pg_message

if postgres.HAS_PSYCOPG2:
    from psycopg2 import sql

# The other names of the db_* options (community.postgresql's login_*; default.yml's db).
DB_OPTION_ALIASES = dict(db_host=["login_host"], db_port=["login_port"], db_name=["db"], db_user=["login_user"],
                         db_password=["login_password"])
META_BACKUP_TABLE = "fediverse_object_storage_meta_backup"
STORAGE_COLUMNS = tuple(column for column, _option in META_COLUMNS)


# --- connection settings ------------------------------------------------------------------------

def db_argument_spec():
    """The database options of every module that reads Misskey's database (doc fragment misskey_db)."""
    return dict(config_file=dict(type="path"), **postgres.connection_argument_spec(DB_OPTION_ALIASES))


def read_config_db(path):
    """The ``db:`` section of a Misskey ``default.yml``."""
    try:
        text = read_config(path)
    except FileNotFoundError:
        raise MisskeyConfigError("%s does not exist: is Misskey installed there?" % path) from None
    except OSError as exc:
        raise MisskeyConfigError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    return db_settings(text, source=path)


def connection_params(host=None, port=None, dbname=None, user=None, password=None, config_file=None):
    """psycopg2 keyword arguments: explicit values first, then default.yml's ``db:`` section."""
    from_file = read_config_db(config_file) if config_file else {}
    result = dict(
        host=host or from_file.get("host"),
        port=port or from_file.get("port") or postgres.DEFAULT_PORT,
        user=user or from_file.get("user"),
        password=password if password not in (None, "") else from_file.get("pass"),
        dbname=dbname or from_file.get("db"),
    )
    if not result["dbname"]:
        raise MisskeyConfigError("no database name: give db_name, or config_file with a db: section")
    try:
        result["port"] = int(result["port"])
    except (TypeError, ValueError):
        raise MisskeyConfigError("invalid database port %r" % (result["port"],)) from None
    return dict((key, value) for key, value in result.items() if value not in (None, ""))


def connection_params_from(module_params):
    """connection_params() from a module's db_* and config_file options."""
    return connection_params(config_file=module_params.get("config_file"), **postgres.db_option_values(module_params))


def connect(params):
    """A psycopg2 connection (autocommit off) or MisskeyConfigError; the password is never shown."""
    try:
        return postgres.connect(params, "Misskey's database")
    except postgres.ConnectError as exc:
        if exc.reason is None:  # no psycopg2
            raise MisskeyConfigError(str(exc)) from None
        target = "%s@%s:%s/%s" % (params.get("user"), params.get("host", "localhost"), params.get("port"),
                                  params.get("dbname"))
        raise MisskeyConfigError("cannot connect to Misskey's database %s: %s" % (target, exc.reason)) from None


def drive_argument_spec(required=(), **defaults):
    """The drive options of misskey_config (v10 ``drive:``) and misskey_meta (v11+ meta row):
    ``required`` names the required ones, ``defaults`` gives default values."""
    spec = dict(
        bucket=dict(type="str"),
        prefix=dict(type="str"),
        base_url=dict(type="str"),
        endpoint=dict(type="str"),
        region=dict(type="str"),
        port=dict(type="int"),
        use_ssl=dict(type="bool"),
        use_proxy=dict(type="bool"),
        set_public_read=dict(type="bool"),
        s3_force_path_style=dict(type="bool"),
        access_key=dict(type="str", no_log=True),
        secret_key=dict(type="str", no_log=True),
    )
    for name in required:
        spec[name]["required"] = True
    for name, value in defaults.items():
        spec[name]["default"] = value
    return spec


def run_module(module, handler, needs=(), errors=(), **fail_extra):
    """The tail of every Misskey module: fail when a library of ``needs`` (``(name, present)`` or
    ``(name, present, import error)``) is missing, else ``module.exit_json(**handler(module))``; a
    MisskeyConfigError, S3ConfigError, OSError or one of ``errors`` fails the module with its message
    (and the return values ``fail_extra``)."""
    for need in needs:
        if not need[1]:
            from ansible.module_utils.basic import missing_required_lib

            extra = dict(exception=str(need[2])) if len(need) > 2 and need[2] is not None else {}
            module.fail_json(msg=missing_required_lib(need[0]), **extra)
    try:
        result = handler(module)
    except (MisskeyConfigError, S3ConfigError, OSError) + tuple(errors) as exc:
        module.fail_json(msg=str(exc), **fail_extra)
    module.exit_json(**result)


# --- what the collection stores ---------------------------------------------------------------

def wanted_meta(use_object_storage=True, bucket=None, prefix=None, base_url=None, endpoint=None, region=None,
                port=None, use_ssl=None, use_proxy=None, set_public_read=None, s3_force_path_style=None,
                access_key=None, secret_key=None):
    """``{column: value}`` for the meta row, or for ``use_object_storage=False`` only that flag.

    On top of ``misskey_config.meta_values``: the region is never NULL (given, else the Vultr
    cluster of the endpoint, else ``us-east-1``), and a port other than the scheme's default is
    part of ``objectStorageEndpoint`` (``host:port``), where Misskey's S3 client reads it.
    """
    if not use_object_storage:
        return {"useObjectStorage": False}
    wanted = meta_values(use_object_storage=True, bucket=bucket, prefix=prefix, base_url=base_url,
                         endpoint=endpoint, region=region, port=port, use_ssl=use_ssl, use_proxy=use_proxy,
                         set_public_read=set_public_read, s3_force_path_style=s3_force_path_style,
                         access_key=access_key, secret_key=secret_key)
    wanted["objectStorageRegion"] = region_for(endpoint, (region or "").strip() or None)
    chosen_port = wanted.get("objectStoragePort")
    if chosen_port:
        default_port = 443 if wanted.get("objectStorageUseSSL", True) else 80
        if int(chosen_port) != default_port:
            wanted["objectStorageEndpoint"] = "%s:%d" % (wanted["objectStorageEndpoint"], int(chosen_port))
    return wanted


def endpoint_url(stored):
    """The S3 endpoint URL Misskey's client uses for stored meta / drive values."""
    if not stored.get("objectStorageEndpoint"):
        raise MisskeyConfigError("Misskey has no objectStorageEndpoint stored")
    scheme = "https" if stored.get("objectStorageUseSSL", True) else "http"
    return resolve_endpoint("%s://%s" % (scheme, stored["objectStorageEndpoint"]))


# --- the meta row -------------------------------------------------------------------------------

def _read_meta(cursor, columns):
    cursor.execute(sql.SQL("SELECT {} FROM meta").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in ["id"] + list(columns))))
    rows = cursor.fetchall()
    if not rows:
        raise MisskeyConfigError("the meta table is empty: start Misskey once (it creates the row) and run again")
    if len(rows) > 1:
        raise MisskeyConfigError("the meta table has %d rows; Misskey uses exactly one: fix it by hand first" % len(rows))
    return rows[0][0], dict(zip(columns, rows[0][1:]))


def _update_meta(cursor, meta_id, updates):
    cursor.execute(sql.SQL("UPDATE meta SET {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in updates)),
        list(updates.values()) + [meta_id])


def _storage_columns(cursor):
    existing = postgres.table_columns(cursor, "meta")
    if not existing:
        raise MisskeyConfigError("the database has no meta table: is this Misskey v11 or later, and set up?")
    return existing, [column for column in STORAGE_COLUMNS if column in existing]


def read_storage(conn):
    """``(meta id, {column: value})`` of every object storage column this Misskey version has."""
    with conn.cursor() as cursor:
        _existing, columns = _storage_columns(cursor)
        result = _read_meta(cursor, columns)
    conn.rollback()
    return result


def _read_backup(cursor, meta_id):
    """``(saved values, active)`` or ``(None, False)`` when nothing was saved."""
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (META_BACKUP_TABLE,))
    if not cursor.fetchone()[0]:
        return None, False
    cursor.execute(sql.SQL("SELECT saved, active FROM {} WHERE meta_id = %s").format(
        sql.Identifier(META_BACKUP_TABLE)), (meta_id,))
    row = cursor.fetchone()
    if not row:
        return None, False
    saved = row[0] if isinstance(row[0], dict) else json.loads(row[0])
    return saved, bool(row[1])


def _save_backup(cursor, meta_id, values):
    cursor.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (meta_id varchar(32) PRIMARY KEY, saved jsonb NOT NULL, "
        "active boolean NOT NULL DEFAULT true, saved_at timestamptz NOT NULL DEFAULT now())").format(
        sql.Identifier(META_BACKUP_TABLE)))
    cursor.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(sql.Identifier(META_BACKUP_TABLE)))
    cursor.execute(sql.SQL(
        "INSERT INTO {} (meta_id, saved, active, saved_at) VALUES (%s, %s, true, now()) "
        "ON CONFLICT (meta_id) DO UPDATE SET saved = EXCLUDED.saved, active = true, saved_at = now()").format(
        sql.Identifier(META_BACKUP_TABLE)), (meta_id, json.dumps(values)))


def _diff(current, updates):
    after = dict(current)
    after.update(updates)
    return dict(before_header="meta", after_header="meta", before=mask_meta(current), after=mask_meta(after, updates))


class _MetaRow(object):
    """What a transaction on the meta row sees; the body sets ``commit`` to keep its changes."""

    def __init__(self, cursor, existing, meta_id, current):
        self.cursor, self.existing, self.meta_id, self.current = cursor, existing, meta_id, current
        self.commit = False


@contextlib.contextmanager
def _meta_transaction(conn):
    """One transaction on the meta row: yields a ``_MetaRow`` (its object storage columns read), then
    commits when the body set ``commit``, else rolls back; a database error rolls back and becomes a
    MisskeyConfigError."""
    try:
        with conn.cursor() as cursor:
            existing, columns = _storage_columns(cursor)
            meta_id, current = _read_meta(cursor, columns)
            row = _MetaRow(cursor, existing, meta_id, current)
            yield row
            if row.commit:
                conn.commit()
            else:
                conn.rollback()
    except PGError as exc:
        conn.rollback()
        raise MisskeyConfigError("database error on the meta table: %s" % clean_pg_message(exc)) from None


def apply_meta(conn, wanted, check_mode=False):
    """Set the meta row to ``wanted`` (existing columns only).

    Before the first change of a switch, every object storage column's current value is saved in
    ``fediverse_object_storage_meta_backup`` (in the same transaction as the change); while that
    backup is active (switched, not rolled back) later runs keep it, so it always holds the values
    from before the switch. Returns a result dict (changed, changed_columns, skipped_columns,
    backup: ``saved``/``kept``/``none``, diff).
    """
    with _meta_transaction(conn) as row:
        updates, skipped = meta_changes(row.current, row.existing, wanted)
        _saved, active = _read_backup(row.cursor, row.meta_id)
        backup = "kept" if active else "none"
        if updates and wanted.get("useObjectStorage") and not active:
            backup = "saved"
            if not check_mode:
                _save_backup(row.cursor, row.meta_id, row.current)
        row.commit = bool(updates) and not check_mode
        if row.commit:
            _update_meta(row.cursor, row.meta_id, updates)
    return dict(changed=bool(updates), changed_columns=[c for c in STORAGE_COLUMNS if c in updates],
                skipped_columns=skipped, backup=backup, diff=_diff(row.current, updates))


def restore_meta(conn, check_mode=False):
    """Put back the values saved before the switch, exactly, and mark the backup used.

    Without an active backup (never switched by this collection, or already restored) nothing is
    changed, except that a meta row switched without a backup gets ``useObjectStorage = false``
    (``restored: false`` and a warning say so).
    """
    warnings = []
    with _meta_transaction(conn) as row:
        saved, active = _read_backup(row.cursor, row.meta_id)
        updates = {}
        restored = False
        if active:
            restored = True
            for column, value in saved.items():
                if column in row.existing and row.current.get(column) != value:
                    updates[column] = value
        elif saved is None and row.current.get("useObjectStorage"):
            warnings.append("no values saved before the switch: only useObjectStorage was turned off; "
                            "check the other object storage settings in Misskey's control panel")
            updates = {"useObjectStorage": False}
        changed = bool(updates) or active
        row.commit = changed and not check_mode
        if row.commit:
            if updates:
                _update_meta(row.cursor, row.meta_id, updates)
            if active:
                row.cursor.execute(sql.SQL("UPDATE {} SET active = false WHERE meta_id = %s").format(
                    sql.Identifier(META_BACKUP_TABLE)), (row.meta_id,))
    return dict(changed=changed, changed_columns=[c for c in STORAGE_COLUMNS if c in updates], skipped_columns=[],
                restored=restored, backup="used" if active else "none", warnings=warnings,
                diff=_diff(row.current, updates))
