# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retiring Mastodon's ``public/system/cache``: move it to ``cache.old``, check it, delete it, bring it back.

Plain Python (no Ansible import), used by the ``media_cache`` module; unit-tested in
tests/unit/test_cache_retirement.py (real files in a temp directory) and against Ceph RGW in
tests/integration/test_media_copy_role.py.

Rules (never lose media):

* ``retire`` renames ``cache`` to ``cache.old`` (one ``rename(2)``, same file system) and writes a
  marker file that records the path, device and inode of the directory it moved. The marker lives
  in a directory of the user running the collection (root), outside the app's tree: the app user
  can neither forge nor plant it, the web server never serves it, and the retired tree stays
  byte-identical to the cache it was. Only a ``cache.old`` whose marker matches (a regular file
  owned by that user, not a link, naming this very directory) counts as "created by this migration".
* ``delete`` removes ``cache.old`` only when it carries that marker AND every file below it is in
  the bucket under ``[key_prefix/]cache/<same path>`` with the same size. The tree is walked
  without following links; anything that is not a regular file or a directory, or that cannot be
  read, refuses the deletion.
* ``restore`` renames ``cache.old`` back to ``cache`` (and removes the marker).

The app user owns ``public/system``: nothing here follows a link it may have planted, and a name
it created (a fake ``cache.old`` or marker) never makes this code delete anything.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import errno
import hashlib
import json
import os
import shutil
import stat
import time

MARKER_TOOL = "fediverse.object_storage"
SAMPLE_SIZE = 20


class RetirementError(Exception):
    """A refusal, with a message an admin can act on."""


def old_dir(cache_dir):
    return cache_dir.rstrip("/") + ".old"


def _lstat(path):
    try:
        return os.lstat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def _is_real_dir(st):
    return st is not None and stat.S_ISDIR(st.st_mode)


def marker_path(marker_dir, directory):
    """The marker of ``directory`` (a retired cache.old) in ``marker_dir``."""
    digest = hashlib.sha256(os.path.abspath(directory).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return os.path.join(marker_dir, "retired-cache-%s.json" % digest)


def ensure_marker_dir(marker_dir, uid=None):
    """Create ``marker_dir`` (0700) if needed; refuse one that is a link or not ours."""
    uid = os.geteuid() if uid is None else uid
    st = _lstat(marker_dir)
    if st is None:
        os.makedirs(marker_dir, 0o700)
        st = os.lstat(marker_dir)
    if not stat.S_ISDIR(st.st_mode):
        raise RetirementError("marker directory %s is not a directory (a link or a file)" % marker_dir)
    if st.st_uid != uid or st.st_mode & 0o022:
        raise RetirementError("marker directory %s must belong to uid %d and not be writable by others" % (marker_dir, uid))


def write_marker(marker_dir, directory, now=None):
    """Write the marker of ``directory`` (O_NOFOLLOW, replacing an older marker of ours)."""
    ensure_marker_dir(marker_dir)
    st = os.lstat(directory)
    data = {"tool": MARKER_TOOL, "path": os.path.abspath(directory), "device": st.st_dev, "inode": st.st_ino,
            "retired_at": int(now if now is not None else time.time())}
    path = marker_path(marker_dir, directory)
    tmp = path + ".tmp"
    if _lstat(tmp) is not None:
        os.unlink(tmp)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, sort_keys=True)
        fh.write("\n")
    os.rename(tmp, path)
    return data


def remove_marker(marker_dir, directory):
    path = marker_path(marker_dir, directory)
    st = _lstat(path)
    if st is not None and stat.S_ISREG(st.st_mode):
        os.unlink(path)


def marker_problem(marker_dir, directory, uid=None):
    """None when ``directory`` has a valid marker of this collection in ``marker_dir``, else why not."""
    uid = os.geteuid() if uid is None else uid
    st_dir = _lstat(directory)
    if not _is_real_dir(st_dir):
        return "%s is not a directory" % directory
    path = marker_path(marker_dir, directory)
    st = _lstat(path)
    if st is None:
        return ("there is no marker %s for it: this migration did not create it (it writes the marker when it "
                "moves cache to cache.old)" % path)
    if not stat.S_ISREG(st.st_mode):
        return "the marker %s is not a regular file" % path
    if st.st_uid != uid:
        return "the marker %s is owned by uid %d, not by uid %d that writes it" % (path, st.st_uid, uid)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd) as fh:
            data = json.load(fh)
    except (OSError, ValueError) as exc:
        return "the marker %s cannot be read: %s" % (path, exc)
    if not isinstance(data, dict) or data.get("tool") != MARKER_TOOL:
        return "the marker %s was not written by %s" % (path, MARKER_TOOL)
    if (data.get("path"), data.get("device"), data.get("inode")) != (os.path.abspath(directory), st_dir.st_dev,
                                                                     st_dir.st_ino):
        return ("the marker %s names another directory (device/inode %s/%s, this one is %s/%s): %s is not the "
                "directory this migration retired" % (path, data.get("device"), data.get("inode"),
                                                      st_dir.st_dev, st_dir.st_ino, directory))
    return None


