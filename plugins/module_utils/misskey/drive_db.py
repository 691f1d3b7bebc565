# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving Misskey's local drive files: the database side.

* Candidates: ``drive_file`` rows with ``storedInternal AND NOT isLink AND userHost IS NULL``
  (cached copies of remote files are left to Misskey's own cache cleaning), read in id order
  after the last id seen (keyset, never OFFSET).
* ``fediverse_object_storage_drive_journal``: one row per drive file (copied, flipped, missing,
  restored). ``fediverse_object_storage_drive_backup``: every old value a flip changes (drive_file,
  users, emojis, meta, ...), as jsonb, with the new value, so that rollback can put back exactly
  the values still carrying what the flip wrote.
* ``flip``: one short transaction per row, guarded by the old values (a row Misskey changed
  meanwhile is left alone), that also rewrites the URLs copied into other tables by exact equality
  (and, for 13.11+ avatars, the media-proxy URL holding the file URL encoded).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import json
from urllib.parse import quote

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import DriveMoveError
from ansible_collections.fediverse.object_storage.plugins.module_utils.db.postgres import table_columns

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    sql = None

JOURNAL = "fediverse_object_storage_drive_journal"
BACKUP = "fediverse_object_storage_drive_backup"
FILE_COLUMNS = ("id", "name", "type", "md5", "size", "url", "thumbnailUrl", "webpublicUrl", "webpublicType",
                "accessKey", "thumbnailAccessKey", "webpublicAccessKey", "storedInternal")
OPTIONAL_FILE_COLUMNS = ("webpublicType",)
# Tables and columns holding copies of drive file URLs (those that exist are used).
DEPENDENT_COLUMNS = (
    # backgroundUrl: Sharkey's profile background (its migration 1696548899000-background.js).
    ("user", ("avatarUrl", "bannerUrl", "backgroundUrl")),
    ("emoji", ("url", "originalUrl", "publicUrl")),
    ("meta", ("iconUrl", "app192IconUrl", "app512IconUrl", "bannerUrl", "backgroundImageUrl", "logoImageUrl",
              "mascotImageUrl", "errorImageUrl", "notFoundImageUrl", "infoImageUrl", "serverErrorImageUrl",
              "sidebarLogoUrl")),
    ("avatar_decoration", ("url",)),
    ("role", ("iconUrl",)),
    ("announcement", ("imageUrl",)),
    ("ad", ("imageUrl",)),
)
# URL columns a drive move leaves on purpose, with the reason (for the summary and check mode).
LEFT_COLUMNS = (
    ("drive_file", "src", "the URL a file was uploaded from (upload from URL), not where Misskey serves it"),
    ("drive_file", "uri", "the ActivityPub id of a remote file; local files have none"),
)


def _ident(name):
    return sql.Identifier(name)


def columns_of(cursor, table):
    """Column names of Misskey's ``table``, its name quoted (``user`` is a reserved word in SQL)."""
    return table_columns(cursor, '"%s"' % table)


def table_exists(cursor, table):
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", (table,))
    return cursor.fetchone()[0]


class Schema(object):
    """The columns this Misskey (or fork) has: detected once per run."""

    def __init__(self, cursor):
        existing = columns_of(cursor, "drive_file")
        missing = [c for c in FILE_COLUMNS + ("isLink", "userHost") if c not in existing and c not in OPTIONAL_FILE_COLUMNS]
        if missing:
            raise DriveMoveError("drive_file lacks %s: is this Misskey v11 or later?" % ", ".join(missing))
        self.file_columns = [c for c in FILE_COLUMNS if c in existing]
        self.dependents = []
        self.absent = []
        for table, columns in DEPENDENT_COLUMNS:
            have = columns_of(cursor, table)
            present = [c for c in columns if c in have]
            if present and "id" in have:
                self.dependents.append((table, present))
            self.absent += ["%s.%s" % (table, c) for c in columns if c not in present or "id" not in have]
        self.left = [("%s.%s" % (table, column), why) for table, column, why in LEFT_COLUMNS
                     if column in (existing if table == "drive_file" else columns_of(cursor, table))]

    def url_columns(self):
        """Which URL-carrying columns a move rewrites here, which it leaves and why (summary, check mode)."""
        rewritten = ["drive_file.%s" % c for c in
                     ("url", "thumbnailUrl", "webpublicUrl", "accessKey", "thumbnailAccessKey", "webpublicAccessKey")]
        rewritten += ["%s.%s" % (table, c) for table, columns in self.dependents for c in columns]
        left = [dict(column=name, why=why) for name, why in self.left]
        left += [dict(column=name, why="not in this database (another version or fork)") for name in self.absent]
        return dict(rewritten=rewritten, left=left)


def ensure_tables(cursor):
    cursor.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (file_id varchar(32) PRIMARY KEY, state varchar(16) NOT NULL, "
        "detail text, updated_at timestamptz NOT NULL DEFAULT now())").format(_ident(JOURNAL)))
    cursor.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (seq bigserial PRIMARY KEY, file_id varchar(32) NOT NULL, "
        "table_name text NOT NULL, row_id text NOT NULL, column_name text NOT NULL, old_value jsonb, "
        "new_value jsonb, restored boolean NOT NULL DEFAULT false, saved_at timestamptz NOT NULL DEFAULT now())"
    ).format(_ident(BACKUP)))
    # flipped_at (when the soak before a purge starts) and purged (names deleted) came later: journals
    # from before get the columns, their flipped rows the time of their last state change.
    if "flipped_at" not in columns_of(cursor, JOURNAL):
        cursor.execute(sql.SQL("ALTER TABLE {} ADD COLUMN flipped_at timestamptz").format(_ident(JOURNAL)))
        cursor.execute(sql.SQL("UPDATE {} SET flipped_at = updated_at WHERE state = 'flipped'").format(_ident(JOURNAL)))
    cursor.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS purged jsonb").format(_ident(JOURNAL)))
    for table in (JOURNAL, BACKUP):
        cursor.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(_ident(table)))


