# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whole-file reads and writes of config, progress and job files, on top of the safe room (safe_fs).

The modules run as root and read and write files in directories the app user (mastodon, misskey)
owns: ``.env.production``, ``.config/default.yml``, ``package.json``, a progress file. The app user
can plant links there and swap names between two steps, so everything here goes through
``safe_fs``: the directory is anchored once (``safe_fs.anchor_parent``), every file is opened
relative to its descriptor without following a link (a FIFO never blocks; anything but a regular
file is refused), and every write is ``Dir.write_file``: an exclusive temporary file with an
unpredictable name, written, ``fsync``ed, given the owner, group and mode of the file it replaces,
then renamed over it (only over a regular file). There is one temp-then-rename write in the
collection, and it is safe_fs's.

``read_for_edit`` and ``finish_edit`` are the two ends of every config-file module (mastodon_env,
misskey_config): read the file without following a link, then back it up, replace it and set its
file attributes. They take the AnsibleModule and fail it with a message that says nothing changed.
``keep_original`` and ``restore_original`` keep the pre-switch copy of a config file and put it back
(module config_original, the rollback). ``read_config`` is the one read of an app-owned file a
module parses (a size limit, no link followed).

Plain Python, unit-tested in tests/unit/test_atomic.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import errno
import os
import stat
import time

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import UnsafePath, anchor_parent, check_name

# The refusal of a link, a non-regular file or a too large one: safe_fs's.
AtomicWriteError = UnsafePath

# No config file, package.json or job file of an app is anywhere near this.
CONFIG_LIMIT = 4 * 1024 * 1024
ORIGINAL_SUFFIX = ".fediverse-object-storage.orig"


def _as_bytes(data):
    if not isinstance(data, bytes):
        data = data.encode("utf-8", "surrogateescape")
    return data


def read_bytes(path, limit=None):
    """The content of the regular file ``path``, opened without following a link.

    Raises ``AtomicWriteError`` (``safe_fs.UnsafePath``) when ``path`` is a symbolic link, not a
    regular file, or holds more than ``limit`` bytes (or a directory above it is a link the app user
    could change), and ``OSError`` (``ENOENT`` ...) when it cannot be read.
    """
    directory, name = anchor_parent(path)
    with directory:
        return directory.read_bytes(name, limit)


def read_config(path, limit=CONFIG_LIMIT):
    """The text of an app-owned file a module parses (config file, package.json): ``read_bytes``
    with a size limit, decoded as UTF-8 (undecodable bytes replaced)."""
    return read_bytes(path, limit).decode("utf-8", "replace")


def _owner_for(current, owner):
    """The owner to give a file: ``owner``, else the one of the file it replaces; None when this
    process cannot give files away (not root: the file can only be its own)."""
    if owner is None and current is not None:
        owner = (current.st_uid, current.st_gid)
    if owner is not None and os.geteuid() != 0:
        return None
    return owner


def _write_in(directory, name, data, mode=None, new_mode=0o644, owner=None):
    current = directory.lstat(name)
    if current is not None and not stat.S_ISREG(current.st_mode):
        raise AtomicWriteError(errno.EINVAL, "%s is %s: refusing to write through it" % (
            directory.child(name), "a symbolic link" if stat.S_ISLNK(current.st_mode) else "not a regular file"))
    if mode is None:
        mode = stat.S_IMODE(current.st_mode) if current is not None else new_mode
    directory.write_file(name, _as_bytes(data), owner=_owner_for(current, owner), mode=mode, replace=True)


def write_atomic(path, data, mode=None, new_mode=0o644, owner=None):
    """Replace ``path`` with ``data`` (bytes or text, text is written as UTF-8) atomically.

    An existing target keeps its owner, group and mode (``mode`` overrides the mode); a new file
    gets ``new_mode`` and the caller's owner (or ``owner``, a ``(uid, gid)`` pair). Modes follow
    safe_fs's policy (permission bits, never executable). Raises ``AtomicWriteError`` when the target
    is a link or not a regular file, ``OSError`` on I/O errors; nothing is left behind on failure.
    """
    directory, name = anchor_parent(path)
    with directory:
        _write_in(directory, name, data, mode=mode, new_mode=new_mode, owner=owner)


def _backup_name(name):
    return "%s.%d.%s~" % (name, os.getpid(), time.strftime("%Y-%m-%d@%H:%M:%S"))


def _backup_in(directory, name, data, status):
    backup = _backup_name(name)
    _write_in(directory, backup, data, mode=stat.S_IMODE(status.st_mode), owner=(status.st_uid, status.st_gid))
    return directory.child(backup)


def backup_copy(path, data, status):
    """Write ``data`` (the current content of ``path``) to a backup next to it; return its path.

    The name is Ansible's (``<path>.<pid>.<YYYY-MM-DD@HH:MM:SS>~``), written through
    ``write_atomic`` (so a link planted at that name is refused, never followed) with the
    owner, group and mode of ``path`` (``status``: its ``os.stat_result``).
    """
    directory, name = anchor_parent(path)
    with directory:
        return _backup_in(directory, name, _as_bytes(data), status)


