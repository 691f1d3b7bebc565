# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollback's copy back: every DB-referenced object that is in the bucket and not on local disk is
written to ``public/system/<key>`` before the app is switched back to local storage.

Plain Python (no Ansible import), used by ``media_copy`` with ``mode=copy_back``; tested against
Ceph RGW and PostgreSQL in tests/integration/test_migrate.py, its workers sharing new directories in
tests/unit/test_copy_back.py.

Files get what Mastodon's filesystem storage gives them: the owner and group of ``public/system``,
mode 0644, and 0600 for the media attachments of a suspended account (Mastodon's
``SuspendAccountService`` ``chmod 0600`` on filesystem storage). New directories are 0755 with the same
owner. The path is walked with directory file descriptors and ``O_NOFOLLOW``: a link planted by the app
user is never followed, and an existing file is never overwritten (``O_EXCL``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import errno
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.fediverse.object_storage.plugins.module_utils import mastodon_layout as layout

CHUNK = 1024 * 1024
FILE_MODE = 0o644
PRIVATE_FILE_MODE = 0o600
DIR_MODE = 0o755
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)


class CopyBackError(Exception):
    pass


def file_mode(kind, acl):
    """0600 for a suspended account's media attachment (private), else 0644 (backups too: Mastodon serves them)."""
    if acl == layout.PRIVATE and kind in layout.SUSPENDED_PRIVATE_KINDS:
        return PRIVATE_FILE_MODE
    return FILE_MODE


def _open_parent(root_fd, parts, uid, gid, check_mode):
    """A fd of the directory holding ``parts[-1]``, creating missing directories; never through a link."""
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            if name in ("", ".", ".."):
                raise CopyBackError("unsafe path component %r" % name)
            try:
                nfd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise CopyBackError("cannot enter %s: %s (a link or not a directory?)" % (name, exc.strerror)) from None
                if check_mode:
                    os.close(fd)
                    return None
                # The workers write several objects of one new directory (original/ and small/ of a new
                # upload, its siblings) at once: another may create it between the open above and here.
                try:
                    os.mkdir(name, DIR_MODE, dir_fd=fd)
                    created = True
                except FileExistsError:
                    created = False
                try:
                    nfd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
                except OSError as exc:  # a link planted in the meantime
                    raise CopyBackError("cannot enter %s: %s (a link or not a directory?)" % (name, exc.strerror)) from None
                if created:
                    os.fchown(nfd, uid, gid)
                    os.fchmod(nfd, DIR_MODE)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def exists_locally(root_fd, parts):
    """True when the file is there (any kind of entry counts: never overwritten)."""
    fd = os.dup(root_fd)
    try:
        for name in parts[:-1]:
            try:
                nfd = os.open(name, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return False
                raise CopyBackError("cannot enter %s: %s" % (name, exc.strerror)) from None
            os.close(fd)
            fd = nfd
        try:
            os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
            return True
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
    finally:
        os.close(fd)


def write_file(root_fd, parts, body, uid, gid, mode):
    """Create the file (O_EXCL|O_NOFOLLOW), stream ``body`` into it, set owner and mode. Returns bytes written."""
    parent = _open_parent(root_fd, parts, uid, gid, False)
    name = parts[-1]
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=parent)
        written = 0
        try:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                while True:
                    chunk = body.read(CHUNK)
                    if not chunk:
                        break
                    fh.write(chunk)
                    written += len(chunk)
                fh.flush()
                os.fsync(fd)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
        except BaseException:
            os.close(fd)
            os.unlink(name, dir_fd=parent)
            raise
        os.close(fd)
        return written
    finally:
        os.close(parent)


def copy_back(client, bucket, system_root, rows, key_prefix="", stats=None, concurrency=8, check_mode=False,
              index=None, limiter=None):
    """Copy every object of ``rows`` (RowObjects) that is in the bucket and missing on disk to ``system_root``.

    ``index``: a BucketIndex of the bucket (size_of). ``stats``: copy_progress.Stats (copied =
    written back, skipped = already on disk, missing_source = in neither place, failed).
    """
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3_listing import join_key

    st = os.lstat(system_root)
    if not os.path.isdir(system_root) or os.path.islink(system_root):
        raise CopyBackError("%s is not a directory" % system_root)
    uid, gid = st.st_uid, st.st_gid
    root_fd = os.open(system_root, os.O_RDONLY | _DIRECTORY | _NOFOLLOW)
    lock = threading.Lock()
    written = []

    def one(kind, obj):
        key = join_key(key_prefix, obj.key)
        try:
            if limiter is not None:
                limiter.acquire()
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            size = write_file(root_fd, obj.key.split("/"), body, uid, gid, file_mode(kind, obj.acl))
        except Exception as exc:  # noqa: BLE001 - one failure never stops the others
            stats.record(kind, "failed", obj.key, reason="%s: %s" % (type(exc).__name__, exc))
            return
        with lock:
            written.append(obj.key)
        stats.record(kind, "copied", obj.key, size)

    try:
        with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
            futures = []
            for row in rows:
                objects = list(row.objects)
                stats.add_row(row.kind, len(objects))
                for obj in objects:
                    kind = getattr(obj, "kind", None) or row.kind
                    parts = obj.key.split("/")
                    try:
                        if exists_locally(root_fd, parts):
                            stats.record(kind, "skipped", obj.key)
                            continue
                    except (OSError, CopyBackError) as exc:
                        stats.record(kind, "failed", obj.key, reason=str(exc))
                        continue
                    size = index.size_of(join_key(key_prefix, obj.key))
                    if size is None:
                        stats.record(kind, "missing_source", obj.key, reason="neither on disk nor in the bucket")
                        continue
                    if check_mode:
                        stats.record(kind, "copied", obj.key, size)
                        continue
                    futures.append(pool.submit(one, kind, obj))
                    if len(futures) > concurrency * 8:
                        futures = [f for f in futures if not f.done()]
            stats.enumeration_done = True
    finally:
        os.close(root_fd)
    return written