def state(cache_dir):
    """'cache', 'old', 'both' or 'none': which of cache and cache.old exist (as real directories)."""
    cache = _lstat(cache_dir)
    old = _lstat(old_dir(cache_dir))
    for path, st in ((cache_dir, cache), (old_dir(cache_dir), old)):
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise RetirementError("%s exists but is not a directory (a link or a file): nothing was done" % path)
    return {(True, True): "both", (True, False): "cache", (False, True): "old", (False, False): "none"}[
        (cache is not None, old is not None)]


def retire(cache_dir, marker_dir, check_mode=False):
    """cache -> cache.old with the marker. Returns (changed, message)."""
    current = state(cache_dir)
    old = old_dir(cache_dir)
    if current == "both":
        raise RetirementError("both %s and %s exist: nothing was moved. Look at both and remove or merge one by hand "
                              "(the collection never deletes media it did not retire itself)." % (cache_dir, old))
    if current == "none":
        return False, "%s does not exist: nothing to retire" % cache_dir
    if current == "old":
        return False, "%s was already retired to %s" % (cache_dir, old)
    if check_mode:
        return True, "%s would be moved to %s" % (cache_dir, old)
    ensure_marker_dir(marker_dir)
    os.rename(cache_dir, old)
    write_marker(marker_dir, old)
    return True, "%s moved to %s" % (cache_dir, old)


def restore(cache_dir, marker_dir, check_mode=False):
    """cache.old -> cache (marker removed). Returns (changed, message)."""
    current = state(cache_dir)
    old = old_dir(cache_dir)
    if current == "both":
        raise RetirementError("both %s and %s exist: nothing was moved; merge them by hand." % (cache_dir, old))
    if current in ("none", "cache"):
        return False, "%s is not retired" % cache_dir
    if check_mode:
        return True, "%s would be moved back to %s" % (old, cache_dir)
    os.rename(old, cache_dir)
    remove_marker(marker_dir, old)
    return True, "%s moved back to %s" % (old, cache_dir)


def walk_files(root):
    """Yield (relative path, size) of every regular file below ``root``, links never followed.

    Raises RetirementError for anything else (a link, a device...) and for any unreadable directory.
    """
    def onerror(exc):
        raise RetirementError("cannot read %s: %s" % (getattr(exc, "filename", root), exc.strerror or exc))

    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror, followlinks=False):
        for name in list(dirnames) + filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError as exc:
                raise RetirementError("cannot read %s: %s" % (path, exc.strerror)) from None
            rel = os.path.relpath(path, root)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise RetirementError("%s is not a regular file (a link or a special file): not deleting %s"
                                      % (path, root))
            yield rel.replace(os.sep, "/"), st.st_size


def compare_tree(root, size_of, key_base="cache", key_prefix=""):
    """Check every file of ``root`` against the bucket (``size_of(key)`` -> size or None).

    Returns a dict: files, bytes, missing (count), different (count), and samples.
    """
    base = "/".join(part.strip("/") for part in (key_prefix, key_base) if part and part.strip("/"))
    out = {"files": 0, "bytes": 0, "missing": 0, "different": 0, "missing_sample": [], "different_sample": []}
    for rel, size in walk_files(root):
        key = "%s/%s" % (base, rel) if base else rel
        out["files"] += 1
        out["bytes"] += size
        present = size_of(key)
        if present is None:
            out["missing"] += 1
            if len(out["missing_sample"]) < SAMPLE_SIZE:
                out["missing_sample"].append(key)
        elif present != size:
            out["different"] += 1
            if len(out["different_sample"]) < SAMPLE_SIZE:
                out["different_sample"].append({"key": key, "size": size, "bucket_size": present})
    return out


def delete_old(cache_dir, marker_dir, size_of, key_prefix="", check_mode=False):
    """Delete cache.old after checking the marker and every file against the bucket.

    Returns (changed, details). Raises RetirementError with the reason when it refuses.
    """
    old = old_dir(cache_dir)
    st = _lstat(old)
    if st is None:
        return False, {"msg": "%s does not exist: nothing to delete" % old}
    problem = marker_problem(marker_dir, old)
    if problem:
        raise RetirementError("not deleting %s: %s." % (old, problem))
    report = compare_tree(old, size_of, "cache", key_prefix)
    if report["missing"] or report["different"]:
        raise RetirementError(
            "not deleting %s: %d of its %d file(s) are not in the bucket and %d have another size there "
            "(e.g. %s). Copy them first (media_copy), then retry."
            % (old, report["missing"], report["files"], report["different"],
               ", ".join(report["missing_sample"][:5] + [d["key"] for d in report["different_sample"][:5]])))
    if check_mode:
        return True, dict(report, msg="%s would be deleted (%d files, all in the bucket)" % (old, report["files"]))
    shutil.rmtree(old)
    remove_marker(marker_dir, old)
    return True, dict(report, msg="%s deleted (%d files, all in the bucket)" % (old, report["files"]))


def has_files(directory):
    """True when ``directory`` holds at least one file (links not followed)."""
    st = _lstat(directory)
    if not _is_real_dir(st):
        return False
    return any(filenames for _dirpath, _dirnames, filenames in os.walk(directory, followlinks=False))
