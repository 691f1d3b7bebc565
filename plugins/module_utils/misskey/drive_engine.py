# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving Misskey's local drive files: the run (copy, verify, flip; or roll back).

Per row, in id order: every object (original, and each variant whose URL is set) is uploaded from
``files/`` with Misskey's headers unless already there with the same bytes, then checked (size and
MD5 from the ETag of a single-part upload; the original also against ``drive_file.md5``); only then
is the row flipped (misskey_drive_db.flip). A run killed at any point leaves every row either
untouched or flipped with verified objects; the next run continues. Local files are only read,
through ``files/`` anchored once with safe_fs: each file of a row is opened once (never through a
link, never blocking on a FIFO) and uploaded from that descriptor. A row with a file that is a
symbolic link, a FIFO or anything but a regular file is refused as unsafe (listed with the reason,
journal state ``unsafe``) and the others are moved.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import errno
import hashlib
import os

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import drive_db as ddb
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import (
    DriveMoveError,
    headers_for,
    plan_row,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import Dir, UnsafePath
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    BotoCoreError,
    ClientError,
    describe_error,
    is_not_found,
)

CHUNK = 1024 * 1024


class Unsafe(Exception):
    """A local file refused for safety (the message is the reason)."""


def open_files_dir(files_dir):
    """``files/`` as a safe_fs.Dir, or None when it does not exist (every file is then missing)."""
    try:
        return Dir.anchor(files_dir)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DriveMoveError("cannot open the directory %s: %s" % (files_dir, exc.strerror or exc)) from None


def open_local(files, local_key):
    """The local file ``files/<local_key>`` opened once for reading (safe_fs: never through a link,
    never blocking); None when it does not exist; Unsafe for a link or anything but a regular file."""
    if files is None:
        return None
    try:
        fd, _info = files.open_file(local_key)
    except FileNotFoundError:
        return None
    except UnsafePath as exc:
        if exc.errno == errno.ELOOP:
            raise Unsafe("files/%s is a symbolic link (not followed)" % local_key) from None
        raise Unsafe("files/%s is not a regular file (a FIFO, a device, a socket or a directory)" % local_key) from None
    except OSError as exc:
        raise DriveMoveError("cannot read files/%s: %s" % (local_key, exc.strerror or exc)) from None
    return os.fdopen(fd, "rb")


def _md5_and_size(handle):
    digest = hashlib.md5()  # noqa: S324 - the checksum S3 and Misskey use, not a security measure
    size = 0
    for chunk in iter(lambda: handle.read(CHUNK), b""):
        digest.update(chunk)
        size += len(chunk)
    handle.seek(0)
    return digest.hexdigest(), size