def candidates(cursor, schema, after_id, batch_size):
    """The next batch of local files to move, in id order after ``after_id``."""
    cursor.execute(sql.SQL(
        'SELECT {} FROM drive_file WHERE "storedInternal" AND NOT "isLink" AND "userHost" IS NULL'
        ' AND id > %s ORDER BY id LIMIT %s').format(sql.SQL(", ").join(_ident(c) for c in schema.file_columns)),
        (after_id, batch_size))
    return [dict(zip(schema.file_columns, row)) for row in cursor.fetchall()]


def count_candidates(cursor):
    cursor.execute('SELECT count(*) FROM drive_file WHERE "storedInternal" AND NOT "isLink" AND "userHost" IS NULL')
    return cursor.fetchone()[0]


def journal(cursor, file_id, state, detail=None):
    cursor.execute(sql.SQL(
        "INSERT INTO {tab} AS j (file_id, state, detail, updated_at) VALUES (%s, %s, %s, now()) "
        "ON CONFLICT (file_id) DO UPDATE SET state = EXCLUDED.state, detail = EXCLUDED.detail, updated_at = now() "
        "WHERE j.state IS DISTINCT FROM EXCLUDED.state OR j.detail IS DISTINCT FROM EXCLUDED.detail"
    ).format(tab=_ident(JOURNAL)), (file_id, state, detail))


def js_encode(text):
    """encodeURIComponent."""
    return quote(text, safe="-_.!~*'()")


def _rewrite(value, url_map):
    """The new value of a dependent column, or None: exact equality, or the media-proxy form
    (``...?url=<encodeURIComponent(old)>`` followed by ``&`` or the end) of 13.11+ avatars."""
    if value in url_map:
        return url_map[value]
    for old, new in url_map.items():
        token = "url=" + js_encode(old)
        position = value.find(token)
        if position > 0 and value[position - 1] in "?&":
            end = position + len(token)
            if end == len(value) or value[end] == "&":
                return value[:position] + "url=" + js_encode(new) + value[end:]
    return None


def _backup(cursor, file_id, table, row_id, column, old, new):
    cursor.execute(sql.SQL(
        "INSERT INTO {} (file_id, table_name, row_id, column_name, old_value, new_value) VALUES (%s, %s, %s, %s, %s, %s)"
    ).format(_ident(BACKUP)), (file_id, table, str(row_id), column, json.dumps(old), json.dumps(new)))


def dependent_changes(cursor, schema, url_map):
    """``[(table, row id, column, old, new)]`` for every copied URL to rewrite (read only)."""
    changes = []
    olds = list(url_map)
    encoded = ["%url=" + js_encode(old).replace("%", "\\%").replace("_", "\\_") + "%" for old in olds]
    for table, columns in schema.dependents:
        for column in columns:
            cursor.execute(sql.SQL("SELECT id, {col} FROM {tab} WHERE {col} = ANY(%s) OR {col} LIKE ANY(%s)").format(
                col=_ident(column), tab=_ident(table)), (olds, encoded))
            for row_id, value in cursor.fetchall():
                new = _rewrite(value, url_map)
                if new is not None and new != value:
                    changes.append((table, row_id, column, value, new))
    return changes


