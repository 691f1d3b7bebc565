# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy record: what media_copy copied, so that a later run copies only what changed.

Plain Python (no Ansible import), tested in tests/unit/test_copy_record.py and, against real
PostgreSQL and Ceph RGW, in tests/integration/test_media_copy_incremental.py.

This room keeps the record file (``binding``, ``load``, ``save``) and one run's use of it
(``RunRecord``), which puts together the three pieces of an incremental run, each in its room:
what to select (copy_selection.Selection, the SQL), what the bucket holds (copy_head_index.HeadIndex,
one HeadObject per selected object instead of a listing), and what the run did (copy_trace.RowTracker,
the engine's tracer). The caller (media_copy.handle_copy) hands them to the database enumeration and
to ``CopyEngine``; nothing here touches the engine.

After a copy run that went through every row in scope, the record says, per kind:

* ``since``: the database's clock (UTC) when the run started enumerating. Every row committed
  after that moment has ``updated_at`` (or ``<attachment>_updated_at``) close to or after it:
  Rails sets both when it saves a row, and Paperclip sets ``<attachment>_updated_at`` when a file
  is assigned (new upload, re-fetched remote media, replaced avatar). A later incremental run
  selects ``updated_at >= since - margin`` (the margin covers the time between Rails' save and
  the commit, and clock skew between the app host and the database);
* ``high_id``: the highest row id seen (rows created since are selected too);
* ``retry_ids``: the rows one of whose objects failed or whose source file was missing: selected
  again by every incremental run until they are copied.

The record never makes a run skip an object that is not in the bucket:

* it is written only at the end of a run that enumerated every row in scope (no ``limit``, no
  error, not check mode); an interrupted run leaves the previous record, which is still true;
* it is bound to the endpoint, bucket, key prefix, scope, backups, shard, source and database:
  a record made for another bucket or prefix is ignored (a full run, with a listing, is made);
* an incremental run does not list the bucket, but looks up each selected object with one
  HeadObject (in parallel, ahead of the copy) and copies it unless it is there with the same size;
* too many failed rows to remember (copy_trace's ``MAX_RETRY_IDS``), or a failure the tracer cannot
  tie to a row: no record is written.

The file lives in ``record_dir`` (root-only: 0700 directory, 0600 file); a file that is a link,
not owned by this user or writable by others is ignored, and never written through.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import datetime
import hashlib
import json
import os
import stat

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.head_index import HEAD_LIMIT_ROWS, HeadIndex
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.selection import (
    DEFAULT_MARGIN,
    Selection,
    db_now,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.trace import RowTracker
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import resolve_endpoint

RECORD_VERSION = 1
MAX_RECORD_BYTES = 16 * 1024 * 1024
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"
# A run that sent fewer requests says nothing of the rate a copy holds (a no-op re-run, a few HEADs).
MIN_PACED_REQUESTS = 200


def binding(endpoint, bucket, key_prefix, scope, include_backups, shard_index, shard_count, source, db_params):
    """What a record is valid for: a record made with any other value is ignored."""
    return {
        "endpoint": resolve_endpoint(endpoint),
        "bucket": bucket,
        "key_prefix": (key_prefix or "").strip("/"),
        "scope": sorted(set(scope or ())),
        "include_backups": bool(include_backups),
        "shard": [int(shard_index), int(shard_count)],
        "source": source,
        "database": "%s:%s/%s" % (db_params.get("host"), db_params.get("port"), db_params.get("dbname")),
    }


def source_binding(source, system_root=None, source_endpoint=None, source_bucket=None, source_key_prefix=None):
    if source == "filesystem":
        return "filesystem:%s" % os.path.abspath(system_root or "")
    return "s3:%s/%s/%s" % (resolve_endpoint(source_endpoint), source_bucket, (source_key_prefix or "").strip("/"))


def record_path(record_dir, bound):
    digest = hashlib.sha256(json.dumps(bound, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    return os.path.join(record_dir, "media-copy-%s.json" % digest)


def _safe_dir(record_dir):
    """None when ``record_dir`` is a real directory owned by us and writable by us only, else why not."""
    try:
        st = os.lstat(record_dir)
    except OSError as exc:
        return "record_dir %s: %s" % (record_dir, exc.strerror or exc)
    if not stat.S_ISDIR(st.st_mode):
        return "record_dir %s is not a directory (or is a link)" % record_dir
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:
        return "record_dir %s is not owned by this user or is writable by others" % record_dir
    return None


def _parse_time(text):
    return datetime.datetime.strptime(text, _TIME_FORMAT)


def load(record_dir, bound):
    """(record, None) or (None, reason): the record made for exactly ``bound``, if any and sane."""
    if not os.path.lexists(record_dir):
        return None, "no record of an earlier run (%s does not exist yet)" % record_dir
    problem = _safe_dir(record_dir)
    if problem:
        return None, problem
    path = record_path(record_dir, bound)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        return None, "no record of an earlier run (%s)" % (exc.strerror or exc)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            return None, "record %s is not a regular file owned by this user" % path
        if st.st_size > MAX_RECORD_BYTES:
            return None, "record %s is too large" % path
        with os.fdopen(fd, "rb") as fh:
            fd = None
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        return None, "record %s is unreadable: %s" % (path, exc)
    finally:
        if fd is not None:
            os.close(fd)
    try:
        if data.get("version") != RECORD_VERSION:
            return None, "record %s has another version" % path
        if data.get("binding") != bound:
            return None, "record %s was made for another endpoint, bucket, prefix, scope or source" % path
        kinds = {}
        for kind, entry in data["kinds"].items():
            kinds[str(kind)] = {
                "since": _parse_time(entry["since"]),
                "high_id": int(entry["high_id"]),
                "retry_ids": [int(i) for i in entry["retry_ids"]],
            }
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        return None, "record %s is malformed: %s" % (path, exc)
    return {"kinds": kinds, "written_at": data.get("written_at"), "pacing": _pacing(data.get("pacing"))}, None


def _pacing(value):
    """The pace a run held (``held_rate``, requests/s; ``throttled``), as kept in the record: check mode's
    estimate uses it. None when absent or not numbers."""
    if not isinstance(value, dict):
        return None
    try:
        held = float(value["held_rate"])
        throttled = int(value.get("throttled") or 0)
    except (KeyError, TypeError, ValueError):
        return None
    return {"held_rate": held, "throttled": throttled} if held > 0 else None


def save(record_dir, bound, kinds, pacing=None):
    """Write the record atomically (0600, through no link). Returns the path."""
    if not os.path.exists(record_dir):
        os.makedirs(record_dir, 0o700)
    problem = _safe_dir(record_dir)
    if problem:
        raise OSError(problem)
    path = record_path(record_dir, bound)
    data = {
        "version": RECORD_VERSION,
        "binding": bound,
        "written_at": datetime.datetime.now(datetime.timezone.utc).strftime(_TIME_FORMAT),
        "kinds": dict((kind, {"since": entry["since"].strftime(_TIME_FORMAT), "high_id": entry["high_id"],
                              "retry_ids": sorted(entry["retry_ids"])})
                      for kind, entry in sorted(kinds.items())),
    }
    if _pacing(pacing):
        data["pacing"] = _pacing(pacing)
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


class RunRecord(object):
    """One run's use of the record: what to select (``begin``), which index of the bucket to use
    (``choose_index``), the tracer to give the engine (``tracker``), what to write at the end (``finish``).

    ``since_last_run`` asks for an incremental run; ``write`` (a complete copy run, not check mode)
    allows writing the record at the end. Full runs write it too, so that the next pass can be
    incremental.
    """

    def __init__(self, record_dir, bound, since_last_run=False, margin=DEFAULT_MARGIN, write=True):
        self.record_dir = record_dir
        self.bound = bound
        self.since_last_run = bool(since_last_run)
        self.margin = margin
        self.write = bool(write)
        self.old = None
        self.reason = "a full run was asked for" if not since_last_run else None
        self.since = None
        self.selection = None
        self.tracker = RowTracker()
        self.head_index = None
        self.listed = True
        self.written = None
        self.error = None

    @property
    def incremental(self):
        return self.old is not None

    def begin(self, conn):
        """Read the clock, then the record; returns the ``changed`` callback for the DB queries."""
        self.since = db_now(conn)
        if self.since_last_run:
            self.old, self.reason = load(self.record_dir, self.bound)
        self.selection = Selection(self.old, self.margin)
        return self.selection

    def choose_index(self, client, bucket, key_prefix, limiter, workers, rows_selected, skip_existing=True):
        """The engine's index of the bucket: a HeadIndex in an incremental run that selected at most
        ``HEAD_LIMIT_ROWS`` rows (the rows go through its ``prefetch``), else None (the engine lists
        the bucket, or does not look, without skip_existing)."""
        self.listed = bool(skip_existing)
        if not (self.incremental and skip_existing):
            return None
        if rows_selected > HEAD_LIMIT_ROWS:
            self.reason = "%d rows changed: the bucket is listed instead of one HEAD per object" % rows_selected
            return None
        high_ids = dict((kind, entry["high_id"]) for kind, entry in self.old.get("kinds", {}).items())
        self.head_index = HeadIndex(client, bucket, key_prefix, limiter, workers=workers, high_ids=high_ids)
        self.listed = False
        return self.head_index

    def last_pacing(self):
        """The pace the last complete run held (``{"held_rate", "throttled"}``), or None: read from the
        record, whether or not this run is incremental."""
        record = self.old
        if record is None:
            record, _reason = load(self.record_dir, self.bound)
        return (record or {}).get("pacing")

    def finish(self, pacing=None):
        """Write the record of a complete run; ``pacing``: the pace it held (rate_limit's report), kept
        when the run sent enough requests to measure it (MIN_PACED_REQUESTS), else the last one's is kept."""
        if not self.write:
            return None
        if not pacing or int(pacing.get("requests") or 0) < MIN_PACED_REQUESTS or not pacing.get("held_rate"):
            pacing = self.last_pacing()
        kinds = self.tracker.kinds_record(self.selection.kinds, self.since, self.old)
        if kinds is None:
            self.error = "not written: the run did not end cleanly or too many rows failed"
            return None
        try:
            self.written = save(self.record_dir, self.bound, kinds, pacing)
        except OSError as exc:
            self.error = "not written: %s" % exc
        return self.written

    def report(self):
        out = {
            "incremental": self.incremental,
            "listed": self.listed,
            "record_written": self.written is not None,
            "record": self.written or record_path(self.record_dir, self.bound),
        }
        if self.head_index is not None:
            out["looked_up"] = self.head_index.looked_up
            out["new_rows_not_looked_up"] = self.head_index.unseen_rows
        if self.reason:
            out["reason"] = self.reason
        if self.error:
            out["error"] = self.error
        if self.old is not None:
            out["since"] = dict((k, (v["since"] - self.selection.margin).strftime(_TIME_FORMAT))
                                for k, v in sorted(self.old["kinds"].items()))
        return out
