# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Part of the safe room (fs/safe_fs.py): opening a file ``a/b/c`` below an anchored directory fast.

``media_copy`` opens tens of thousands of files below ``public/system``; a walk component by
component (``Dir.open_dir(a/b).open_file(c)``) costs one ``openat`` per component. ``open_below``
opens the whole relative path in one system call and gives the same guarantee (never through a
link, never outside the anchor, a FIFO never blocks (``O_NONBLOCK``), only a regular file):

* ``openat2`` with ``RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`` (Linux 5.6+): the kernel itself
  refuses any link on the way and any escape from the directory;
* without it (an older kernel, a seccomp filter): ``openat`` with ``O_NOFOLLOW`` on the last
  component, and the path the kernel then gives the descriptor (``/proc/self/fd``) must be the
  directory's own path (``real_path``, cached by the caller) + ``/a/b/c``: a link in a directory
  component leads elsewhere;
* else (a link somewhere, no /proc) the walk with safe_fs decides and says which component.

Kept apart from fs/safe_fs.py only for its size (the 500-line limit per plugin file: tests/unit/test_code_shape.py); it opens only
through descriptors given by safe_fs and answers with safe_fs's ``UnsafePath``. Unit-tested in
tests/unit/test_safe_fs_open.py.

Also here: ``read_admin_file``, a file an admin named (a TLS certificate), read the way ``Dir.anchor``
opens a directory.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import ctypes
import errno
import os
import stat

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import (
    MAX_LINKS,
    Dir,
    UnsafePath,
    anchor_parent,
    split_relative,
)

_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
SYS_OPENAT2 = {"x86_64": 437, "aarch64": 437, "ppc64le": 437, "s390x": 437, "riscv64": 437, "armv7l": 437}
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


def _libc_openat2():
    """``openat2(dir_fd, relative)`` through ``syscall(2)``, or None."""
    number = SYS_OPENAT2.get(os.uname().machine)
    try:
        func = ctypes.CDLL(None, use_errno=True).syscall
    except (OSError, AttributeError):  # pragma: no cover
        return None
    if number is None:  # pragma: no cover - another architecture: the /proc/self/fd comparison
        return None
    func.restype = ctypes.c_long
    how = _OpenHow(_FLAGS, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH)
    how_ref, how_size = ctypes.byref(how), ctypes.sizeof(how)

    def openat2(dir_fd, relative):
        fd = func(number, dir_fd, os.fsencode(relative), how_ref, how_size)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return fd

    openat2.how = how  # kept alive with the function
    return openat2


OPENAT2 = [_libc_openat2()]  # [None] once the kernel (or a seccomp filter) refused it


def real_path(directory):
    """The path the kernel gives ``directory``'s descriptor now, or None without /proc. Only for
    ``open_below``'s comparison, never to open anything."""
    try:
        return os.readlink("/proc/self/fd/%d" % directory.fd)
    except OSError:  # pragma: no cover - no /proc
        return None