def flip(conn, schema, row, updates, url_map):
    """Point one row (and the URL copies) at the bucket in one transaction, guarded by the old values.

    Returns the number of dependent values rewritten, or None when the row changed meanwhile
    (nothing is written then).
    """
    with conn.cursor() as cursor:
        guard_columns = [c for c in updates if c != "storedInternal"]
        cursor.execute(sql.SQL('SELECT {} FROM drive_file WHERE id = %s FOR UPDATE').format(
            sql.SQL(", ").join(_ident(c) for c in guard_columns + ["storedInternal"])), (row["id"],))
        current = cursor.fetchone()
        if current is None or not current[-1] or list(current[:-1]) != [row[c] for c in guard_columns]:
            conn.rollback()
            return None
        for column, new in updates.items():
            _backup(cursor, row["id"], "drive_file", row["id"], column, row[column], new)
        cursor.execute(sql.SQL('UPDATE drive_file SET {} WHERE id = %s AND "storedInternal" AND {}').format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(_ident(c)) for c in updates),
            sql.SQL(" AND ").join(sql.SQL("{} = %s").format(_ident(c)) for c in guard_columns)),
            list(updates.values()) + [row["id"]] + [row[c] for c in guard_columns])
        if cursor.rowcount != 1:
            conn.rollback()
            return None
        changes = dependent_changes(cursor, schema, url_map)
        for table, row_id, column, old, new in changes:
            _backup(cursor, row["id"], table, row_id, column, old, new)
            cursor.execute(sql.SQL("UPDATE {tab} SET {col} = %s WHERE id = %s AND {col} = %s").format(
                tab=_ident(table), col=_ident(column)), (new, row_id, old))
        journal(cursor, row["id"], "flipped")
        cursor.execute(sql.SQL("UPDATE {} SET flipped_at = now(), purged = NULL WHERE file_id = %s").format(
            _ident(JOURNAL)), (row["id"],))
    conn.commit()
    return len(changes)


def restore(conn, batch_size=100, exclude=()):
    """Put back every backed-up value whose column still holds what the flip wrote.

    Works per drive file, newest backups first, one transaction per file; the drive files in
    ``exclude`` are left as they are. Returns ``(restored values, skipped values)``; skipped ones
    were changed since (by Misskey or an admin).
    """
    exclude = list(exclude)
    restored = skipped = 0
    with conn.cursor() as cursor:
        if not table_exists(cursor, BACKUP):
            conn.rollback()
            return 0, 0
    while True:
        with conn.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT DISTINCT file_id FROM {} WHERE NOT restored AND NOT file_id = ANY(%s) "
                                   "ORDER BY file_id LIMIT %s").format(_ident(BACKUP)), (exclude, batch_size))
            file_ids = [row[0] for row in cursor.fetchall()]
            if not file_ids:
                conn.rollback()
                return restored, skipped
            for file_id in file_ids:
                cursor.execute(sql.SQL(
                    "SELECT seq, table_name, row_id, column_name, old_value, new_value FROM {} "
                    "WHERE file_id = %s AND NOT restored ORDER BY seq DESC").format(_ident(BACKUP)), (file_id,))
                for seq, table, row_id, column, old, new in cursor.fetchall():
                    # psycopg2 decodes jsonb: str, bool, int or None, exactly as saved.
                    cursor.execute(sql.SQL("UPDATE {tab} SET {col} = %s WHERE id = %s AND {col} IS NOT DISTINCT FROM %s").format(
                        tab=_ident(table), col=_ident(column)), (old, row_id, new))
                    if cursor.rowcount == 1:
                        restored += 1
                    else:
                        skipped += 1
                    cursor.execute(sql.SQL("UPDATE {} SET restored = true WHERE seq = %s").format(_ident(BACKUP)), (seq,))
                journal(cursor, file_id, "restored")
                conn.commit()


def still_moved(cursor, predict=False, exclude=()):
    """How many drive_file rows carry a key the move wrote (they are served from the bucket).

    Counted after a restore, or, with ``predict`` (check mode), as they will be once the pending
    backups are restored - except those of the drive files in ``exclude``, which a restore leaves
    alone. The nginx /files/ fallback is needed exactly while this is not 0.
    """
    if not table_exists(cursor, BACKUP):
        return 0
    current = sql.SQL('CASE b.column_name WHEN %s THEN d."accessKey" WHEN %s THEN d."thumbnailAccessKey" '
                      'ELSE d."webpublicAccessKey" END')
    query = sql.SQL(
        "SELECT count(DISTINCT d.id) FROM {tab} b JOIN drive_file d ON d.id = b.row_id "
        "WHERE b.table_name = 'drive_file' AND b.column_name = ANY(%s) AND {cur} = b.new_value #>> '{{}}'").format(
        tab=_ident(BACKUP), cur=current)
    params = [["accessKey", "thumbnailAccessKey", "webpublicAccessKey"], "accessKey", "thumbnailAccessKey"]
    if predict:
        query += sql.SQL(
            " AND NOT EXISTS (SELECT 1 FROM {tab} p WHERE NOT p.restored AND p.table_name = 'drive_file' "
            "AND p.row_id = b.row_id AND p.column_name = b.column_name AND p.new_value = b.new_value "
            "AND NOT p.file_id = ANY(%s))").format(tab=_ident(BACKUP))
        params.append(list(exclude))
    cursor.execute(query, params)
    return cursor.fetchone()[0]


def drop_tables(conn):
    """Remove the journal and backup tables (after a complete rollback, or when the move is final)."""
    with conn.cursor() as cursor:
        if table_exists(cursor, BACKUP):
            cursor.execute(sql.SQL("SELECT count(*) FROM {} WHERE NOT restored").format(_ident(BACKUP)))
            if cursor.fetchone()[0]:
                conn.rollback()
                raise DriveMoveError("%s still holds values that were not restored: roll back first" % BACKUP)
        cursor.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(_ident(BACKUP), _ident(JOURNAL)))
    conn.commit()
