# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rolling the drive move back after a purge: the deleted local files come back first.

For every moved row that rollback will restore (its ``drive_file`` key still holds what the move
wrote) and whose old local name is absent from ``files/``, the object is written back through the
safe room (safe_fs.Dir.write_file on ``files/`` anchored once): a temporary file
``.<name>.fos-<random>.tmp`` created ``O_EXCL|O_NOFOLLOW``, its size and MD5 checked against the
object, the owner and group of ``files/`` and the most common permission bits of its siblings under
the one mode policy (safe_fs.file_mode: never setuid, setgid, sticky or executable), then linked into
place under its old name (never over an existing name). A killed run leaves at most a temporary file,
never a partial file under a drive name; the next run removes the temporaries of ours it finds (root's
regular files named like them) and writes the file again. Only then are the rows restored
(misskey_drive_db.restore). An object that is missing makes the rollback fail before anything changes,
unless ``skip_unrestorable``: then those rows are left pointing at the bucket and reported.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import collections
import re
import stat

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import drive_db as ddb
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import LOCAL_KEY, DriveMoveError
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import (
    head_object,
    moved_files,
    moved_values,
    open_dir,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import (
    FILE_MODE,
    file_mode,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import content_mismatch
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    BotoCoreError,
    ClientError,
    describe_error,
)

try:
    from psycopg2 import sql
except ImportError:  # pragma: no cover - exercised by ansible-test's import sanity test
    sql = None

DEFAULT_MODE = FILE_MODE
_KEY = LOCAL_KEY.pattern[1:-1]
# The temporary files of earlier versions of this room (safe_fs's own naming is safe_fs's to know).
OLD_TEMPORARY = re.compile(r"\A\.fos-restore-(?:%s)-[0-9a-f]{8}\Z" % _KEY)


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


def absent(files, name):
    return files.lstat(name) is None


def files_to_write_back(conn, drive_dir):
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
                if absent(drive_dir, name):
                    wanted.setdefault(file_id, []).append((name, key))
    conn.rollback()
    return wanted


def sibling_mode(files, limit=200):
    """The most common permission bits of the regular files in ``files/`` (0644 when there are none),
    under the one mode policy (safe_fs.file_mode: a planted setuid or executable sibling gives no such bit)."""
    modes = collections.Counter()
    for name, info in files.entries():
        if sum(modes.values()) >= limit:
            break
        if name.startswith(".") or not stat.S_ISREG(info.st_mode):
            continue
        modes[file_mode(info.st_mode)] += 1
    return modes.most_common(1)[0][0] if modes else DEFAULT_MODE


def remove_temporaries(files):
    """Remove what a killed write-back left in ``files/`` (safe_fs's ``remove_stale_temporaries``, in one
    pass, with this room's older naming too): never a drive name, never anything of the app's user,
    never a hard link it planted. Returns how many."""
    return len(files.remove_stale_temporaries(names=_KEY, also=OLD_TEMPORARY))


def write_back(client, bucket, files, name, key, uid, gid, mode):
    """Put the object ``key`` back as ``files/<name>`` (safe_fs: temporary file, size and MD5 checked,
    owner and mode set, then linked). Returns the bytes written, or None when the name exists meanwhile
    (it is never overwritten)."""
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except (BotoCoreError, ClientError) as exc:
        raise DriveMoveError("cannot read %s: %s" % (key, describe_error(exc, bucket=bucket))) from None

    def check(size, md5):
        problem = content_mismatch(size, md5, response.get("ContentLength"), response.get("ETag"))
        if problem:
            raise DriveMoveError("%s: read %s: nothing written" % (key, problem))

    try:
        return files.write_file(name, response["Body"], owner=(uid, gid), mode=mode, check=check)
    except FileExistsError:
        return None


def prepare(conn, client_factory, files_dir, skip_unrestorable=False, check_mode=False, required=True):
    """Write back every purged file rollback needs; return ``(unrestorable, report)``.

    ``unrestorable`` = ``[{id, files, reason}]`` (left out of the restore with ``skip_unrestorable``,
    else DriveMoveError before anything changes); ``report`` = counts for the result. Without
    ``required`` (no purge ever deleted a file), a ``files_dir`` that is absent or a link the app's
    user could change means there is nothing to write back: ``([], {written_back: 0})``.
    """
    try:
        files = open_dir(files_dir)
    except DriveMoveError:
        if required:
            raise
        return [], dict(written_back=0)
    try:
        report = dict(written_back=0, bytes_written_back=0, present_meanwhile=0, temporaries_removed=0)
        wanted = files_to_write_back(conn, files)
        if not wanted:
            if not check_mode:
                report["temporaries_removed"] = remove_temporaries(files)
            return [], report
        client, bucket = client_factory()
        unrestorable = []
        for file_id, names in wanted.items():
            gone = [key for _name, key in names if head_object(client, bucket, key) is None]
            if gone:
                unrestorable.append(dict(id=file_id, files=[n for n, _k in names],
                                         reason="object missing in the bucket: %s" % ", ".join(gone)))
        if unrestorable and not skip_unrestorable:
            raise DriveMoveError(
                "%d moved row(s) had their local files deleted and their objects are gone (%s); nothing was "
                "changed. Put the objects back, or set skip_unrestorable to roll back the rest (those rows keep "
                "pointing at the bucket)." % (len(unrestorable), "; ".join(
                    "%s: %s" % (u["id"], u["reason"]) for u in unrestorable[:10])))
        skipped = set(u["id"] for u in unrestorable)
        todo = [(name, key) for file_id, names in wanted.items() if file_id not in skipped for name, key in names]
        if check_mode:
            report["written_back"] = len(todo)
            return unrestorable, report
        report["temporaries_removed"] = remove_temporaries(files)
        info = files.stat()
        mode = sibling_mode(files)
        for name, key in todo:
            written = write_back(client, bucket, files, name, key, info.st_uid, info.st_gid, mode)
            if written is None:
                report["present_meanwhile"] += 1
            else:
                report["written_back"] += 1
                report["bytes_written_back"] += written
        return unrestorable, report
    finally:
        files.close()