class DriveMover(object):
    def __init__(self, conn, client, settings, files_dir, instance_url, check_mode=False, batch_size=100,
                 limit=None, sample_size=5, upload_headers="named"):
        self.conn = conn
        self.upload_headers = upload_headers
        self.client = client
        self.bucket = settings["bucket"]
        self.prefix = settings["prefix"]
        self.base_url = settings["base_url"]
        self.public_read = settings["set_public_read"]
        self.files_dir = files_dir
        self.instance_url = instance_url
        self.check_mode = check_mode
        self.batch_size = max(1, int(batch_size))
        self.limit = None if limit is None else int(limit)
        self.sample_size = int(sample_size)
        self.stats = dict(candidates=0, moved=0, objects_uploaded=0, objects_present=0, dependents_rewritten=0,
                          missing=0, changed_meanwhile=0, refused=0, unsafe=0)
        self.missing = []
        self.refused = []
        self.unsafe = []
        self.sample = []
        self.url_columns = None

    # --- S3 ---------------------------------------------------------------------------------

    def _head(self, key):
        try:
            return self.client.head_object(Bucket=self.bucket, Key=key)
        except (BotoCoreError, ClientError) as exc:
            if is_not_found(exc):
                return None
            raise DriveMoveError(describe_error(exc, bucket=self.bucket)) from None

    @staticmethod
    def _same(head, md5, size):
        return head is not None and head.get("ContentLength") == size and head.get("ETag", "").strip('"') == md5

    def _put(self, variant, row, local_key, key, handle):
        """Upload one object from ``handle`` (the local file, opened once by _one)."""
        md5, size = _md5_and_size(handle)
        if variant == "original" and row.get("md5") and md5 != row["md5"]:
            raise DriveMoveError("drive_file %s: files/%s has MD5 %s, the row says %s"
                                 % (row["id"], local_key, md5, row["md5"]))
        if self._same(self._head(key), md5, size):
            self.stats["objects_present"] += 1
            return
        head_bytes = handle.read(16)
        handle.seek(0)
        args = headers_for(variant, row, head_bytes, self.public_read, self.upload_headers)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=handle, ContentLength=size, **args)
        except (BotoCoreError, ClientError) as exc:
            raise DriveMoveError("cannot upload %s: %s" % (key, describe_error(exc, bucket=self.bucket))) from None
        self.stats["objects_uploaded"] += 1
        if not self._same(self._head(key), md5, size):
            raise DriveMoveError("%s in the bucket does not match files/%s after the upload" % (key, local_key))

    # --- the run ----------------------------------------------------------------------------

    def run(self):
        files = open_files_dir(self.files_dir)
        try:
            return self._run(files)
        finally:
            if files is not None:
                files.close()

    def _run(self, files):
        with self.conn.cursor() as cursor:
            schema = ddb.Schema(cursor)
            self.url_columns = schema.url_columns()
            self.stats["candidates"] = ddb.count_candidates(cursor)
            if not self.check_mode:
                ddb.ensure_tables(cursor)
        self.conn.commit()
        after = ""
        done = 0
        while self.limit is None or done < self.limit:
            with self.conn.cursor() as cursor:
                size = self.batch_size if self.limit is None else min(self.batch_size, self.limit - done)
                rows = ddb.candidates(cursor, schema, after, size)
            self.conn.rollback()
            if not rows:
                break
            for row in rows:
                after = row["id"]
                done += 1
                self._one(schema, row, files)
        return self.result()

    def _one(self, schema, row, files):
        try:
            objects, updates, url_map = plan_row(row, self.prefix, self.base_url, self.instance_url)
        except DriveMoveError as exc:
            self.stats["refused"] += 1
            self.refused.append(dict(id=row["id"], reason=str(exc)))
            return
        handles = {}
        try:
            self._move(schema, row, files, objects, updates, url_map, handles)
        finally:
            for handle in handles.values():
                handle.close()

    def _move(self, schema, row, files, objects, updates, url_map, handles):
        absent = []
        unsafe = []
        for _variant, local_key, _key in objects:
            try:
                handle = open_local(files, local_key)
            except Unsafe as exc:
                unsafe.append((local_key, str(exc)))
                continue
            if handle is None:
                absent.append(local_key)
            else:
                handles[local_key] = handle
        if unsafe:
            reason = "; ".join(why for _name, why in unsafe)
            self.stats["unsafe"] += 1
            self.unsafe.append(dict(id=row["id"], files=[name for name, _why in unsafe], reason=reason))
            self._journal(row["id"], "unsafe", reason)
            return
        if absent:
            self.stats["missing"] += 1
            self.missing.append(dict(id=row["id"], files=absent))
            self._journal(row["id"], "missing", ", ".join(absent))
            return
        if len(self.sample) < self.sample_size:
            self.sample.append(dict(id=row["id"], objects=[key for _v, _l, key in objects],
                                    before=dict((c, row[c]) for c in updates), after=updates))
        if self.check_mode:
            self.stats["moved"] += 1
            return
        for variant, local_key, key in objects:
            self._put(variant, row, local_key, key, handles[local_key])
        with self.conn.cursor() as cursor:
            ddb.journal(cursor, row["id"], "copied")
        self.conn.commit()
        rewritten = ddb.flip(self.conn, schema, row, updates, url_map)
        if rewritten is None:
            self.stats["changed_meanwhile"] += 1
            return
        self.stats["moved"] += 1
        self.stats["dependents_rewritten"] += rewritten

    def _journal(self, file_id, state, detail):
        if not self.check_mode:
            with self.conn.cursor() as cursor:
                ddb.journal(cursor, file_id, state, detail)
            self.conn.commit()

    def result(self):
        changed = bool(self.stats["moved"] or self.stats["objects_uploaded"])
        return dict(changed=changed, stats=self.stats, missing=self.missing[:50], refused=self.refused[:50],
                    unsafe=self.unsafe[:50], sample=self.sample, base_url=self.base_url, prefix=self.prefix,
                    upload_headers=self.upload_headers, url_columns=self.url_columns)


def rollback(conn, check_mode=False, drop_backup=False, exclude=()):
    """Restore every value the moves changed (where it still holds what the move wrote), except for
    the drive files in ``exclude`` (whose local files cannot come back); the tables are then kept."""
    exclude = list(exclude)
    with conn.cursor() as cursor:
        pending = 0
        if ddb.table_exists(cursor, ddb.BACKUP):
            cursor.execute('SELECT count(*) FROM "%s" WHERE NOT restored AND NOT file_id = ANY(%%s)' % ddb.BACKUP,
                           (exclude,))
            pending = cursor.fetchone()[0]
        has_tables = ddb.table_exists(cursor, ddb.BACKUP) or ddb.table_exists(cursor, ddb.JOURNAL)
        left = ddb.still_moved(cursor, predict=True, exclude=exclude)  # for check mode: what the restore would leave
    conn.rollback()
    drop_backup = drop_backup and not exclude
    if check_mode:
        return dict(changed=bool(pending) or (drop_backup and has_tables), restored=pending, not_restored=0,
                    still_moved=left)
    restored, skipped = ddb.restore(conn, exclude=exclude)
    with conn.cursor() as cursor:
        left = ddb.still_moved(cursor)
    conn.rollback()
    dropped = False
    if drop_backup and has_tables:
        ddb.drop_tables(conn)
        dropped = True
    return dict(changed=bool(restored or skipped or dropped), restored=restored, not_restored=skipped, dropped=dropped,
                still_moved=left)
