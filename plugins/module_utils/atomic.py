# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one atomic file write, safe in a directory another user owns.

The modules run as root and write into directories the app user (mastodon, misskey) owns:
``.env.production``, ``.config/default.yml``, a progress file. The app user can plant links
there, so every write here:

* refuses a target that is a symbolic link (or anything but a regular file);
* creates its temporary file with an unpredictable name, ``O_CREAT | O_EXCL | O_NOFOLLOW``,
  mode 0600, relative to a descriptor of the directory (no path is resolved twice);
* writes, ``fsync``s, gives the temporary file the owner, group and mode of the file it replaces
  (through its descriptor, never through a path), then ``rename``s it over the target and
  ``fsync``s the directory;
* removes its temporary file on any failure.

``read_for_edit`` and ``finish_edit`` are the two ends of every config-file module (mastodon_env,
misskey_config): read the file without following a link, then back it up, replace it and set its
file attributes. They take the AnsibleModule and fail it with a message that says nothing changed.

Plain Python, unit-tested in tests/unit/test_atomic.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import binascii
import errno
import os
import stat
import time

TMP_SUFFIX = ".tmp"


class AtomicWriteError(OSError):
    """The target cannot be replaced safely (a link, not a regular file, ...)."""


def _random_name(base):
    return ".%s.%s%s" % (base, binascii.hexlify(os.urandom(8)).decode("ascii"), TMP_SUFFIX)


def _open_dir(directory):
    flags = os.O_RDONLY
    flags |= getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.open(directory, flags)


def read_bytes(path, limit=None):
    """The content of the regular file ``path``, opened without following a link.

    Raises ``AtomicWriteError`` when ``path`` is a symbolic link or not a regular file (or holds more
    than ``limit`` bytes), and ``OSError`` (``ENOENT`` ...) when it cannot be read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise AtomicWriteError(errno.ELOOP, "%s is a symbolic link: refusing to follow it" % path) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise AtomicWriteError(errno.EINVAL, "%s is not a regular file" % path)
        if limit is None:
            return handle.read()
        data = handle.read(limit + 1)
        if len(data) > limit:
            raise AtomicWriteError(errno.EFBIG, "%s is larger than %d bytes" % (path, limit))
        return data


def write_atomic(path, data, mode=None, new_mode=0o644, owner=None):
    """Replace ``path`` with ``data`` (bytes or text, text is written as UTF-8) atomically.

    An existing target keeps its owner, group and mode (``mode`` overrides the mode); a new file
    gets ``new_mode`` and the caller's owner (or ``owner``, a ``(uid, gid)`` pair). Raises
    ``AtomicWriteError`` when the target is a link or not a regular file, ``OSError`` on I/O
    errors; nothing is left behind on failure.
    """
    if not isinstance(data, bytes):
        data = data.encode("utf-8", "surrogateescape")
    path = os.path.abspath(path)
    directory, base = os.path.split(path)
    dir_fd = _open_dir(directory)
    try:
        st = None
        try:
            st = os.lstat(base, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise AtomicWriteError(errno.ELOOP, "%s is a symbolic link: refusing to write through it" % path)
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise AtomicWriteError(errno.EINVAL, "%s is not a regular file" % path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for _attempt in range(100):
            tmp = _random_name(base)
            try:
                fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
                break
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
        else:  # pragma: no cover - 100 collisions of 64 random bits
            raise AtomicWriteError(errno.EEXIST, "cannot create a temporary file next to %s" % path)
        try:
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
                if owner is None and st is not None:
                    owner = (st.st_uid, st.st_gid)
                if owner is not None:
                    try:
                        os.fchown(fd, owner[0], owner[1])
                    except OSError as exc:
                        # Not root: the file can only be ours; anything else is an error.
                        if exc.errno != errno.EPERM:
                            raise
                if mode is None:
                    mode = stat.S_IMODE(st.st_mode) if st is not None else new_mode
                os.fchmod(fd, mode)
            finally:
                os.close(fd)
            os.rename(tmp, base, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        try:
            os.fsync(dir_fd)
        except OSError:  # pragma: no cover - some file systems cannot sync a directory
            pass
    finally:
        os.close(dir_fd)


def backup_copy(path, data, status):
    """Write ``data`` (the current content of ``path``) to a backup next to it; return its path.

    The name is Ansible's (``<path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``), written through
    ``write_atomic`` (so a link planted at that name is replaced, never followed) with the
    owner, group and mode of ``path`` (``status``: its ``os.stat_result``).
    """
    backup = "%s.%d.%s~" % (path, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S"))
    write_atomic(backup, data, mode=stat.S_IMODE(status.st_mode), owner=(status.st_uid, status.st_gid))
    return backup


def read_for_edit(module, path, missing_hint=""):
    """The text of the config file ``path`` before an edit, read without following a link.

    Fails ``module`` before anything changes when ``path`` is a link or not a regular file, is
    missing (``missing_hint``: what to check or set) or cannot be read.
    """
    try:
        data = read_bytes(path)
    except AtomicWriteError as exc:
        module.fail_json(msg="%s: nothing was changed" % (exc.strerror or exc))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            module.fail_json(msg=" ".join(part for part in (
                "%s does not exist: nothing was changed." % path, missing_hint) if part))
        module.fail_json(msg="cannot read %s: %s" % (path, exc))
    return data.decode("utf-8", "surrogateescape")


def finish_edit(module, path, before, after, result):
    """The end of a config-file edit: when ``result["changed"]`` (and not in check mode) a backup of
    ``before`` (option ``backup``) and the atomic write of ``after``; then the file options (owner,
    group, mode ...) of ``module``. Returns ``result`` with ``changed`` and ``backup_file`` set."""
    if result["changed"] and not module.check_mode:
        if module.params["backup"]:
            try:
                result["backup_file"] = backup_copy(path, before.encode("utf-8", "surrogateescape"), os.lstat(path))
            except OSError as exc:
                module.fail_json(msg="cannot back up %s: %s" % (path, exc.strerror or exc))
        try:
            write_atomic(path, after.encode("utf-8", "surrogateescape"))
        except OSError as exc:
            module.fail_json(msg="cannot write %s: %s" % (path, exc.strerror or exc))
    file_args = module.load_file_common_arguments(module.params)
    if not module.check_mode or os.path.exists(path):
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    return result
