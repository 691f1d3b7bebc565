# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the bucket holds, by HeadObject: the destination index of an incremental copy run.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_head_index.py.

A full run lists the bucket once (s3_listing.BucketIndex). An incremental run selects few rows
(copy/selection.py), so it looks up each of their objects with one HeadObject instead; above
``HEAD_LIMIT_ROWS`` selected rows, listing is cheaper and the bucket is listed after all
(copy_record.RunRecord.choose_index decides).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import join_key

# Above this many selected rows, listing the bucket once is cheaper than a HEAD per object.
HEAD_LIMIT_ROWS = 20000
PREFETCH_ROWS = 256


class HeadIndex(object):
    """Stands in for the destination listing in an incremental run: the objects of the selected rows
    are looked up with HeadObject, ``PREFETCH_ROWS`` rows at a time by ``workers`` threads, just
    before the engine sees them (the rows the engine gets are ``prefetch(rows)``). ``size_of``
    answers from that batch (None: not there, or not known -- then the object is copied)."""

    def __init__(self, client, bucket, key_prefix="", limiter=None, workers=16, high_ids=None):
        self.client = client
        self.bucket = bucket
        self.key_prefix = key_prefix or ""
        self.limiter = limiter
        self.workers = max(1, int(workers))
        # {kind: the record's high id}: a row above it was never seen by a recorded run, so its objects
        # are copied without a HeadObject first (nothing to skip; a re-run finds them by HEAD).
        self.high_ids = high_ids or {}
        self.unseen_rows = 0
        self.looked_up = 0
        self._sizes = {}

    def _head(self, key):
        if self.limiter is not None:
            self.limiter.acquire()
        try:
            return key, int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception:  # noqa: BLE001 - not found, or unknown: either way the object is copied
            return key, None

    def prefetch(self, rows, batch=PREFETCH_ROWS):
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            pending = []
            for row in rows:
                pending.append(row)
                if len(pending) >= batch:
                    yield from self._resolve(pool, pending)
                    pending = []
            yield from self._resolve(pool, pending)

    def unseen(self, row):
        high = self.high_ids.get(row.kind)
        return high is not None and row.row_id > high

    def _resolve(self, pool, rows):
        keys = []
        for row in rows:
            if self.unseen(row):
                self.unseen_rows += 1
            else:
                keys.extend(join_key(self.key_prefix, obj.key) for obj in row.objects)
        self.looked_up += len(keys)
        self._sizes = dict(pool.map(self._head, keys)) if keys else {}
        return rows

    def size_of(self, key):
        return self._sizes.get(key)

    def __len__(self):
        return len(self._sizes)
