# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Following a copy run: what ``CopyEngine`` tells its tracer, and the tracer of the copy record.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_trace.py.

The engine (copy/engine.py) tells its tracer three things, and only these:

* ``row(row)``: each row it enumerates (in the producer thread, before its objects are triaged);
* ``outcome(kind, obj, outcome)``: each object's outcome as it is counted - ``copied``, ``skipped``,
  ``retired``, ``missing_source`` or ``failed`` - with the ``MediaObject`` it belongs to (``None`` for
  a file name refused before it became an object: ``RowObjects.rejected``), from whichever thread
  handled the object;
* ``enumerated()``: the enumeration ended (every row was seen).

``Tracer`` listens to nothing (a run without a copy record); ``RowTracker`` follows what the copy
record needs (copy/record.py): the highest row id per kind, and the rows to select again next time.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import threading

MAX_RETRY_IDS = 50000
# The outcomes that leave a row's objects not (all) in the bucket: the row is selected again next time.
RETRY_OUTCOMES = frozenset(("failed", "missing_source"))


class Tracer(object):
    """The engine's default tracer: follows nothing."""

    def row(self, row):
        pass

    def outcome(self, kind, obj, outcome):
        pass

    def enumerated(self):
        pass


class RowTracker(Tracer):
    """Follows one run for its copy record: the highest id per kind, and the rows whose objects failed
    or were missing (``retry``), to be selected again by the next incremental run.

    The record may be written (``kinds_record``) only after a run that enumerated every row, with no
    outcome it could not tie to a row (``unknown``), and at most ``max_retry_ids`` rows to retry.
    """

    def __init__(self, max_retry_ids=MAX_RETRY_IDS):
        self.high_ids = {}
        self.retry = {}
        self.retry_count = 0
        self.max_retry_ids = max_retry_ids
        self.overflow = False
        self.unknown = False
        self.complete = False
        self._lock = threading.Lock()

    def row(self, row):
        if row.row_id > self.high_ids.get(row.kind, -1):
            self.high_ids[row.kind] = row.row_id

    def enumerated(self):
        self.complete = True

    def outcome(self, kind, obj, outcome):
        if outcome not in RETRY_OUTCOMES:
            return
        with self._lock:
            if obj is None:
                # No row to select again (a refused file name): the record is not written, so the
                # next run is a full one.
                self.unknown = True
                return
            if self.overflow:
                return  # no record will be written: stop growing the set
            ids = self.retry.setdefault(kind, set())
            if obj.row_id not in ids:
                ids.add(obj.row_id)
                self.retry_count += 1
                if self.retry_count > self.max_retry_ids:
                    self.overflow = True

    def kinds_record(self, kinds, since, old=None):
        """The record's kinds after a complete run, or None when it must not be written."""
        if not self.complete or self.overflow or self.unknown:
            return None
        old_kinds = (old or {}).get("kinds", {})
        out = {}
        for kind in kinds:
            high = self.high_ids.get(kind, -1)
            if kind in old_kinds:
                high = max(high, old_kinds[kind]["high_id"])
            out[kind] = {"since": since, "high_id": max(high, 0), "retry_ids": sorted(self.retry.get(kind, ()))}
        return out
