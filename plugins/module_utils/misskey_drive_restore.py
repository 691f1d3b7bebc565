# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling the drive move back after a purge: the deleted local files come back first.

For every moved row that rollback will restore (its ``drive_file`` key still holds what the move
wrote) and whose old local name is absent from ``files/``, the object is written back: a temporary
file created ``O_EXCL|O_NOFOLLOW`` in ``files/``, its size and MD5 checked against the object, the
owner and group of ``files/``, the mode of its siblings, then linked into place under its old name
(never over an existing name). Only then are the rows restored (misskey_drive_db.restore). An object
that is missing makes the rollback fail before anything changes, unless ``skip_unrestorable``: then
those rows are left pointing at the bucket and reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import binascii
import collections
import errno
import hashlib
import os
import stat

from ansible_collections.fediverse.object_storage.plugins.module_utils import misskey_drive_db as ddb
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey_drive import LOCAL_KEY, DriveMoveError
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey_drive_purge import (
    CHUNK,
    head_object,
    moved_files,
    moved_values,
    open_dir,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import (
    BotoCoreError,
    ClientError,
    describe_error,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    sql = None

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
DEFAULT_MODE = 0o644


def purged_rows(conn):
    """How many moved rows not yet restored had local files deleted by a purge."""
    with conn.cursor() as cursor:
        if not ddb.table_exists(cursor, ddb.JOURNAL) or not ddb.table_exists(cursor, ddb.BACKUP):
            conn.rollback()
            return 0
        cursor.execute(sql.SQL("SELECT count(*) FROM {j} WHERE state = 'purged' AND file_id IN "
                               "(SELECT file_id FROM {b} WHERE NOT restored)").format(
            j=ddb._ident(ddb.JOURNAL), b=ddb._ident(ddb.BACKUP)))
        count = cursor.fetchone()[0]
    conn.rollback()
    return count


def absent(dir_fd, name):
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        return False
    except FileNotFoundError:
        return True


def files_to_write_back(conn, dir_fd):
    """``{file_id: [(local name, object key)]}``: the files rollback needs back on disk."""
    wanted = collections.OrderedDict()
    with conn.cursor() as cursor:
        if not ddb.table_exists(cursor, ddb.BACKUP):
            conn.rollback()
            return wanted
        cursor.execute(sql.SQL("SELECT DISTINCT file_id FROM {} WHERE NOT restored AND table_name = 'drive_file' "
                               "ORDER BY file_id").format(ddb._ident(ddb.BACKUP)))
        file_ids = [row[0] for row in cursor.fetchall()]
        for file_id in file_ids:
            old, new = moved_values(cursor, file_id)
            files = moved_files(old, new, with_column=True)
            if not files:
                continue
            cursor.execute(sql.SQL("SELECT {} FROM drive_file WHERE id = %s").format(
                sql.SQL(", ").join(ddb._ident(column) for column, _n, _k in files)), (file_id,))
            current = cursor.fetchone()
            if current is None:
                continue
            for (column, name, key), value in zip(files, current):
                if value != key:
                    continue  # this key is not restored (changed since): its file is not needed
                if not LOCAL_KEY.match(name or ""):
                    raise DriveMoveError("drive_file %s: saved %s %r is not a local file name" % (file_id, column, name))
                if absent(dir_fd, name):
                    wanted.setdefault(file_id, []).append((name, key))
    conn.rollback()
    return wanted


def sibling_mode(dir_fd, limit=200):
    """The most common mode of the regular files in ``files/`` (0644 when there are none)."""
    modes = collections.Counter()
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            if sum(modes.values()) >= limit:
                break
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            modes[stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)] += 1
    return modes.most_common(1)[0][0] if modes else DEFAULT_MODE


def write_back(client, bucket, dir_fd, name, key, uid, gid, mode):
    """Put the object ``key`` back as ``files/<name>``. Returns the bytes written, or None when the
    name exists meanwhile (it is never overwritten)."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise DriveMoveError("cannot read %s: %s" % (key, describe_error(exc, bucket=bucket))) from None
    temp = ".fos-restore-%s-%s" % (name, binascii.hexlify(os.urandom(4)).decode())
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        digest = hashlib.md5()  # noqa: S324 - the checksum S3 uses, not a security measure
        size = 0
        body = response["Body"]
        with os.fdopen(fd, "wb", closefd=False) as handle:
            for chunk in iter(lambda: body.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                handle.write(chunk)
            handle.flush()
            os.fsync(fd)
        etag = (response.get("ETag") or "").strip('"')
        if size != response.get("ContentLength") or (etag and "-" not in etag and etag != digest.hexdigest()):
            raise DriveMoveError("%s: %d bytes read do not match the object (size %s, ETag %s)"
                                 % (key, size, response.get("ContentLength"), etag))
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)
        try:
            os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise
            return None
        return size
    finally:
        os.close(fd)
        os.unlink(temp, dir_fd=dir_fd)


def prepare(conn, client_factory, files_dir, skip_unrestorable=False, check_mode=False):
    """Write back every purged file rollback needs; return ``(unrestorable, report)``.

    ``unrestorable`` = ``[{id, files, reason}]`` (left out of the restore with ``skip_unrestorable``,
    else DriveMoveError before anything changes); ``report`` = counts for the result.
    """
    dir_fd = open_dir(files_dir)
    try:
        wanted = files_to_write_back(conn, dir_fd)
        report = dict(written_back=0, bytes_written_back=0, present_meanwhile=0)
        if not wanted:
            return [], report
        client, bucket = client_factory()
        unrestorable = []
        for file_id, files in wanted.items():
            gone = [key for _name, key in files if head_object(client, bucket, key) is None]
            if gone:
                unrestorable.append(dict(id=file_id, files=[n for n, _k in files],
                                         reason="object missing in the bucket: %s" % ", ".join(gone)))
        if unrestorable and not skip_unrestorable:
            raise DriveMoveError(
                "%d moved row(s) had their local files deleted and their objects are gone (%s); nothing was "
                "changed. Put the objects back, or set skip_unrestorable to roll back the rest (those rows keep "
                "pointing at the bucket)." % (len(unrestorable), "; ".join(
                    "%s: %s" % (u["id"], u["reason"]) for u in unrestorable[:10])))
        skipped = set(u["id"] for u in unrestorable)
        todo = [(name, key) for file_id, files in wanted.items() if file_id not in skipped for name, key in files]
        if check_mode:
            report["written_back"] = len(todo)
            return unrestorable, report
        info = os.fstat(dir_fd)
        mode = sibling_mode(dir_fd)
        for name, key in todo:
            written = write_back(client, bucket, dir_fd, name, key, info.st_uid, info.st_gid, mode)
            if written is None:
                report["present_meanwhile"] += 1
            else:
                report["written_back"] += 1
                report["bytes_written_back"] += written
        return unrestorable, report
    finally:
        os.close(dir_fd)
