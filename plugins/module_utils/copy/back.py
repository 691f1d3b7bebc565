# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollback's copy back: every DB-referenced object that is in the bucket and not on local disk is
written to ``public/system/<key>`` before the app is switched back to local storage.

Plain Python (no Ansible import), used by ``media_copy`` with ``mode=copy_back``; tested against
Ceph RGW in tests/unit/test_copy_back.py (also killed with SIGKILL mid-file, then run again) and
end to end in tests/integration/test_migrate.py.

Every file-system operation goes through the safe room (``safe_fs``): ``public/system`` is anchored
once, directories are entered without following links (missing ones are made 0755 with the owner of
``public/system``, several workers may make the same one at once), and a file is written under a
temporary name, its size checked against the object's ``ContentLength`` and its MD5 against the ETag
(when the ETag is a single-part MD5), its owner and mode set, and only then linked into place without
overwriting anything. A run killed mid-file leaves at most a temporary file
(``.<name>.fos-<hex>.tmp``, owned by root), never a partial file under the final name; the next run
removes the temporaries of the files it writes (only regular files owned by root with one link, under
exactly that naming, see ``safe_fs.Dir.remove_stale_temporaries``).

Files get what Mastodon's filesystem storage gives them: the owner and group of ``public/system``,
mode 0644, and 0600 for the media attachments of a suspended account (Mastodon's
``SuspendAccountService`` ``chmod 0600`` on filesystem storage).

A file already on disk is never overwritten. When it is a regular file of the object's size (as listed
in the bucket) it is counted as ``skipped``; of another size (e.g. truncated by an older version of
this copy back killed mid-file) or not a regular file (a link, a directory), it is counted as
``failed`` and reported (``different_on_disk`` with both sizes), so that the rollback stops and says
which files to look at instead of switching the app back to a broken file.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import stat
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import layout
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs import safe_fs
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import content_mismatch

FILE_MODE = 0o644
PRIVATE_FILE_MODE = 0o600
DIR_MODE = 0o755


class CopyBackError(Exception):
    pass


def file_mode(kind, acl):
    """0600 for a suspended account's media attachment (private), else 0644 (backups too: Mastodon serves them)."""
    if acl == layout.PRIVATE and kind in layout.SUSPENDED_PRIVATE_KINDS:
        return PRIVATE_FILE_MODE
    return FILE_MODE


def body_check(expected_size, etag):
    """A ``safe_fs.write_file`` check: what was received has the object's size and (single-part ETag) MD5."""
    def check(size, digest):
        problem = content_mismatch(size, digest, expected_size, etag)
        if problem:
            raise CopyBackError("received %s: nothing written" % problem)
    return check


def local_entry(root, parts):
    """The ``lstat`` of ``parts`` below ``root`` (a safe_fs.Dir), or None when it is not there.
    Never follows a link: a link or a non-directory on the way raises ``safe_fs.UnsafePath``."""
    try:
        parent = root.open_dir(parts[:-1])
    except FileNotFoundError:
        return None
    with parent:
        return parent.lstat(parts[-1])


def write_file(root, parts, body, owner, mode, size=None, etag=None):
    """Write ``body`` to ``parts`` below ``root`` (a safe_fs.Dir): missing directories made (``DIR_MODE``,
    ``owner``), the temporaries a killed run left for this name removed, then ``safe_fs.write_file``
    (temporary name, size and MD5 checked, ``owner`` and ``mode`` set, linked without overwriting).
    Returns the bytes written."""
    parent = root.open_dir(parts[:-1], create=True, mode=DIR_MODE, owner=owner)
    with parent:
        parent.remove_stale_temporaries(parts[-1])
        return parent.write_file(parts[-1], body, owner=owner, mode=mode, check=body_check(size, etag))


def copy_back(client, bucket, system_root, rows, key_prefix="", stats=None, concurrency=8, check_mode=False,
              index=None, limiter=None):
    """Copy every object of ``rows`` (RowObjects) that is in the bucket and missing on disk to ``system_root``.

    ``index``: a BucketIndex of the bucket (size_of). ``stats``: copy_progress.Stats (copied =
    written back, skipped = already on disk with the object's size, missing_source = in neither
    place, failed; a file on disk of another size is failed and ``different_on_disk`` too).
    Returns the keys written.
    """
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import join_key

    try:
        root = safe_fs.Dir.anchor(system_root)
    except OSError as exc:
        raise CopyBackError("%s: %s" % (system_root, exc)) from None
    here = root.stat()  # a directory: anchor opens nothing else
    owner = (here.st_uid, here.st_gid)
    written = []

    def one(kind, obj, parts):
        key = join_key(key_prefix, obj.key)
        try:
            if limiter is not None:
                limiter.acquire()
            response = client.get_object(Bucket=bucket, Key=key)
            body = response["Body"]
            try:
                size = write_file(root, parts, body, owner, file_mode(kind, obj.acl),
                                  size=response.get("ContentLength"), etag=response.get("ETag"))
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()
        except Exception as exc:  # noqa: BLE001 - one failure never stops the others
            stats.record(kind, "failed", obj.key, reason="%s: %s" % (type(exc).__name__, exc))
            return
        written.append(obj.key)  # list.append is atomic
        stats.record(kind, "copied", obj.key, size)

    try:
        with ThreadPoolExecutor(max_workers=max(1, int(concurrency))) as pool:
            futures = []
            for row in rows:
                objects = list(row.objects)
                stats.add_row(row.kind, len(objects))
                for obj in objects:
                    kind = getattr(obj, "kind", None) or row.kind
                    bucket_size = index.size_of(join_key(key_prefix, obj.key))
                    try:
                        parts = safe_fs.split_relative(obj.key)
                        present = local_entry(root, parts)
                    except OSError as exc:
                        stats.record(kind, "failed", obj.key, reason=str(exc))
                        continue
                    if present is not None:
                        if not stat.S_ISREG(present.st_mode):
                            stats.record(kind, "failed", obj.key, reason=(
                                "on disk but not a regular file (a link, a directory...): not replaced; "
                                "look at it, move it away and run again"))
                        elif bucket_size is not None and present.st_size != bucket_size:
                            stats.record_different_on_disk(kind, obj.key, present.st_size, bucket_size)
                        else:
                            stats.record(kind, "skipped", obj.key)
                        continue
                    if bucket_size is None:
                        stats.record(kind, "missing_source", obj.key, reason="neither on disk nor in the bucket")
                        continue
                    if check_mode:
                        stats.record(kind, "copied", obj.key, bucket_size)
                        continue
                    futures.append(pool.submit(one, kind, obj, parts))
                    if len(futures) > concurrency * 8:
                        futures = [f for f in futures if not f.done()]
            stats.enumeration_done = True
    finally:
        root.close()
    return written
