# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The safe file-system room: every file-system operation on a tree the app's user can write.

The collection runs as root; the app's user (mastodon, misskey) owns Mastodon's ``public/system``,
Misskey's ``files/`` and ``.config/``, the app directory and its config files, and can change any
name there at any moment, also between two steps of ours. So, here and nowhere else in plugins/:

* **Anchor once.** ``Dir.anchor(path)`` opens the directory an admin named, walking from ``/`` one
  component at a time. A symbolic link on that path is followed only when nobody but root can change
  it: the link and the directory holding it belong to root and are not writable by group or others
  (``/var/www -> /srv/www`` made by the admin). A link the app user could make or swap is refused
  with the path to give instead. From then on the anchor is a descriptor; the name is never used again.
* **Walk without links.** Below the anchor every component is opened relative to its parent's
  descriptor with ``O_NOFOLLOW | O_DIRECTORY`` (directories) or ``O_NOFOLLOW | O_NONBLOCK`` (files:
  a FIFO never blocks; anything but a regular file is refused). A name is one component: no ``/``,
  no ``.`` or ``..``, no NUL.
* **Write under a temporary name.** ``Dir.write_file`` creates ``.<name>.fos-<random>.tmp`` with
  ``O_CREAT | O_EXCL | O_NOFOLLOW`` (mode 0600), writes and ``fsync``s it, lets the caller check
  what was written (size, MD5), sets owner and mode through the descriptor, and only then links it
  into place without overwriting (``linkat``: an existing name, even a link, is never replaced) or,
  for a config file, renames it over a regular file. A killed run leaves at most a temporary file,
  never a half-written file under the final name.
* **Delete what was checked.** ``remove_file`` and ``remove_tree`` take the device and inode the
  caller checked, compare them again on the entry (and on every directory they enter), and unlink
  relative to descriptors; ``rename_noreplace`` renames with ``RENAME_NOREPLACE``.
* **One mode policy.** Files get permission bits only, never executable, never setuid, setgid or
  sticky (``file_mode``); directories permission bits only (``dir_mode``).

What this cannot do: protect against another root process, or against the app user changing its own
files' content (that is its data); an entry the app user renames away between the check and the
unlink of ``remove_file`` is one of its own files in its own directory.

Plain Python (no Ansible import); unit-tested in tests/unit/test_safe_fs.py, the shape guard (no
other room touches an app tree by name) in tests/unit/test_code_shape.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import binascii
import ctypes
import errno
import fcntl
import hashlib
import os
import re
import stat

CHUNK = 1024 * 1024
TMP_MARK = ".fos-"
TMP_SUFFIX = ".tmp"
FILE_MODE = 0o644
DIR_MODE = 0o755
MAX_LINKS = 40

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
_FILE_FLAGS = os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _CLOEXEC
RENAME_NOREPLACE = 1


class UnsafePath(OSError):
    """A refusal: a link, not a directory or not a regular file, a name that is not one component,
    an entry that changed since it was checked. The message says what and where."""


def file_mode(mode):
    """The mode a file of ours gets: the permission bits of ``mode``, never executable, never
    setuid, setgid or sticky."""
    return stat.S_IMODE(mode) & 0o666


def dir_mode(mode):
    """The mode a directory of ours gets: the permission bits of ``mode`` only."""
    return stat.S_IMODE(mode) & 0o777


def check_name(name):
    """``name`` when it is one plain path component, else ``UnsafePath``."""
    if not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\x00" in name:
        raise UnsafePath(errno.EINVAL, "%r is not a plain file name" % (name,))
    return name


def split_relative(relative):
    """The components of a relative path (``a/b/c``), each checked by ``check_name``."""
    if not isinstance(relative, str) or relative.startswith("/"):
        raise UnsafePath(errno.EINVAL, "%r is not a relative path" % (relative,))
    return [check_name(part) for part in relative.split("/")]


def _root_only(st):
    return st.st_uid == 0 and not st.st_mode & 0o022


def _libc_renameat2():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):  # pragma: no cover - glibc < 2.28, musl
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_RENAMEAT2 = _libc_renameat2()


def _fsencode(name):
    return os.fsencode(name)


