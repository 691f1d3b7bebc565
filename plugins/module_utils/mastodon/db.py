# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mastodon's PostgreSQL side: connection settings, column detection, media enumeration.

Plain Python (psycopg2 imported guardedly, in db/postgres.py: the connection room Misskey's side shares),
unit-testable without Ansible.

* ``parse_env_file`` / ``connection_params``: options first, then ``DB_*`` (or
  ``DATABASE_URL``) from ``.env.production``, then Mastodon's defaults.
* ``connect``: a read-only connection, or ``DBError`` with a one-line message.
* ``count_rows`` / ``iter_rows_objects``: which rows own media, per kind, with
  ``mastodon_layout`` computing the keys. A server-side (named) cursor keeps memory bounded
  whatever the row count. Optional columns (``*_storage_schema_version``, ``thumbnail_*``,
  ``accounts.suspended_at``) and tables are detected, never assumed.
"""

# API (consumed by the media_copy module/copy engine; names fixed by issue 3's split):
#   HAS_PSYCOPG2, PSYCOPG2_IMPORT_ERROR, DBError, parse_env_file(path), connection_params(...),
#   connect(**params) -> read-only psycopg2 connection, table_columns(conn, table),
#   count_rows(conn, scope, include_backups, shard_index, shard_count, limit) -> {kind: rows},
#   iter_rows_objects(conn, scope, include_backups, shard_index, shard_count, limit, batch_size)
#     -> RowObjects generator (mastodon_layout.RowObjects / MediaObject).
#   Use the connection from one thread only while a generator is running (it holds a named cursor
#   in the connection's transaction; the transaction is ended when the generator finishes).

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from urllib.parse import unquote, urlparse

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import layout
from ansible_collections.fediverse.object_storage.plugins.module_utils.db import postgres
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import read_config
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.envfile import read_env

# The guarded psycopg2 import and the libpq wording are db/postgres.py's (media_copy takes them from here).
from ansible_collections.fediverse.object_storage.plugins.module_utils.db.postgres import (  # noqa: F401  pylint: disable=unused-import
    APPLICATION_NAME,
    CONNECT_TIMEOUT,
    DEFAULT_PORT,
    HAS_PSYCOPG2,
    PGError,
    PSYCOPG2_IMPORT_ERROR,
    clean_pg_message,
    db_option_values,
)

if HAS_PSYCOPG2:
    import psycopg2.extensions

DEFAULT_HOST = "/var/run/postgresql"
DEFAULT_DBNAME = "mastodon_production"
DEFAULT_USER = "mastodon"
SCOPES = ("cache", "local")


class DBError(Exception):
    """A database problem, with a message fit for a user (no traceback, no password)."""


# --------------------------------------------------------------------------------------------
# .env.production and connection settings
# --------------------------------------------------------------------------------------------

def parse_env_text(text):
    """Parse dotenv text into a dict (the collection's one dotenv reader: module_utils/mastodon/envfile.py)."""
    return read_env(text)


def parse_env_file(path):
    """Read a Mastodon ``.env.production`` into a dict. Raises DBError when unreadable."""
    try:
        text = read_config(path)
    except OSError as exc:
        raise DBError("cannot read env_file %s: %s" % (path, exc.strerror or exc)) from None
    return parse_env_text(text)


def _from_database_url(url):
    """The DB_* equivalent of a ``DATABASE_URL`` (postgres://user:pass@host:port/dbname)."""
    parsed = urlparse(url)
    if parsed.scheme not in ("postgres", "postgresql"):
        return {}
    values = {}
    if parsed.hostname:
        values["DB_HOST"] = unquote(parsed.hostname)
    if parsed.port:
        values["DB_PORT"] = str(parsed.port)
    if parsed.path and parsed.path != "/":
        values["DB_NAME"] = unquote(parsed.path.lstrip("/"))
    if parsed.username:
        values["DB_USER"] = unquote(parsed.username)
    if parsed.password:
        values["DB_PASS"] = unquote(parsed.password)
    return values


def _first(*values):
    for value in values:
        if value is not None and value != "":
            return value
    return None


def connection_params(host=None, port=None, dbname=None, user=None, password=None, env_file=None):
    """Connection settings: explicit options win over the env file, which wins over defaults.

    Defaults are a Mastodon install's: unix socket ``/var/run/postgresql``, port 5432, database
    ``mastodon_production``, user ``mastodon``. A host starting with ``/`` is a socket directory.
    Returns a dict with host, port (int), dbname, user, password (None when unset).
    """
    env = {}
    if env_file:
        env = parse_env_file(env_file)
        if env.get("DATABASE_URL"):
            url_values = _from_database_url(env["DATABASE_URL"])
            # DATABASE_URL overrides DB_* in Mastodon (Rails merges it over database.yml).
            env = dict(env, **url_values)
    params = {
        "host": _first(host, env.get("DB_HOST"), DEFAULT_HOST),
        "port": _first(port, env.get("DB_PORT"), DEFAULT_PORT),
        "dbname": _first(dbname, env.get("DB_NAME"), DEFAULT_DBNAME),
        "user": _first(user, env.get("DB_USER"), DEFAULT_USER),
        "password": _first(password, env.get("DB_PASS")),
    }
    try:
        params["port"] = int(params["port"])
    except (TypeError, ValueError):
        raise DBError("invalid database port %r" % (params["port"],)) from None
    return params


def db_argument_spec():
    """The database options of every module that reads Mastodon's database (doc fragment mastodon_db)."""
    return dict(postgres.connection_argument_spec(), env_file=dict(type="path"))


def connection_params_from(module_params):
    """connection_params() from a module's db_* and env_file options."""
    return connection_params(env_file=module_params.get("env_file"), **db_option_values(module_params))


def describe_target(params):
    """``user@host:port/dbname`` (socket dirs shown as such), never the password."""
    host = params.get("host") or DEFAULT_HOST
    where = ("unix socket %s" % host) if host.startswith("/") else host
    return "%s@%s:%s/%s" % (params.get("user"), where, params.get("port"), params.get("dbname"))


def connect(host=None, port=None, dbname=None, user=None, password=None, readonly=True,
            connect_timeout=CONNECT_TIMEOUT, application_name=APPLICATION_NAME):
    """Open a psycopg2 connection (read-only session by default) or raise DBError."""
    params = {"host": host or DEFAULT_HOST, "port": int(port or DEFAULT_PORT),
              "dbname": dbname or DEFAULT_DBNAME, "user": user or DEFAULT_USER}
    kwargs = dict(params, password=password) if password else dict(params)
    try:
        conn = postgres.connect(kwargs, "the Mastodon database", connect_timeout=connect_timeout,
                                application_name=application_name)
    except postgres.ConnectError as exc:
        if exc.reason is None:  # no psycopg2
            raise DBError(str(exc)) from None
        message = exc.reason
        target = describe_target(params)
        lowered = message.lower()
        if "password authentication failed" in lowered or "no password supplied" in lowered \
                or "authentication failed" in lowered:
            raise DBError("authentication failed for %s: check db_user/db_password (or DB_USER/DB_PASS)" % target) from None
        if "does not exist" in lowered and "database" in lowered:
            raise DBError("database %r does not exist on %s" % (params["dbname"], target)) from None
        if "role" in lowered and "does not exist" in lowered:
            raise DBError("database user %r does not exist on %s" % (params["user"], target)) from None
        raise DBError("cannot connect to PostgreSQL at %s: %s" % (target, message)) from None
    if readonly:
        try:
            conn.set_session(readonly=True)
        except PGError as exc:  # pragma: no cover - defensive
            conn.close()
            raise DBError("cannot configure the database session: %s" % clean_pg_message(exc)) from None
    return conn


# --------------------------------------------------------------------------------------------
# Schema detection
# --------------------------------------------------------------------------------------------

def table_columns(conn, table):
    """Column names of ``table`` in the connection's search path (empty set: no such table)."""
    with conn.cursor() as cur:
        return postgres.table_columns(cur, table)


# --------------------------------------------------------------------------------------------
# Enumeration
# --------------------------------------------------------------------------------------------

# Per kind: table, attachment column prefix, how "remote" is decided, whether the account can
# be suspended (and how to find it), and which scopes include it.
_KIND_SPECS = (
    # kind, table, attachment, remote_sql (None = never remote, True = always), suspension
    (layout.MEDIA_FILES, "media_attachments", "file", "COALESCE(t.remote_url, '') <> ''", "account_id"),
    (layout.MEDIA_THUMBNAILS, "media_attachments", "thumbnail", "COALESCE(t.remote_url, '') <> ''", "account_id"),
    (layout.ACCOUNT_AVATARS, "accounts", "avatar", "t.domain IS NOT NULL", "self"),
    (layout.ACCOUNT_HEADERS, "accounts", "header", "t.domain IS NOT NULL", "self"),
    (layout.EMOJI_IMAGES, "custom_emojis", "image", "t.domain IS NOT NULL", None),
    (layout.PREVIEW_CARD_IMAGES, "preview_cards", "image", "TRUE", None),
    (layout.PROVIDER_ICONS, "preview_card_providers", "icon", "FALSE", None),
    (layout.SITE_UPLOADS, "site_uploads", "file", "FALSE", None),
    (layout.BACKUP_DUMPS, "backups", "dump", "FALSE", None),
)


def _check_args(scope, shard_index, shard_count, limit):
    if isinstance(scope, str):
        scope = (scope,)
    scope = tuple(scope or ())
    unknown = [item for item in scope if item not in SCOPES]
    if unknown:
        raise ValueError("unknown scope %s (choose from %s)" % (", ".join(map(repr, unknown)), ", ".join(SCOPES)))
    shard_count = int(shard_count)
    shard_index = int(shard_index)
    if shard_count < 1:
        raise ValueError("shard_count must be >= 1")
    if not 0 <= shard_index < shard_count:
        raise ValueError("shard_index must be between 0 and shard_count - 1")
    if limit is not None and int(limit) < 0:
        raise ValueError("limit must be >= 0")
    return scope, shard_index, shard_count


class _Columns:
    """Caches table_columns per connection for one enumeration."""

    def __init__(self, conn):
        self.conn = conn
        self.cache = {}

    def __call__(self, table):
        if table not in self.cache:
            self.cache[table] = table_columns(self.conn, table)
        return self.cache[table]


def _kind_query(columns, spec, scope, include_backups, shard_index, shard_count, select, changed=None):
    """(sql, params) selecting the rows of one kind, or None when the kind is out of scope/absent.

    ``select`` is "rows" (id, file_name, content_type, remote, version, suspended, var) or
    "count". ``changed`` (see copy/selection.py) is called as ``changed(kind, table, attachment,
    columns)`` and returns None (every row) or an extra ``(sql, params)`` condition on ``t``;
    the media attachments (files, thumbnails) of suspended accounts are selected whatever it says.
    """
    kind, table, att, remote_sql, suspension = spec
    if kind == layout.BACKUP_DUMPS:
        if not include_backups:
            return None
        scope_sql = "TRUE"
    else:
        want_cache, want_local = "cache" in scope, "local" in scope
        if not (want_cache or want_local):
            return None
        if want_cache and want_local:
            scope_sql = "TRUE"
        elif want_cache:
            if remote_sql == "FALSE":  # local-only kinds (site uploads, provider icons)
                return None
            scope_sql = remote_sql
        else:
            if remote_sql == "TRUE":  # preview cards are always remote
                return None
            scope_sql = "NOT (%s)" % remote_sql
    cols = columns(table)
    name_col = "%s_file_name" % att
    if not cols or name_col not in cols or "id" not in cols:
        return None
    for needed in ("remote_url", "domain"):
        if needed in remote_sql and needed not in cols:
            return None
    where = ["t.%s IS NOT NULL" % name_col, "t.%s <> ''" % name_col, "(%s)" % scope_sql]
    params = []
    if shard_count > 1:
        where.append("mod(t.id, %s) = %s")
        params.extend([shard_count, shard_index])
    joins = ""
    suspended_sql = "FALSE"
    if suspension == "self" and "suspended_at" in cols:
        suspended_sql = "t.suspended_at IS NOT NULL"
    elif suspension == "account_id" and "account_id" in cols and "suspended_at" in columns("accounts"):
        joins = " LEFT JOIN accounts a ON a.id = t.account_id"
        suspended_sql = "a.suspended_at IS NOT NULL"
    extra = changed(kind, table, att, cols) if changed is not None else None
    if extra is not None:
        if kind in layout.SUSPENDED_PRIVATE_KINDS and suspended_sql != "FALSE":
            # A suspension sets accounts.suspended_at and touches none of these rows: the rows of
            # every suspended account are selected too, so that their objects already in the
            # bucket get their ACL checked (made private when copied public before the suspension).
            where.append("((%s) OR %s)" % (extra[0], suspended_sql))
        else:
            where.append("(%s)" % extra[0])
        params.extend(extra[1])
    if select == "count":
        return "SELECT count(*) FROM %s t%s WHERE %s" % (table, joins, " AND ".join(where)), params
    version_col = "%s_storage_schema_version" % att
    content_col = "%s_content_type" % att
    fields = [
        "t.id",
        "t.%s" % name_col,
        ("t.%s" % content_col) if content_col in cols else "NULL",
        "(%s)" % remote_sql,
        ("t.%s" % version_col) if version_col in cols else "NULL",
        suspended_sql,
        "t.var" if (kind == layout.SITE_UPLOADS and "var" in cols) else "NULL",
    ]
    sql = "SELECT %s FROM %s t%s WHERE %s ORDER BY t.id" % (", ".join(fields), table, joins, " AND ".join(where))
    return sql, params


def count_rows(conn, scope=("cache",), include_backups=False, shard_index=0, shard_count=1, limit=None,
               changed=None):
    """Number of rows owning media, per kind (only kinds in scope whose table exists).

    With ``limit`` the counts are capped the way ``iter_rows_objects`` caps its rows (kinds in
    ``layout.KINDS`` order), so they are the progress total of that iteration.
    """
    scope, shard_index, shard_count = _check_args(scope, shard_index, shard_count, limit)
    was_idle = _is_idle(conn)
    columns = _Columns(conn)
    remaining = None if limit is None else int(limit)
    counts = {}
    try:
        for spec in _KIND_SPECS:
            query = _kind_query(columns, spec, scope, include_backups, shard_index, shard_count, "count", changed)
            if query is None:
                continue
            with conn.cursor() as cur:
                cur.execute(*query)
                number = cur.fetchone()[0]
            if remaining is not None:
                number = min(number, remaining)
                remaining -= number
            counts[spec[0]] = number
    except PGError as exc:
        raise DBError("cannot count media rows: %s" % clean_pg_message(exc)) from None
    finally:
        if was_idle:
            _end_transaction(conn)
    return counts


def _is_idle(conn):
    """True when no transaction is open (then the enumeration may end the one it opens)."""
    return conn.status == psycopg2.extensions.STATUS_READY


def _end_transaction(conn):
    """Roll back the read-only transaction the enumeration opened (it wrote nothing)."""
    try:
        if not conn.closed and conn.status != psycopg2.extensions.STATUS_READY:
            conn.rollback()
    except PGError:  # pragma: no cover - defensive
        pass


def iter_rows_objects(conn, scope=("cache",), include_backups=False, shard_index=0, shard_count=1,
                      limit=None, batch_size=2000, changed=None):
    """Yield RowObjects for every row owning media, kind by kind, ordered by id.

    A server-side (named) cursor fetches ``batch_size`` rows at a time, so memory stays bounded
    with any number of rows. ``limit`` caps the total number of rows; sharding keeps the rows
    with ``id % shard_count = shard_index``. Suspended accounts' media attachments (files and
    thumbnails), and every backup, come out with acl "private" (avatars and headers stay public).
    """
    scope, shard_index, shard_count = _check_args(scope, shard_index, shard_count, limit)
    batch_size = max(1, int(batch_size))
    was_idle = _is_idle(conn)
    columns = _Columns(conn)
    remaining = None if limit is None else int(limit)
    try:
        for number, spec in enumerate(_KIND_SPECS):
            if remaining is not None and remaining <= 0:
                return
            query = _kind_query(columns, spec, scope, include_backups, shard_index, shard_count, "rows", changed)
            if query is None:
                continue
            sql, params = query
            if remaining is not None:
                sql += " LIMIT %s"
                params = params + [remaining]
            kind = spec[0]
            cur = conn.cursor(name="fediverse_media_%d" % number)
            cur.itersize = batch_size
            try:
                cur.execute(sql, params)
                for rid, file_name, content_type, remote, version, suspended, var in cur:
                    row = {"id": rid, "file_name": file_name, "content_type": content_type, "var": var}
                    if remaining is not None:
                        remaining -= 1
                    yield layout.row_objects(kind, row, remote=remote, storage_schema_version=version,
                                             suspended=suspended)
            finally:
                if not conn.closed:
                    cur.close()
    except PGError as exc:
        raise DBError("cannot read media rows: %s" % clean_pg_message(exc)) from None
    finally:
        if was_idle:
            _end_transaction(conn)
