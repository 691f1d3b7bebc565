# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ``media_copy`` reads the media from: the files of ``public/system``, or another bucket.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_engine.py.

Every source has the same interface, and each method takes the rate tokens of the requests it
sends itself (``limiter``: a rate_limit.RateLimiter or None; the filesystem sends none)::

    needs_prepare, prepare(limiter)       once before the first object (S3Source lists its bucket)
    size(key, limiter)                    the size of a source object; None when it does not exist
    locate(key, limiter)                  (size, retired): the size, and whether the object was found
                                          at its retired place (Mastodon's cache moved to cache.old)
    open(key, limiter)                    a readable binary file object, to use with ``with``
    read_range(key, offset, length, limiter)   ``length`` bytes from ``offset`` (multipart parts)
    copy_source(key)                      a CopyObject ``CopySource`` when the destination's keys can
                                          read the object server side, else None

``UnsafeSource`` is raised for an object that must never be uploaded (a link below the root, a
file the app's user does not own).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import errno
import io
import os
import threading

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import acquire
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import resolve_endpoint
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import Dir, UnsafePath
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs_open import open_below, real_path
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import (
    BucketIndex,
    join_key,
    listing_prefix,
    use_fast_timestamps,
)

# "The file does not exist": the only source errors that count as a missing source. Anything else
# (EACCES, EIO, ESTALE...) is a failure, in verify mode too: an unreadable file was not verified.
NOT_FOUND_ERRNOS = (errno.ENOENT, errno.ENOTDIR)

# Where the migration's retirement (mastodon/cache_retirement.py) moves Mastodon's cache: a file of ``cache/``
# no longer there is looked for below ``cache.old/`` (same relative path) before it counts as missing.
RETIRED_CACHE = (("cache/", "cache.old/"),)


class UnsafeSource(Exception):
    """The source must never be uploaded: a symbolic link (or reached through one), or a file the
    app's user does not own (a hard link to another user's file). Reported, never uploaded."""


class FilesystemSource(object):
    """Files below Mastodon's ``public/system`` (PAPERCLIP_ROOT_PATH). Only ever read, through the
    safe room (fs/safe_fs.py).

    The app user owns that tree, so ``system_root`` is anchored ONCE (``Dir.anchor``: a link on the
    way is followed only when root alone can change it; one the app user could swap is refused, with
    the path to give instead) and every file is opened below that descriptor, never through a link
    (safe_fs_open: one ``openat2`` refusing every link, or one ``openat`` checked through
    ``/proc/self/fd``, else a walk component by component). A link raises
    ``UnsafeSource``. So does a file the owner of ``system_root`` (the app's user) does not own: the
    app user cannot have written it, only hard-linked it there (``fs.protected_hardlinks=0``) or
    found it there, and it may be any user's private file. When the tree is root's, a root-owned
    file with more than one link is refused for the same reason.
    """

    needs_prepare = False  # nothing to list; reading a file sends no request

    def __init__(self, system_root, retired_prefixes=()):
        self.system_root = os.path.abspath(system_root)
        # ((prefix, retired prefix), ...): a key under ``prefix`` whose file is not there is read from
        # ``retired prefix`` + the rest of the key when it is there (RETIRED_CACHE: cache/ -> cache.old/).
        self.retired_prefixes = tuple(retired_prefixes)
        self._anchor = None
        self._real = None
        self._owner = None
        self._lock = threading.Lock()

    def anchor(self):
        """The anchored ``system_root`` (opened on first use): ``UnsafePath`` for a link the app user
        could change, ``OSError`` when it cannot be opened."""
        if self._anchor is None:
            with self._lock:
                if self._anchor is None:
                    anchor = Dir.anchor(self.system_root)
                    self._owner = anchor.stat().st_uid
                    self._real = real_path(anchor)
                    self._anchor = anchor
        return self._anchor

    def close(self):
        with self._lock:
            if self._anchor is not None:
                self._anchor.close()
                self._anchor = None

    def _relative(self, key):
        relative = key.strip("/")
        if not relative or any(part in ("", ".", "..") or "\x00" in part for part in relative.split("/")):
            raise UnsafeSource("key %r is not a plain relative path" % key)
        return relative

    def _check_owner(self, key, st):
        if st.st_uid != self._owner:
            raise UnsafeSource("%s is owned by uid %d, not by uid %d that owns %s: a file the app's user did not "
                               "write (e.g. a hard link to another user's file) is never uploaded"
                               % (key, st.st_uid, self._owner, self.system_root))
        if st.st_uid == 0 and st.st_nlink > 1:
            raise UnsafeSource("%s belongs to root and has %d hard links: never uploaded (it may be a link to "
                               "a private file)" % (key, st.st_nlink))

    def _places(self, key):
        """The relative paths a key's file may be at: its own, then its retired place (if any)."""
        relative = self._relative(key)
        places = [relative]
        for prefix, retired in self.retired_prefixes:
            if relative.startswith(prefix):
                places.append(retired + relative[len(prefix):])
        return places

    def _open(self, key):
        """``(fd, stat, retired)``: the source, read-only, at its own place or else (not found there) at its
        retired place (``retired`` True). ``UnsafeSource`` for a link or a file of another owner; ``None``
        instead of the descriptor for anything but a regular file; ``OSError`` else (ENOENT when in neither)."""
        places = self._places(key)
        anchor = self.anchor()
        for number, relative in enumerate(places):
            try:
                fd, st = open_below(anchor, relative, self._real)
            except UnsafePath as exc:
                if exc.errno == errno.EINVAL:  # a FIFO, a device, a directory: no media file
                    return None, None, False
                raise UnsafeSource(str(exc)) from None
            except OSError as exc:
                if exc.errno in NOT_FOUND_ERRNOS and number + 1 < len(places):
                    continue  # not there: its retired place next
                raise
            try:
                self._check_owner(key, st)
            except BaseException:
                os.close(fd)
                raise
            return fd, st, number > 0
        raise AssertionError("unreachable")  # pragma: no cover - the last place raises or returns

    def open_fd(self, key):
        """``(fd, stat)`` of the source, read-only (at its retired place when it was retired).
        ``UnsafeSource`` for a link or a file of another owner; ``None`` instead of the descriptor for
        anything but a regular file; ``OSError`` else."""
        fd, st, _retired = self._open(key)
        return fd, st

    def prepare(self, limiter=None):
        """Nothing to do: the files are looked up one by one."""

    def copy_source(self, key):
        """Files go through this host, never server side."""
        return None

    def locate(self, key, limiter=None):
        """``(size, retired)``: the size of a regular source file (None when it does not exist, or is no
        regular file) and whether it was found at its retired place (``cache.old``); ``UnsafeSource`` for
        links and files of another owner; any other error (EACCES, EIO...) raises."""
        try:
            fd, st, retired = self._open(key)
        except OSError as exc:
            if exc.errno in NOT_FOUND_ERRNOS:
                return None, False
            raise
        if fd is None:
            return None, False
        os.close(fd)
        return st.st_size, retired

    def size(self, key, limiter=None):
        """The size of a regular source file; None when it does not exist (or is no regular file);
        ``UnsafeSource`` for links and files of another owner; any other error (EACCES, EIO...) raises."""
        return self.locate(key, limiter)[0]

    def open(self, key, limiter=None):
        """The file, opened read-only without following a link (``UnsafeSource`` otherwise)."""
        fd, _st = self.open_fd(key)
        if fd is None:
            raise UnsafeSource("%s is not a regular file" % key)
        return os.fdopen(fd, "rb")

    def read_range(self, key, offset, length, limiter=None):
        with self.open(key) as fh:
            fh.seek(offset)
            return fh.read(length)


class S3Source(object):
    """Objects in another bucket (moving between providers, as in the seeds' S3-to-S3 tool).

    The source bucket is listed ONCE into a BucketIndex (sizes), so a missing source object costs
    no request. When source and destination share the endpoint and keys (``same_account``),
    ``copy_source`` lets the engine copy objects server side (CopyObject); otherwise they are
    streamed through this host, one GET (or ranged GET per part) each.
    """

    def __init__(self, client, bucket, key_prefix="", same_account=False):
        self.client = client
        use_fast_timestamps(client)
        self.bucket = bucket
        self.key_prefix = key_prefix or ""
        self.same_account = bool(same_account)
        self.index = None

    @property
    def needs_prepare(self):
        return self.index is None

    def source_key(self, key):
        return join_key(self.key_prefix, key)

    def prepare(self, limiter=None):
        """List the source bucket once (one rate token per page)."""
        if self.index is None:
            self.index = BucketIndex.from_listing(self.client, self.bucket, listing_prefix(self.key_prefix), limiter)

    def copy_source(self, key):
        if not self.same_account:
            return None
        return {"Bucket": self.bucket, "Key": self.source_key(key)}

    def size(self, key, limiter=None):
        self.prepare(limiter)
        return self.index.size_of(self.source_key(key))

    def locate(self, key, limiter=None):
        """``(size, False)``: a bucket has no retired place."""
        return self.size(key, limiter), False

    def open(self, key, limiter=None):
        """The whole object, read into memory (objects past the multipart threshold go by read_range)."""
        acquire(limiter)
        return io.BytesIO(self.client.get_object(Bucket=self.bucket, Key=self.source_key(key))["Body"].read())

    def read_range(self, key, offset, length, limiter=None):
        acquire(limiter)
        rng = "bytes=%d-%d" % (offset, offset + length - 1)
        return self.client.get_object(Bucket=self.bucket, Key=self.source_key(key), Range=rng)["Body"].read()


def same_account(source_endpoint, source_access_key, endpoint, access_key):
    """True when a server-side CopyObject can reach the source (same endpoint, same keys)."""
    try:
        same_endpoint = resolve_endpoint(source_endpoint) == resolve_endpoint(endpoint)
    except ValueError:
        return False
    return same_endpoint and (not source_access_key or source_access_key == access_key)
