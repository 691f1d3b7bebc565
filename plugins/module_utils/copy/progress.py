# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The counters of a ``media_copy`` run and the progress file ``media_copy_wait`` reads.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_engine.py. ``Stats`` is
thread-safe (workers record outcomes concurrently) and keeps its samples capped, so memory does
not grow with the number of objects; ``ProgressWriter`` rewrites the progress file atomically from
a daemon thread every ``PROGRESS_INTERVAL`` seconds and once at the end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import json
import threading
import time

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import write_atomic

SAMPLE_SIZE = 20
PROGRESS_INTERVAL = 2.0
# retired: not at its place on disk but in the retired cache (cache.old) and in the bucket - no missing file.
COUNTERS = ("rows", "objects", "copied", "skipped", "retired", "missing_source", "failed")


class Stats(object):
    """Thread-safe counters, per kind and in total, plus capped samples."""

    def __init__(self, sample_size=SAMPLE_SIZE, clock=time.monotonic):
        self._lock = threading.Lock()
        self.kinds = {}
        self.bytes = 0
        self.done = 0
        self.rows_total = None
        self.rows_seen = 0
        self.objects_seen = 0
        self.sample_size = sample_size
        self.missing_sample = []
        self.failed_sample = []
        self.verify_missing_sample = []
        self.verify_different_sample = []
        self.missing_in_bucket = 0
        self.different_size = 0
        self.unsafe_source = 0
        self.unsafe_sample = []
        self.privatised = 0
        self.privatised_sample = []
        self.different_on_disk = 0
        self.different_on_disk_sample = []
        self.phase = "starting"
        self.enumeration_done = False
        self._clock = clock
        self.started = clock()

    def kind(self, name):
        entry = self.kinds.get(name)
        if entry is None:
            entry = self.kinds[name] = dict((c, 0) for c in COUNTERS)
        return entry

    def add_row(self, kind, objects):
        with self._lock:
            entry = self.kind(kind)
            entry["rows"] += 1
            entry["objects"] += objects
            self.rows_seen += 1
            self.objects_seen += objects

    def record(self, kind, outcome, key=None, size=0, reason=None):
        """Count one processed object: outcome is copied/skipped/retired/missing_source/failed."""
        with self._lock:
            self.kind(kind)[outcome] += 1
            self.done += 1
            if outcome == "copied":
                self.bytes += int(size or 0)
            elif outcome == "missing_source" and len(self.missing_sample) < self.sample_size:
                self.missing_sample.append({"kind": kind, "key": key, "reason": reason or "source file not found"})
            elif outcome == "failed" and len(self.failed_sample) < self.sample_size:
                self.failed_sample.append({"kind": kind, "key": key, "reason": reason or "unknown error"})

    def record_unsafe(self, kind, key, reason):
        """A source refused for safety (a link, a crafted file name): never uploaded, counted as
        failed (the run does not pass silently) and listed in ``unsafe_source_sample``."""
        self.record(kind, "failed", key, reason="unsafe source: %s" % reason)
        with self._lock:
            self.unsafe_source += 1
            if len(self.unsafe_sample) < self.sample_size:
                self.unsafe_sample.append({"kind": kind, "key": key, "reason": reason})

    def record_different_on_disk(self, kind, key, size, bucket_size):
        """copy_back: a file on disk whose size is not its object's (truncated?). Never overwritten,
        counted as failed (the rollback stops) and listed in ``different_on_disk_sample``."""
        self.record(kind, "failed", key, reason=(
            "on disk with %d bytes, the object in the bucket has %d: not overwritten" % (size, bucket_size)))
        with self._lock:
            self.different_on_disk += 1
            if len(self.different_on_disk_sample) < self.sample_size:
                self.different_on_disk_sample.append({"kind": kind, "key": key, "size": size, "bucket_size": bucket_size})

    def record_privatised(self, kind, key):
        """An object that must be private was readable by anyone in the bucket: made private
        (in check mode: would be)."""
        with self._lock:
            self.privatised += 1
            if len(self.privatised_sample) < self.sample_size:
                self.privatised_sample.append({"kind": kind, "key": key})

    def record_verify(self, kind, problem, key, expected_size=None, actual_size=None):
        with self._lock:
            if problem == "missing_in_bucket":
                self.missing_in_bucket += 1
                if len(self.verify_missing_sample) < self.sample_size:
                    self.verify_missing_sample.append({"kind": kind, "key": key})
            else:
                self.different_size += 1
                if len(self.verify_different_sample) < self.sample_size:
                    self.verify_different_sample.append(
                        {"kind": kind, "key": key, "size": expected_size, "bucket_size": actual_size})

    def totals(self):
        totals = dict((c, 0) for c in COUNTERS)
        for entry in self.kinds.values():
            for c in COUNTERS:
                totals[c] += entry[c]
        return totals

    def estimated_total(self):
        """Objects expected in all: exact once enumeration ended, else extrapolated from rows."""
        if self.enumeration_done or not self.rows_total or not self.rows_seen:
            return self.objects_seen
        per_row = float(self.objects_seen) / self.rows_seen
        return max(self.objects_seen, int(round(self.objects_seen + (self.rows_total - self.rows_seen) * per_row)))

    def progress(self, finished=False):
        with self._lock:
            elapsed = max(self._clock() - self.started, 1e-9)
            totals = self.totals()
            total = self.estimated_total()
            rate = self.done / elapsed
            remaining = max(total - self.done, 0)
            eta = 0.0 if finished else (remaining / rate if rate > 0 else None)
            return {
                "phase": self.phase,
                "finished": bool(finished),
                "done": self.done,
                "total": total,
                "rows_done": self.rows_seen,
                "rows_total": self.rows_total,
                "copied": totals["copied"],
                "skipped": totals["skipped"],
                "failed": totals["failed"],
                "missing_source": totals["missing_source"],
                "bytes": self.bytes,
                "elapsed_seconds": round(elapsed, 3),
                "rate": {"objects_per_second": round(rate, 2), "bytes_per_second": round(self.bytes / elapsed, 1)},
                "eta_seconds": None if eta is None else round(eta, 1),
                "percent": round(100.0 * self.done / total, 1) if total else (100.0 if finished else 0.0),
                "updated_at": time.time(),
            }


def write_json_atomic(path, data):
    """Write ``data`` as JSON to ``path`` via module_utils/fs/atomic.py (readers never see half;
    an unpredictable temporary name created exclusively, a link at ``path`` is refused)."""
    write_atomic(path, json.dumps(data, sort_keys=True) + "\n")


class ProgressWriter(object):
    """Rewrites the progress file every ``interval`` seconds from a daemon thread, and at the end."""

    def __init__(self, path, stats, interval=PROGRESS_INTERVAL):
        self.path = path
        self.stats = stats
        self.interval = interval
        self._stop = threading.Event()
        self._thread = None

    def write(self, finished=False):
        if self.path:
            write_json_atomic(self.path, self.stats.progress(finished=finished))

    def start(self):
        if not self.path:
            return
        self.write()
        self._thread = threading.Thread(target=self._loop, name="media_copy-progress")
        self._thread.daemon = True
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except (OSError, ValueError):  # pragma: no cover - a full disk must not kill the copy
                pass

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.write(finished=True)
