# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving Misskey's local drive files: deleting the local copies after the soak period.

The move never deletes a local file. This separate step (``misskey_drive_move`` ``state=purged``)
deletes the local files of a row only when, ``soak_days`` after its flip (journal ``flipped_at``):

* the ``drive_file`` row, locked with ``SELECT ... FOR UPDATE``, still holds every value the move
  wrote (the backup's new values);
* each object answers HEAD with the local file's size (and, for a single-part upload, its MD5 as
  ETag);
* each name is a regular file, opened through ``files/`` anchored once with safe_fs (never through a
  link, never blocking on a FIFO), whose device and inode are checked again just before the unlink
  (safe_fs.Dir.remove_file).

A row failing any check keeps all its files and is listed with the reason. Deleted names are
recorded in the journal (state ``purged``, column ``purged``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import errno
import hashlib
import json
import os

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import drive_db as ddb
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import content_mismatch
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import (
    LOCAL_KEY,
    VARIANT_COLUMNS,
    VARIANTS,
    DriveMoveError,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import Dir, UnsafePath
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    BotoCoreError,
    ClientError,
    describe_error,
    is_not_found,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    sql = None

CHUNK = 1024 * 1024


class Kept(Exception):
    """A local file that must stay (the message is the reason)."""


# --- files ------------------------------------------------------------------------------------

def open_dir(files_dir):
    """``files/`` as a safe_fs.Dir (anchored once; a link the app's user could change is refused)."""
    try:
        return Dir.anchor(files_dir)
    except OSError as exc:
        raise DriveMoveError("cannot open the directory %s: %s (a symbolic link? give its target)"
                             % (files_dir, exc.strerror or exc)) from None


def open_entry(files, name):
    """``(fd, stat)`` of the regular file ``name`` in ``files`` (a safe_fs.Dir); None when absent;
    Kept otherwise. Never follows a link, never blocks on a FIFO (safe_fs.Dir.open_file)."""
    if not LOCAL_KEY.match(name or ""):
        raise Kept("%r is not a local file name" % (name,))
    try:
        return files.open_file(name)
    except FileNotFoundError:
        return None
    except UnsafePath as exc:
        if exc.errno == errno.ELOOP:
            raise Kept("files/%s is a symbolic link (not followed)" % name) from None
        raise Kept("files/%s is not a regular file" % name) from None
    except OSError as exc:
        raise Kept("cannot open files/%s: %s" % (name, exc.strerror or exc)) from None


def md5_of_fd(fd):
    digest = hashlib.md5()  # noqa: S324 - the checksum S3 uses, not a security measure
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            break
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def unlink_checked(files, name, info):
    """Unlink ``name`` only if it is still the inode ``info`` was taken from (else Kept)."""
    if files.lstat(name) is None:
        return False
    try:
        files.remove_file(name, (info.st_dev, info.st_ino))
    except FileNotFoundError:
        return False
    except UnsafePath:
        raise Kept("files/%s was replaced meanwhile" % name) from None
    return True


def head_object(client, bucket, key):
    try:
        return client.head_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        if is_not_found(exc):
            return None
        raise DriveMoveError(describe_error(exc, bucket=bucket)) from None


def object_matches(head, md5, size):
    """None when the object answers with this size (and MD5 for a single-part ETag), else the reason."""
    if head is None:
        return "the object is missing"
    if head.get("ContentLength") is None:
        return "the object's size is not known"
    problem = content_mismatch(size, md5, head.get("ContentLength"), head.get("ETag"))
    return None if problem is None else "the file has %s" % problem


# --- the journal ------------------------------------------------------------------------------

def journal_columns(cursor):
    return ddb.columns_of(cursor, ddb.JOURNAL) if ddb.table_exists(cursor, ddb.JOURNAL) else set()


def moved_values(cursor, file_id):
    """``({column: old}, {column: new})`` of drive_file as the move wrote them (not yet restored)."""
    cursor.execute(sql.SQL("SELECT column_name, old_value, new_value FROM {} WHERE file_id = %s AND "
                           "table_name = 'drive_file' AND NOT restored ORDER BY seq").format(ddb._ident(ddb.BACKUP)),
                   (file_id,))
    old, new = {}, {}
    for column, before, after in cursor.fetchall():
        old.setdefault(column, before)
        new[column] = after
    return old, new


def moved_files(old, new, with_column=False):
    """``[(local name, object key)]`` of a moved row: each variant whose key the move changed
    (``[(key column, local name, object key)]`` with ``with_column``)."""
    files = []
    for variant in VARIANTS:
        key_column = VARIANT_COLUMNS[variant][0]
        if key_column in new and old.get(key_column) != new[key_column]:
            entry = (old.get(key_column), new[key_column])
            files.append((key_column,) + entry if with_column else entry)
    return files


def _since(columns):
    return "coalesce(flipped_at, updated_at)" if "flipped_at" in columns else "updated_at"


class Purger(object):
    def __init__(self, conn, client, bucket, files_dir, soak_days=14, check_mode=False, batch_size=100,
                 sample_size=5):
        if int(soak_days) < 1:
            raise DriveMoveError("soak_days must be at least 1 (got %s)" % soak_days)
        self.conn = conn
        self.client = client
        self.bucket = bucket
        self.files_dir = files_dir
        self.soak_days = int(soak_days)
        self.check_mode = check_mode
        self.batch_size = max(1, int(batch_size))
        self.sample_size = int(sample_size)
        self.stats = dict(due=0, purged=0, files_deleted=0, bytes_freed=0, kept=0, soaking=0)
        self.kept = []
        self.sample = []
        self.next_due = None

    def run(self):
        files = open_dir(self.files_dir)
        try:
            with self.conn.cursor() as cursor:
                columns = journal_columns(cursor)
                if columns and not self.check_mode:
                    ddb.ensure_tables(cursor)
                    columns = journal_columns(cursor)
            self.conn.commit()
            if not columns:
                return self.result()
            self._soaking(columns)
            after = ""
            while True:
                with self.conn.cursor() as cursor:
                    cursor.execute(sql.SQL(
                        "SELECT file_id FROM {} WHERE state = 'flipped' AND {} <= now() - make_interval(days => %s) "
                        "AND file_id > %s ORDER BY file_id LIMIT %s").format(ddb._ident(ddb.JOURNAL), sql.SQL(_since(columns))),
                        (self.soak_days, after, self.batch_size))
                    file_ids = [row[0] for row in cursor.fetchall()]
                self.conn.rollback()
                if not file_ids:
                    break
                for file_id in file_ids:
                    after = file_id
                    self.stats["due"] += 1
                    self._one(files, file_id)
        finally:
            files.close()
        return self.result()

    def _soaking(self, columns):
        with self.conn.cursor() as cursor:
            cursor.execute(sql.SQL(
                "SELECT count(*), min({since}) + make_interval(days => %s) FROM {tab} WHERE state = 'flipped' "
                "AND {since} > now() - make_interval(days => %s)").format(
                since=sql.SQL(_since(columns)), tab=ddb._ident(ddb.JOURNAL)), (self.soak_days, self.soak_days))
            count, due = cursor.fetchone()
        self.conn.rollback()
        self.stats["soaking"] = count
        self.next_due = due.isoformat() if due is not None else None

    def _keep(self, file_id, names, reason):
        self.stats["kept"] += 1
        if len(self.kept) < 50:
            self.kept.append(dict(id=file_id, files=names, reason=reason))

    def _one(self, drive_dir, file_id):
        opened = []
        names = []
        try:
            with self.conn.cursor() as cursor:
                old, new = moved_values(cursor, file_id)
                files = moved_files(old, new)
                names = [name for name, _key in files]
                if not files:
                    raise Kept("no saved values of the move (restored?)")
                columns = sorted(new)
                cursor.execute(sql.SQL("SELECT {} FROM drive_file WHERE id = %s FOR UPDATE").format(
                    sql.SQL(", ").join(ddb._ident(c) for c in columns)), (file_id,))
                current = cursor.fetchone()
                if current is None:
                    raise Kept("the drive_file row is gone")
                changed = [c for c, value in zip(columns, current) if value != new[c]]
                if changed:
                    raise Kept("the row changed since the move (%s)" % ", ".join(changed))
                for name, key in files:
                    entry = open_entry(drive_dir, name)
                    if entry is None:
                        continue  # already gone (an earlier, interrupted purge)
                    opened.append((name, entry[0], entry[1]))
                    md5, size = md5_of_fd(entry[0])
                    reason = object_matches(head_object(self.client, self.bucket, key), md5, size)
                    if reason:
                        raise Kept("%s: %s" % (key, reason))
                deleted = []
                for name, _fd, info in opened:
                    if self.check_mode or unlink_checked(drive_dir, name, info):
                        deleted.append(name)
                    self.stats["bytes_freed"] += info.st_size
                if not self.check_mode:
                    cursor.execute(sql.SQL(
                        "UPDATE {} SET state = 'purged', purged = %s, detail = NULL, updated_at = now() WHERE file_id = %s"
                    ).format(ddb._ident(ddb.JOURNAL)), (json.dumps(deleted), file_id))
            if self.check_mode:
                self.conn.rollback()
            else:
                self.conn.commit()
        except Kept as exc:
            self.conn.rollback()
            self._keep(file_id, names, str(exc))
            return
        except BaseException:
            self.conn.rollback()
            raise
        finally:
            for _name, fd, _info in opened:
                os.close(fd)
        self.stats["purged"] += 1
        self.stats["files_deleted"] += len(deleted)
        if len(self.sample) < self.sample_size:
            self.sample.append(dict(id=file_id, files=deleted))

    def result(self):
        return dict(changed=bool(self.stats["purged"]),
                    stats=self.stats, kept=self.kept, sample=self.sample, next_due=self.next_due,
                    soak_days=self.soak_days)
