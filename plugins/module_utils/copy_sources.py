# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where ``media_copy`` reads the media from: the files of ``public/system``, or another bucket.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_engine.py.

Every source has the same interface, and each method takes the rate tokens of the requests it
sends itself (``limiter``: a rate_limit.RateLimiter or None; the filesystem sends none)::

    needs_prepare, prepare(limiter)       once before the first object (S3Source lists its bucket)
    size(key, limiter)                    the size of a source object; None when it does not exist
    open(key, limiter)                    a readable binary file object, to use with ``with``
    read_range(key, offset, length, limiter)   ``length`` bytes from ``offset`` (multipart parts)
    copy_source(key)                      a CopyObject ``CopySource`` when the destination's keys can
                                          read the object server side, else None

``UnsafeSource`` is raised for an object that must never be uploaded (a link below the root).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import errno
import io
import os
import stat

from ansible_collections.fediverse.object_storage.plugins.module_utils.rate_limit import acquire
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import resolve_endpoint
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3_listing import (
    BucketIndex,
    join_key,
    listing_prefix,
    use_fast_timestamps,
)

# "The file does not exist": the only source errors that count as a missing source. Anything else
# (EACCES, EIO, ESTALE...) is a failure, in verify mode too: an unreadable file was not verified.
NOT_FOUND_ERRNOS = (errno.ENOENT, errno.ENOTDIR)


class UnsafeSource(Exception):
    """The source is a symbolic link, or reached through one: reported, never uploaded."""


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class FilesystemSource(object):
    """Files below Mastodon's ``public/system`` (PAPERCLIP_ROOT_PATH). Only ever read.

    The app user owns that tree, so a file is never opened through a symbolic link: the final
    component is opened with ``O_NOFOLLOW`` and the directories above it are checked to be no
    links either (the path the kernel opened must be the expected one below the real root, else
    a walk with ``O_NOFOLLOW`` from the root decides). A link raises ``UnsafeSource``. The root
    itself (an admin's choice) may be reached through links.
    """

    needs_prepare = False  # nothing to list; reading a file sends no request

    def __init__(self, system_root):
        self.system_root = os.path.abspath(system_root)
        self.real_root = os.path.realpath(self.system_root)
        self._root_slash = self.real_root.rstrip("/") + "/"

    def _parts(self, key):
        parts = key.strip("/").split("/")
        if not key.strip("/") or any(part in ("", ".", "..") or "\x00" in part for part in parts):
            raise UnsafeSource("key %r is not a plain relative path" % key)
        return parts

    def _walk_open(self, parts):
        """Open ``parts`` below the real root component by component, never following a link."""
        dir_fd = os.open(self.real_root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | (_O_NONBLOCK if last else _O_DIRECTORY)
                try:
                    fd = os.open(part, flags, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        try:
                            is_link = stat.S_ISLNK(os.lstat(part, dir_fd=dir_fd).st_mode)
                        except OSError:
                            is_link = False
                        if is_link:
                            raise UnsafeSource("%s is a symbolic link" % "/".join(parts[:index + 1])) from None
                    raise
                os.close(dir_fd)
                dir_fd = fd
            fd, dir_fd = dir_fd, None
            return fd
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def open_fd(self, key):
        """A read-only descriptor of the source file; ``UnsafeSource`` for links, ``OSError`` else."""
        parts = self._parts(key)
        expected = self._root_slash + "/".join(parts)  # os.path.join(real_root, *parts), without its cost per call
        try:
            fd = os.open(expected, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = None
        if fd is not None:
            try:
                opened = os.readlink("/proc/self/fd/%d" % fd)
            except OSError:
                opened = None
            if opened == expected:
                return fd
            os.close(fd)
        # A link somewhere, or no /proc: the walk tells which component (or opens it safely).
        return self._walk_open(parts)

    def prepare(self, limiter=None):
        """Nothing to do: the files are looked up one by one."""

    def copy_source(self, key):
        """Files go through this host, never server side."""
        return None

    def size(self, key, limiter=None):
        """The size of a regular source file; None when it does not exist; ``UnsafeSource`` for links;
        any other error (EACCES, EIO...) raises."""
        try:
            fd = self.open_fd(key)
        except ValueError:
            return None
        except OSError as exc:
            if exc.errno in NOT_FOUND_ERRNOS:
                return None
            raise
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return st.st_size

    def open(self, key, limiter=None):
        """The file, opened read-only without following a link (``UnsafeSource`` otherwise)."""
        fd = self.open_fd(key)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafeSource("%s is not a regular file" % key)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

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