class Dir(object):
    """An open directory of an app tree: every operation is relative to its descriptor."""

    __slots__ = ("fd", "path")

    def __init__(self, fd, path):
        self.fd = fd
        self.path = path

    # --- opening ------------------------------------------------------------------------------

    @classmethod
    def anchor(cls, path):
        """Open the directory ``path`` (absolute) from ``/``, following only links root alone can change."""
        if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
            raise UnsafePath(errno.EINVAL, "%r is not an absolute path" % (path,))
        todo = [part for part in path.split("/") if part not in ("", ".")]
        todo.reverse()
        fd = os.open("/", _DIR_FLAGS)
        walked = []
        links = 0
        try:
            while todo:
                part = todo.pop()
                if part == "..":
                    # Only through directories nobody else can change: the parent is then fixed too.
                    nfd = os.open("..", _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nfd
                    walked = walked[:-1]
                    continue
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise OSError(exc.errno, "cannot open %s: %s" % (
                            "/" + "/".join(walked + [part]), exc.strerror)) from None
                    here = "/" + "/".join(walked + [part])
                    try:
                        st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                    except OSError:
                        st = None
                    if st is None or not stat.S_ISLNK(st.st_mode):
                        raise UnsafePath(errno.ENOTDIR, "%s is not a directory" % here) from None
                    # The entry cannot be swapped when its directory is root's alone (we hold that directory).
                    if not (st.st_uid == 0 and _root_only(os.fstat(fd))):
                        raise UnsafePath(errno.ELOOP, (
                            "%s is a symbolic link that a user other than root can change: refusing to follow it; "
                            "give the directory it points to (%s) instead" % (here, os.path.realpath(here)))) from None
                    links += 1
                    if links > MAX_LINKS:
                        raise UnsafePath(errno.ELOOP, "too many symbolic links below %s" % path) from None
                    target = os.readlink(part, dir_fd=fd)
                    parts = [p for p in target.split("/") if p not in ("", ".")]
                    todo.extend(reversed(parts))
                    if target.startswith("/"):
                        os.close(fd)
                        fd = os.open("/", _DIR_FLAGS)
                        walked = []
                    continue
                os.close(fd)
                fd = nfd
                walked.append(part)
            return cls(fd, path.rstrip("/") or "/")
        except BaseException:
            os.close(fd)
            raise

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def child(self, name):
        """``path/name``, for messages only."""
        return "%s/%s" % (self.path.rstrip("/"), name)

    def stat(self):
        return os.fstat(self.fd)

    def lstat(self, name):
        """The entry ``name`` (not followed), or None when there is none."""
        try:
            return os.stat(check_name(name), dir_fd=self.fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return None
            raise

    def open_dir(self, relative, create=False, mode=DIR_MODE, owner=None):
        """The directory ``relative`` below this one (a name, a/b/c, or a list of names), each
        component opened with ``O_NOFOLLOW``. ``create``: missing ones are made (``owner``, ``mode``
        set only on the ones this call created). Raises ``FileNotFoundError`` when one is missing
        and ``create`` is false, ``UnsafePath`` for a link or a non-directory."""
        parts = relative if isinstance(relative, (list, tuple)) else split_relative(relative)
        fd = os.dup(self.fd)
        path = self.path
        try:
            for part in parts:
                check_name(part)
                path = "%s/%s" % (path.rstrip("/"), part)
                try:
                    nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    created = False
                except OSError as exc:
                    if exc.errno == errno.ENOENT and create:
                        try:
                            os.mkdir(part, 0o700, dir_fd=fd)
                            created = True
                        except FileExistsError:  # another worker (or the app) made it meanwhile
                            created = False
                        try:
                            nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                        except OSError as exc2:
                            raise _refusal(exc2, path) from None
                    elif exc.errno == errno.ENOENT:
                        raise FileNotFoundError(errno.ENOENT, "%s does not exist" % path) from None
                    else:
                        raise _refusal(exc, path) from None
                if created:
                    try:
                        if owner is not None:
                            os.fchown(nfd, owner[0], owner[1])
                        os.fchmod(nfd, dir_mode(mode))
                    except BaseException:
                        os.close(nfd)
                        raise
                os.close(fd)
                fd = nfd
            return Dir(fd, path)
        except BaseException:
            os.close(fd)
            raise

    def open_file(self, name):
        """``(fd, stat)`` of the regular file ``name`` here, opened read-only, never through a link,
        never blocking (a FIFO, a device or a socket is refused). ``FileNotFoundError`` when absent."""
        check_name(name)
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise FileNotFoundError(errno.ENOENT, "%s does not exist" % self.child(name)) from None
            raise _refusal(exc, self.child(name)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(errno.EINVAL, "%s is not a regular file" % self.child(name))
            flags = fcntl.fcntl(fd, fcntl.F_GETFL)
            fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~_NONBLOCK)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def read_bytes(self, name, limit=None):
        """The content of the regular file ``name`` (``UnsafePath`` past ``limit`` bytes)."""
        fd, _st = self.open_file(name)
        with os.fdopen(fd, "rb") as handle:
            if limit is None:
                return handle.read()
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise UnsafePath(errno.EFBIG, "%s is larger than %d bytes" % (self.child(name), limit))
        return data

    # --- writing ------------------------------------------------------------------------------

    def write_file(self, name, source, owner=None, mode=FILE_MODE, replace=False, check=None):
        """Write ``source`` (bytes, or an object with ``read(n)``) to ``name`` through a temporary file.

        ``check(size, md5_hexdigest)`` may raise to refuse what was written (nothing is linked then).
        The file gets ``owner`` (uid, gid) and ``file_mode(mode)`` before it appears under ``name``.
        Without ``replace`` an existing ``name`` (whatever it is) is never replaced:
        ``FileExistsError``. With ``replace`` a regular file ``name`` is replaced atomically
        (``rename``); a link or anything else there is refused. Returns the bytes written.
        """
        check_name(name)
        if replace:
            st = self.lstat(name)
            if st is not None and not stat.S_ISREG(st.st_mode):
                raise UnsafePath(errno.EINVAL, "%s is %s: refusing to replace it" % (
                    self.child(name), "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file"))
        tmp, fd = self._create_temporary(name)
        linked = False
        try:
            try:
                size, digest = _stream(fd, source)
                os.fsync(fd)
                if check is not None:
                    check(size, digest)
                if owner is not None:
                    os.fchown(fd, owner[0], owner[1])
                os.fchmod(fd, file_mode(mode))
            finally:
                os.close(fd)
            if replace:
                os.rename(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                linked = True
            else:
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd, follow_symlinks=False)
        except FileExistsError:
            raise FileExistsError(errno.EEXIST, "%s exists: not replaced" % self.child(name)) from None
        finally:
            if not linked:
                try:
                    os.unlink(tmp, dir_fd=self.fd)
                except OSError:
                    pass
        try:
            os.fsync(self.fd)
        except OSError:  # pragma: no cover - some file systems cannot sync a directory
            pass
        return size

    def _create_temporary(self, name):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        prefix = ".%s" % name[:200]
        for _attempt in range(100):
            tmp = "%s%s%s%s" % (prefix, TMP_MARK, binascii.hexlify(os.urandom(8)).decode("ascii"), TMP_SUFFIX)
            try:
                return tmp, os.open(tmp, flags, 0o600, dir_fd=self.fd)
            except FileExistsError:
                continue
        raise UnsafePath(errno.EEXIST, "cannot create a temporary file next to %s" % self.child(name))  # pragma: no cover

    # --- renaming and deleting ----------------------------------------------------------------

    def rename_noreplace(self, old, new, expect=None):
        """Rename ``old`` to ``new`` here; ``new`` must not exist (``FileExistsError``). ``expect``:
        the ``(st_dev, st_ino)`` the caller checked ``old`` to be (``UnsafePath`` when it changed)."""
        check_name(old)
        check_name(new)
        if expect is not None:
            self._expect(old, expect)
        if _RENAMEAT2 is not None:
            if _RENAMEAT2(self.fd, _fsencode(old), self.fd, _fsencode(new), RENAME_NOREPLACE) == 0:
                return
            err = ctypes.get_errno()
            if err not in (errno.EINVAL, errno.ENOSYS):
                raise OSError(err, "cannot rename %s to %s: %s" % (self.child(old), new, os.strerror(err)))
        # No RENAME_NOREPLACE on this file system: rename(2) replaces at most an empty directory.
        if self.lstat(new) is not None:  # pragma: no cover - file systems without renameat2 flags
            raise FileExistsError(errno.EEXIST, "%s exists: not replaced" % self.child(new))
        os.rename(old, new, src_dir_fd=self.fd, dst_dir_fd=self.fd)  # pragma: no cover

    def _expect(self, name, expect):
        st = self.lstat(name)
        if st is None or (st.st_dev, st.st_ino) != tuple(expect):
            raise UnsafePath(errno.ESTALE, "%s changed since it was checked: nothing was done" % self.child(name))
        return st

    def remove_file(self, name, expect):
        """Unlink the regular file ``name`` after checking it is still ``expect`` (st_dev, st_ino)."""
        st = self._expect(name, expect)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(errno.EINVAL, "%s is not a regular file" % self.child(name))
        os.unlink(name, dir_fd=self.fd)

    def remove_tree(self, name, expect):
        """Delete the directory ``name`` and everything below it, relative to descriptors; ``expect``
        (st_dev, st_ino) checked on ``name`` first, and every directory entered is checked to be the
        entry it was listed as. Returns the number of files removed."""
        st = self._expect(name, expect)
        if not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(errno.ENOTDIR, "%s is not a directory" % self.child(name))
        removed = self._remove_below(name, (st.st_dev, st.st_ino))
        self._expect(name, expect)
        os.rmdir(name, dir_fd=self.fd)
        return removed

    def _remove_below(self, name, expect):
        sub = self.open_dir([name])
        try:
            here = sub.stat()
            if (here.st_dev, here.st_ino) != tuple(expect):
                raise UnsafePath(errno.ESTALE, "%s changed while it was deleted" % sub.path)
            removed = 0
            for entry in sorted(os.listdir(sub.fd)):
                st = sub.lstat(entry)
                if st is None:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    removed += sub._remove_below(entry, (st.st_dev, st.st_ino))
                    os.rmdir(entry, dir_fd=sub.fd)
                else:
                    os.unlink(entry, dir_fd=sub.fd)
                    removed += 1
            return removed
        finally:
            sub.close()

    def remove_stale_temporaries(self, name=None, names=None, also=None):
        """Remove, in one pass, the temporary files a killed ``write_file`` of ours left for ``name`` (or
        for any name matching the regex source ``names``) here: regular files named
        ``.<name>.fos-<16 hex>.tmp`` (or matching the regex ``also``: an older naming), owned by this
        process's user (root), with one link (a hard link the app user planted under such a name is
        left alone), each unlinked after ``remove_file``'s inode check. Returns the names removed."""
        ours = re.compile(r"\A\.(?:%s)%s[0-9a-f]{16}%s\Z" % (
            re.escape(check_name(name)[:200]) if name is not None else names, re.escape(TMP_MARK), re.escape(TMP_SUFFIX)))
        removed = []
        for entry, st in list(self.entries()):
            if not (ours.match(entry) or (also is not None and also.match(entry))):
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_nlink != 1:
                continue
            try:
                self.remove_file(entry, (st.st_dev, st.st_ino))
            except (FileNotFoundError, UnsafePath):  # gone or swapped meanwhile: not ours to remove
                continue
            removed.append(entry)
        return sorted(removed)

    # --- reading a tree -----------------------------------------------------------------------

    def walk(self, _prefix=()):
        """Yield ``(parts, stat)`` of every entry below that is not a directory, directories entered
        without following links (each checked to be the entry it was listed as)."""
        for entry in sorted(os.listdir(self.fd)):
            st = self.lstat(entry)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                sub = self.open_dir([entry])
                try:
                    here = sub.stat()
                    if (here.st_dev, here.st_ino) != (st.st_dev, st.st_ino):
                        raise UnsafePath(errno.ESTALE, "%s changed while it was read" % sub.path)
                    yield from sub.walk(_prefix + (entry,))
                finally:
                    sub.close()
            else:
                yield _prefix + (entry,), st

    def entries(self):
        """``(name, lstat)`` of each entry directly here (links not followed, nothing entered), as read."""
        with os.scandir(self.fd) as scan:
            for name, st in ((entry.name, self.lstat(entry.name)) for entry in scan):
                if st is not None:  # removed since it was listed
                    yield name, st


def _refusal(exc, path):
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return UnsafePath(errno.ELOOP, "%s is a symbolic link: refusing to follow it" % path)
    if exc.errno == errno.ENOTDIR:
        return UnsafePath(errno.ENOTDIR, "%s is not a directory (or is a symbolic link)" % path)
    return OSError(exc.errno, "cannot open %s: %s" % (path, exc.strerror))


def _stream(fd, source):
    """Write ``source`` to ``fd``; return (size, md5 hexdigest)."""
    digest = hashlib.md5()  # noqa: S324 - the checksum S3 uses for ETags, not a security measure
    size = 0
    if isinstance(source, (bytes, bytearray, memoryview)):
        chunks = [bytes(source)]
    else:
        chunks = iter(lambda: source.read(CHUNK), b"")
    for chunk in chunks:
        digest.update(chunk)
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        size += len(chunk)
    return size, digest.hexdigest()


def anchor_parent(path):
    """``(Dir of the directory holding path, base name)`` for an admin-given file path."""
    if not isinstance(path, str) or not path.startswith("/"):
        path = os.path.abspath(path)
    directory, base = os.path.split(path.rstrip("/"))
    return Dir.anchor(directory or "/"), check_name(base)