def open_below(directory, relative, real=None):
    """``(fd, stat)`` of the regular file ``relative`` (``a/b/c``) below ``directory`` (a safe_fs
    ``Dir``), read-only, never through a link (see the module's docstring). Missing (``ENOENT``)
    or through a file (``ENOTDIR``): ``FileNotFoundError`` / ``NotADirectoryError``; a symbolic link
    on the way: ``UnsafePath`` (errno ``ELOOP``); anything but a regular file: ``UnsafePath``
    (``EINVAL``)."""
    if (not relative or relative[0] == "/" or relative[-1] == "/" or "//" in relative or "\x00" in relative
            or "/." in "/" + relative):
        split_relative(relative)  # the precise check: UnsafePath unless only a name starts with "."
    fd = None
    if OPENAT2[0] is not None:
        try:
            fd = OPENAT2[0](directory.fd, relative)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM, errno.E2BIG):  # no openat2 here: never again
                OPENAT2[0] = None
            else:
                _final(exc, directory, relative, (errno.ELOOP, errno.EXDEV, errno.EAGAIN))
                return _walk(directory, relative)  # a link: the walk says which component
    if fd is None:
        real = real_path(directory) if real is None else real
        if real is None:  # pragma: no cover - no /proc
            return _walk(directory, relative)
        try:
            fd = os.open(relative, _FLAGS, dir_fd=directory.fd)
        except OSError as exc:
            _final(exc, directory, relative, (errno.ELOOP, errno.EMLINK))
            return _walk(directory, relative)
        try:
            opened = os.readlink("/proc/self/fd/%d" % fd)
        except OSError:  # pragma: no cover - /proc vanished
            opened = None
        if opened != real.rstrip("/") + "/" + relative:
            os.close(fd)
            return _walk(directory, relative)
    try:
        st = os.fstat(fd)
    except BaseException:  # pragma: no cover
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise UnsafePath(errno.EINVAL, "%s is not a regular file" % directory.child(relative))
    # O_NONBLOCK stays set: it changes nothing for a regular file's reads (as open(2) of media did before).
    return fd, st


def _final(exc, directory, relative, walk_errnos):
    """Raise the answer for a fast-path error, unless the walk must decide (``walk_errnos``)."""
    where = directory.child(relative)
    if exc.errno == errno.ENOENT:
        raise FileNotFoundError(errno.ENOENT, "%s does not exist" % where) from None
    if exc.errno == errno.ENOTDIR:
        raise NotADirectoryError(errno.ENOTDIR, "%s: a component is not a directory" % where) from None
    if exc.errno not in walk_errnos:
        raise OSError(exc.errno, "cannot open %s: %s" % (where, exc.strerror)) from None


def _walk(directory, relative):
    parts = split_relative(relative)
    here = Dir(os.dup(directory.fd), directory.path)
    try:
        for part in parts[:-1]:
            try:
                sub = here.open_dir([part])
            except UnsafePath:
                st = here.lstat(part)
                if st is not None and stat.S_ISLNK(st.st_mode):
                    raise UnsafePath(errno.ELOOP, "%s is a symbolic link: refusing to follow it"
                                     % here.child(part)) from None
                if st is None:
                    raise FileNotFoundError(errno.ENOENT, "%s does not exist" % here.child(part)) from None
                raise NotADirectoryError(errno.ENOTDIR, "%s is not a directory" % here.child(part)) from None
            here.close()
            here = sub
        return here.open_file(parts[-1])
    finally:
        here.close()


def read_admin_file(path, limit):
    """The content of the regular file ``path`` (absolute) an admin named, read as root: its directories
    anchored as ``Dir.anchor`` does, and the file itself a symbolic link only when root alone can change
    it (root's link in a directory root alone can write: Let's Encrypt's ``live/NAME/fullchain.pem ->
    ../../archive/NAME/fullchain1.pem``); then opened without following links, never blocking.
    ``FileNotFoundError`` when absent, ``UnsafePath`` for another link or anything but a regular file
    (or past ``limit`` bytes)."""
    for _hop in range(MAX_LINKS + 1):
        directory, name = anchor_parent(path)
        with directory:
            st = directory.lstat(name)
            if st is None or not stat.S_ISLNK(st.st_mode):
                return directory.read_bytes(name, limit)
            here = directory.child(name)
            held = directory.stat()
            if not (st.st_uid == 0 and held.st_uid == 0 and not held.st_mode & 0o022):
                raise UnsafePath(errno.ELOOP, "%s is a symbolic link that a user other than root can change: "
                                              "refusing to follow it; give the file it points to instead" % here)
            target = os.readlink(name, dir_fd=directory.fd)
        path = target if target.startswith("/") else directory.path.rstrip("/") + "/" + target
    raise UnsafePath(errno.ELOOP, "too many symbolic links from %s" % path)
