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

The app user owns ``public/system`` and every directory above it, and may swap any of them for a
link at any moment, also between two steps of ours. So everything on the app's tree goes through
the safe room (fs/safe_fs.py): the directory holding ``cache`` is anchored ONCE (``Dir.anchor``:
only links root alone can change are followed) and every step works through that descriptor:
``retire`` is ``rename_noreplace(cache, cache.old)`` checked against the inode ``state`` saw (a
``cache.old`` made meanwhile is never overwritten) and the marker records that inode; the bucket
check walks the descriptor of ``cache.old`` (its inode checked against the marker); ``delete`` is
``remove_tree(cache.old)`` with the marker's device and inode checked again on the entry and on
every directory it enters. A name the app user created (a fake ``cache.old`` or marker), or a
directory it swapped in, never makes this code delete anything else. The marker directory (root's
own) is written with safe_fs too: a temporary name, then renamed into place.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import hashlib
import json
import os
import stat
import time

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import (
    Dir,
    UnsafePath,
    check_name,
)

MARKER_TOOL = "fediverse.object_storage"
SAMPLE_SIZE = 20
MARKER_LIMIT = 64 * 1024


class RetirementError(Exception):
    """A refusal, with a message an admin can act on."""


def old_dir(cache_dir):
    return cache_dir.rstrip("/") + ".old"


def _identity(st):
    return (st.st_dev, st.st_ino)


def marker_path(marker_dir, directory):
    """The marker of ``directory`` (a retired cache.old) in ``marker_dir``."""
    return os.path.join(marker_dir, _marker_name(directory))