def read_for_edit(module, path, missing_hint=""):
    """The text of the config file ``path`` before an edit, read without following a link.

    Fails ``module`` before anything changes when ``path`` is a link or not a regular file, is
    missing (``missing_hint``: what to check or set) or cannot be read.
    """
    try:
        data = read_bytes(path, CONFIG_LIMIT)
    except AtomicWriteError as exc:
        module.fail_json(msg="%s: nothing was changed" % (exc.strerror or exc))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            module.fail_json(msg=" ".join(part for part in (
                "%s does not exist: nothing was changed." % path, missing_hint) if part))
        module.fail_json(msg="cannot read %s: %s" % (path, exc.strerror or exc))
    return data.decode("utf-8", "surrogateescape")


def finish_edit(module, path, before, after, result):
    """The end of a config-file edit: when ``result["changed"]`` (and not in check mode) a backup of
    ``before`` (option ``backup``) and the atomic write of ``after``; then the file options (owner,
    group, mode ...) of ``module``. Returns ``result`` with ``changed`` and ``backup_file`` set."""
    exists = True
    try:
        directory, name = anchor_parent(path)
    except OSError as exc:
        module.fail_json(msg="cannot open the directory of %s: %s" % (path, exc.strerror or exc))
    with directory:
        if result["changed"] and not module.check_mode:
            status = directory.lstat(name)
            if module.params["backup"] and status is not None:
                try:
                    result["backup_file"] = _backup_in(directory, name, _as_bytes(before), status)
                except OSError as exc:
                    module.fail_json(msg="cannot back up %s: %s" % (path, exc.strerror or exc))
            try:
                _write_in(directory, name, after)
            except OSError as exc:
                module.fail_json(msg="cannot write %s: %s" % (path, exc.strerror or exc))
        exists = directory.lstat(name) is not None
    file_args = module.load_file_common_arguments(module.params)
    if not module.check_mode or exists:
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"])
    return result


# --- the pre-switch original of a config file (module config_original) --------------------------

def original_name(path, original=None):
    """The base name of the kept original of ``path`` (in the same directory)."""
    return check_name(original or (os.path.basename(path.rstrip("/")) + ORIGINAL_SUFFIX))


def _read_regular(directory, name, limit):
    """``(bytes, stat)`` of the regular file ``name``, opened once, never through a link; ``(None,
    None)`` when there is none."""
    try:
        fd, status = directory.open_file(name)
    except FileNotFoundError:
        return None, None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise AtomicWriteError(errno.EFBIG, "%s is larger than %d bytes" % (directory.child(name), limit))
    return data, status


def keep_original(path, original=None, force=True, check_mode=False, limit=CONFIG_LIMIT, unless=None):
    """Copy the config file ``path`` to its original (``original``, a name next to it), with the
    owner, group and mode of ``path``; an existing original is replaced only with ``force``.
    Returns ``(changed, original_path)``. ``path`` is opened once without following a link
    (``FileNotFoundError`` when missing, ``AtomicWriteError`` when it is a link or not a regular
    file); a link or anything but a regular file at the original's name is refused.
    ``unless(data)``: when it returns true for the file's content (already switched: a re-run),
    nothing is kept."""
    directory, name = anchor_parent(path)
    with directory:
        keep = original_name(path, original)
        data, status = _read_regular(directory, name, limit)
        if data is None:
            raise FileNotFoundError(errno.ENOENT, "%s does not exist" % directory.child(name))
        if unless is not None and unless(data):
            return False, directory.child(keep)
        kept, kept_status = _read_regular(directory, keep, limit)
        same = kept is not None and kept == data and (kept_status.st_uid, kept_status.st_gid) == (
            status.st_uid, status.st_gid) and stat.S_IMODE(kept_status.st_mode) == stat.S_IMODE(status.st_mode)
        changed = kept is None or (force and not same)
        if changed and not check_mode:
            directory.write_file(keep, data, owner=_owner_for(status, None),
                                 mode=stat.S_IMODE(status.st_mode), replace=True)
        return changed, directory.child(keep)


def restore_original(path, original=None, backup=True, check_mode=False, limit=CONFIG_LIMIT):
    """Put the kept original back over the config file ``path``.

    The original is opened ONCE, without following a link (a regular file only), and its content is
    written over ``path`` through safe_fs (temporary file, then renamed over it) with the owner,
    group and mode of the file it replaces; when ``path`` is absent, with the owner and group of the
    directory (the app's) and the mode of the original. The current file is backed up first
    (``backup``). Returns a dict: ``changed``, ``found`` (whether there is an original),
    ``before`` and ``after`` (bytes, for a diff; ``None`` when absent), ``backup_file``, ``path``.
    """
    directory, name = anchor_parent(path)
    with directory:
        keep = original_name(path, original)
        result = dict(changed=False, found=False, path=directory.child(name), original=directory.child(keep),
                      before=None, after=None)
        data, kept_status = _read_regular(directory, keep, limit)
        if data is None:
            return result
        result.update(found=True, after=data)
        current, status = _read_regular(directory, name, limit)
        result["before"] = current
        if current == data:
            return result
        result["changed"] = True
        if check_mode:
            return result
        if status is not None:
            owner, mode = (status.st_uid, status.st_gid), stat.S_IMODE(status.st_mode)
            if backup:
                result["backup_file"] = _backup_in(directory, name, current, status)
        else:
            here = directory.stat()
            owner, mode = (here.st_uid, here.st_gid), stat.S_IMODE(kept_status.st_mode)
        directory.write_file(name, data, owner=_owner_for(None, owner), mode=mode, replace=True)
        return result