def _marker_name(directory):
    digest = hashlib.sha256(os.path.abspath(directory).encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return "retired-cache-%s.json" % digest


def _open_marker_dir(marker_dir, uid=None, create=False):
    """The marker directory (a Dir), checked to be ``uid``'s and not writable by others; None when it
    does not exist and ``create`` is false."""
    uid = os.geteuid() if uid is None else uid
    try:
        md = Dir.anchor(os.path.abspath(marker_dir))
    except FileNotFoundError:
        if not create:
            return None
        os.makedirs(marker_dir, 0o700)  # root's own directory, outside the app's tree
        md = _anchor_marker_dir(marker_dir)
    except UnsafePath as exc:
        raise RetirementError("marker directory %s is not a directory (a link or a file): %s" % (marker_dir, exc)) from None
    st = md.stat()
    if st.st_uid != uid or st.st_mode & 0o022:
        md.close()
        raise RetirementError("marker directory %s must belong to uid %d and not be writable by others" % (marker_dir, uid))
    return md


def _anchor_marker_dir(marker_dir):
    try:
        return Dir.anchor(os.path.abspath(marker_dir))
    except UnsafePath as exc:
        raise RetirementError("marker directory %s is not a directory (a link or a file): %s" % (marker_dir, exc)) from None


def ensure_marker_dir(marker_dir, uid=None):
    """Create ``marker_dir`` (0700) if needed; refuse one that is a link others can change or not ours."""
    _open_marker_dir(marker_dir, uid, create=True).close()


def write_marker(marker_dir, directory, now=None, identity=None):
    """Write the marker of ``directory`` (the ``(st_dev, st_ino)`` it was checked to be: ``identity``),
    through a temporary file renamed over an older marker of ours (never through a link)."""
    if identity is None:
        with _Parent(directory) as (parent, name):
            st = parent.lstat(name) if parent is not None else None
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise RetirementError("%s is not a directory" % directory)
        identity = _identity(st)
    data = {"tool": MARKER_TOOL, "path": os.path.abspath(directory), "device": identity[0], "inode": identity[1],
            "retired_at": int(now if now is not None else time.time())}
    text = (json.dumps(data, sort_keys=True) + "\n").encode("utf-8")
    with _open_marker_dir(marker_dir, create=True) as md:
        try:
            md.write_file(_marker_name(directory), text, mode=0o600, replace=True)
        except UnsafePath as exc:
            raise RetirementError("cannot write the marker of %s: %s" % (directory, exc)) from None
    return data


def remove_marker(marker_dir, directory):
    md = _open_marker_dir(marker_dir)
    if md is None:
        return
    with md:
        name = _marker_name(directory)
        st = md.lstat(name)
        if st is not None and stat.S_ISREG(st.st_mode):
            md.remove_file(name, _identity(st))


def _read_marker(marker_dir, directory, uid):
    """(data, None) or (None, why not)."""
    path = marker_path(marker_dir, directory)
    no_marker = ("there is no marker %s for it: this migration did not create it (it writes the marker when it "
                 "moves cache to cache.old)" % path)
    try:
        md = _open_marker_dir(marker_dir)
    except RetirementError as exc:
        return None, str(exc)
    if md is None:
        return None, no_marker
    with md:
        name = _marker_name(directory)
        st = md.lstat(name)
        if st is None:
            return None, no_marker
        if not stat.S_ISREG(st.st_mode):
            return None, "the marker %s is not a regular file" % path
        if st.st_uid != uid:
            return None, "the marker %s is owned by uid %d, not by uid %d that writes it" % (path, st.st_uid, uid)
        try:
            data = json.loads(md.read_bytes(name, limit=MARKER_LIMIT).decode("utf-8"))
        except (OSError, ValueError) as exc:
            return None, "the marker %s cannot be read: %s" % (path, exc)
    if not isinstance(data, dict) or data.get("tool") != MARKER_TOOL:
        return None, "the marker %s was not written by %s" % (path, MARKER_TOOL)
    return data, None


def _marker_problem(marker_dir, directory, st_dir, uid=None):
    uid = os.geteuid() if uid is None else uid
    if st_dir is None or not stat.S_ISDIR(st_dir.st_mode):
        return "%s is not a directory" % directory
    data, problem = _read_marker(marker_dir, directory, uid)
    if problem:
        return problem
    if (data.get("path"), data.get("device"), data.get("inode")) != (os.path.abspath(directory), st_dir.st_dev,
                                                                     st_dir.st_ino):
        return ("the marker %s names another directory (device/inode %s/%s, this one is %s/%s): %s is not the "
                "directory this migration retired" % (marker_path(marker_dir, directory), data.get("device"),
                                                      data.get("inode"), st_dir.st_dev, st_dir.st_ino, directory))
    return None


def marker_problem(marker_dir, directory, uid=None):
    """None when ``directory`` has a valid marker of this collection in ``marker_dir``, else why not."""
    with _Parent(directory) as (parent, name):
        st_dir = parent.lstat(name) if parent is not None else None
    return _marker_problem(marker_dir, directory, st_dir, uid)


class _Parent(object):
    """``with _Parent(path) as (Dir of its directory or None when that does not exist, base name)``."""

    def __init__(self, path):
        path = os.path.abspath(path).rstrip("/")
        directory, self.name = os.path.split(path)
        try:
            check_name(self.name)
            self.dir = Dir.anchor(directory or "/")
        except FileNotFoundError:
            self.dir = None
        except UnsafePath as exc:
            raise RetirementError("%s: %s" % (path, exc)) from None

    def __enter__(self):
        return self.dir, self.name

    def __exit__(self, *exc_info):
        if self.dir is not None:
            self.dir.close()


class Retirement(object):
    """``cache`` and ``cache.old`` of one ``public/system``, through ONE anchored descriptor of it."""

    def __init__(self, cache_dir, marker_dir):
        self.cache_dir = cache_dir.rstrip("/")
        self.old = old_dir(self.cache_dir)
        self.marker_dir = marker_dir
        self._holder = _Parent(self.cache_dir)
        self.parent, self.name = self._holder.dir, self._holder.name
        self.old_name = self.name + ".old"

    def close(self):
        self._holder.__exit__()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _stats(self):
        """(lstat of cache, lstat of cache.old), each None when absent; refuses a non-directory."""
        if self.parent is None:
            return None, None
        cache, old = self.parent.lstat(self.name), self.parent.lstat(self.old_name)
        for path, st in ((self.cache_dir, cache), (self.old, old)):
            if st is not None and not stat.S_ISDIR(st.st_mode):
                raise RetirementError("%s exists but is not a directory (a link or a file): nothing was done" % path)
        return cache, old

    def state(self):
        """'cache', 'old', 'both' or 'none': which of cache and cache.old exist (as real directories)."""
        cache, old = self._stats()
        return {(True, True): "both", (True, False): "cache", (False, True): "old", (False, False): "none"}[
            (cache is not None, old is not None)]

    def retire(self, check_mode=False):
        """cache -> cache.old with the marker. Returns (changed, message)."""
        cache, old = self._stats()
        if cache is not None and old is not None:
            raise RetirementError("both %s and %s exist: nothing was moved. Look at both and remove or merge one by "
                                  "hand (the collection never deletes media it did not retire itself)."
                                  % (self.cache_dir, self.old))
        if cache is None and old is None:
            return False, "%s does not exist: nothing to retire" % self.cache_dir
        if cache is None:
            return False, "%s was already retired to %s" % (self.cache_dir, self.old)
        if check_mode:
            return True, "%s would be moved to %s" % (self.cache_dir, self.old)
        ensure_marker_dir(self.marker_dir)
        try:
            # Never over a cache.old made since the check; only the very directory that was checked.
            self.parent.rename_noreplace(self.name, self.old_name, expect=_identity(cache))
        except FileExistsError:
            raise RetirementError("both %s and %s exist (%s appeared meanwhile): nothing was moved. Look at both and "
                                  "remove or merge one by hand." % (self.cache_dir, self.old, self.old)) from None
        except UnsafePath as exc:
            raise RetirementError("%s: nothing was moved" % exc) from None
        write_marker(self.marker_dir, self.old, identity=_identity(cache))
        return True, "%s moved to %s" % (self.cache_dir, self.old)

    def restore(self, check_mode=False):
        """cache.old -> cache (marker removed). Returns (changed, message)."""
        cache, old = self._stats()
        if cache is not None and old is not None:
            raise RetirementError("both %s and %s exist: nothing was moved; merge them by hand." % (self.cache_dir, self.old))
        if old is None:
            return False, "%s is not retired" % self.cache_dir
        if check_mode:
            return True, "%s would be moved back to %s" % (self.old, self.cache_dir)
        try:
            self.parent.rename_noreplace(self.old_name, self.name, expect=_identity(old))
        except FileExistsError:
            raise RetirementError("both %s and %s exist (%s appeared meanwhile): nothing was moved; merge them by hand."
                                  % (self.cache_dir, self.old, self.cache_dir)) from None
        except UnsafePath as exc:
            raise RetirementError("%s: nothing was moved" % exc) from None
        remove_marker(self.marker_dir, self.old)
        return True, "%s moved back to %s" % (self.old, self.cache_dir)

    def marker_problem(self, uid=None):
        """None when cache.old carries this migration's marker, else why not."""
        st = self.parent.lstat(self.old_name) if self.parent is not None else None
        return _marker_problem(self.marker_dir, self.old, st, uid)

    def delete_old(self, size_of, key_prefix="", check_mode=False):
        """Delete cache.old after checking the marker and every file against the bucket.

        Returns (changed, details). Raises RetirementError with the reason when it refuses.
        """
        st = self.parent.lstat(self.old_name) if self.parent is not None else None
        if st is None:
            return False, {"msg": "%s does not exist: nothing to delete" % self.old}
        problem = _marker_problem(self.marker_dir, self.old, st)
        if problem:
            raise RetirementError("not deleting %s: %s." % (self.old, problem))
        expect = _identity(st)  # the marker's device and inode (just compared)
        try:
            tree = self.parent.open_dir([self.old_name])
        except OSError as exc:
            raise RetirementError("not deleting %s: %s" % (self.old, exc)) from None
        with tree:
            if _identity(tree.stat()) != expect:
                raise RetirementError("not deleting %s: it changed since its marker was checked" % self.old)
            report = compare_tree(tree, size_of, "cache", key_prefix)
        if report["missing"] or report["different"]:
            raise RetirementError(
                "not deleting %s: %d of its %d file(s) are not in the bucket and %d have another size there "
                "(e.g. %s). Copy them first (media_copy), then retry."
                % (self.old, report["missing"], report["files"], report["different"],
                   ", ".join(report["missing_sample"][:5] + [d["key"] for d in report["different_sample"][:5]])))
        if check_mode:
            return True, dict(report, msg="%s would be deleted (%d files, all in the bucket)" % (self.old, report["files"]))
        try:
            self.parent.remove_tree(self.old_name, expect)
        except UnsafePath as exc:
            raise RetirementError("not deleting %s further: %s" % (self.old, exc)) from None
        remove_marker(self.marker_dir, self.old)
        return True, dict(report, msg="%s deleted (%d files, all in the bucket)" % (self.old, report["files"]))

    def has_files(self):
        """True when cache holds at least one file (links not followed)."""
        if self.parent is None:
            return False
        try:
            with self.parent.open_dir([self.name]) as cache:
                return any(True for _entry in cache.walk())
        except OSError:
            return False


def retire_problem(cache_state, verify, bucket, cache_dir, env_file):
    """Why ``cache_dir`` may not be retired yet, in one line; ``""`` when nothing stands in the way (the media_copy
    role's retire_cache entry point, through the filter ``cache_retire_problem``).

    ``cache_state``: the media_cache module's ``inspect`` result (``state``, ``cache_has_files``); ``verify``: the
    result of the retirement's own verify (media_copy in mode verify over every shard, no limit; ``{}`` when
    it did not run). Only a full verify that found every cached object (and at least one, or an empty cache)
    lets the cache go."""
    verify = verify or {}
    if (cache_state or {}).get("state") not in ("cache", "both"):
        return ""
    if not verify.get("full"):
        return "the verify did not cover every row (sharded or limited)"
    if not verify.get("verified"):
        sample = [item.get("key", "?") for item in
                  (verify.get("missing_in_bucket_sample") or []) + (verify.get("different_size_sample") or [])][:5]
        return ("%s object(s) missing from bucket %s and %s of a different size (e.g. %s) - other shards may still be "
                "copying, or the copy must be run again" % (verify.get("missing_in_bucket", "?"), bucket,
                                                            verify.get("different_size", "?"), ", ".join(sample)))
    objects = int(((verify.get("totals") or {}).get("objects")) or 0)
    if objects == 0 and cache_state.get("cache_has_files"):
        return ("the database references no cached object at all, yet %s holds files: this is not the database of "
                "these files (check DB_NAME/DB_HOST in %s) or not the right public/system (media_copy_system_root)"
                % (cache_dir, env_file))
    return ""


def state(cache_dir):
    """'cache', 'old', 'both' or 'none': which of cache and cache.old exist (as real directories)."""
    with Retirement(cache_dir, None) as r:
        return r.state()


def retire(cache_dir, marker_dir, check_mode=False):
    """cache -> cache.old with the marker. Returns (changed, message)."""
    with Retirement(cache_dir, marker_dir) as r:
        return r.retire(check_mode)


def restore(cache_dir, marker_dir, check_mode=False):
    """cache.old -> cache (marker removed). Returns (changed, message)."""
    with Retirement(cache_dir, marker_dir) as r:
        return r.restore(check_mode)


def delete_old(cache_dir, marker_dir, size_of, key_prefix="", check_mode=False):
    """Delete cache.old after checking the marker and every file against the bucket."""
    with Retirement(cache_dir, marker_dir) as r:
        return r.delete_old(size_of, key_prefix, check_mode)


def has_files(cache_dir):
    """True when ``cache_dir`` holds at least one file (links not followed)."""
    with Retirement(cache_dir, None) as r:
        return r.has_files()


class _Tree(object):
    """``with _Tree(Dir or absolute path) as Dir``: a path is anchored (and closed after)."""

    def __init__(self, root):
        self.own = not isinstance(root, Dir)
        if self.own:
            try:
                self.dir = Dir.anchor(os.path.abspath(root))
            except OSError as exc:
                raise RetirementError("cannot read %s: %s" % (root, exc)) from None
        else:
            self.dir = root

    def __enter__(self):
        return self.dir

    def __exit__(self, *exc_info):
        if self.own:
            self.dir.close()


def walk_files(root):
    """Yield (relative path, size) of every regular file below ``root`` (a Dir, or a path anchored
    here), links never followed. Raises RetirementError for anything else (a link, a device...),
    for a directory swapped while it was read and for any unreadable directory."""
    with _Tree(root) as tree:
        walker = tree.walk()
        while True:
            try:
                parts, st = next(walker)
            except StopIteration:
                return
            except OSError as exc:  # UnsafePath included: a directory changed while it was read
                raise RetirementError("cannot read %s: %s" % (tree.path, exc)) from None
            if not stat.S_ISREG(st.st_mode):
                raise RetirementError("%s is not a regular file (a link or a special file): not deleting %s"
                                      % (tree.child("/".join(parts)), tree.path))
            yield "/".join(parts), st.st_size


def compare_tree(root, size_of, key_base="cache", key_prefix=""):
    """Check every file of ``root`` (a Dir or a path) against the bucket (``size_of(key)`` -> size or None).

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
