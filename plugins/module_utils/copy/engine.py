# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine behind ``fediverse.object_storage.media_copy``.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_engine.py.

Shape of a run::

    rows (RowObjects) --triage--(bounded queue)--> N worker threads --> S3 (PUT / multipart / copy)
                          |
        index of the bucket: size_of(key)           compact index: sorted hash64 -> size
        token-bucket rate limiter shared by everything that sends a request
        progress file rewritten atomically every ~2 s
        tracer told each row and each object's outcome

What a run uses is given to ``CopyEngine``, and it uses nothing else:

* ``rows`` (``run``): the rows whose objects to process - the database's enumeration (mastodon/db.py), which
  in an incremental run selects only the rows changed since the last one (copy/selection.py);
* ``source``: where the objects are read from (copy/sources.py: the filesystem or another bucket);
* ``index``: what the bucket holds. ``None``: the engine lists the bucket once at the start
  (s3_listing.BucketIndex; with ``skip_existing`` or in verify mode). An incremental run passes a
  copy_head_index.HeadIndex instead, and the rows through its ``prefetch`` (one HeadObject per
  selected object, a batch ahead of the engine);
* ``limiter``: the RateLimiter (s3/rate_limit.py) shared by every request of the run;
* ``tracer``: told each row, each object's outcome and the end of the enumeration
  (copy/trace.py: nothing by default; the copy record's RowTracker, which notes the rows to retry).

The other rooms: copy/progress.py (Stats, the progress file). This file only decides, per object,
what to send, and sends it.

Memory stays bounded whatever the row count: the DB side is a server-side cursor, the queue has a
fixed size, the destination index is two flat ``array`` objects (16 bytes per object in the
bucket), samples of missing/failed keys are capped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import threading
import time

try:
    import queue
except ImportError:  # pragma: no cover - Python 2 is not supported, kept for the import sanity test
    import Queue as queue  # noqa: N813

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import public_grants
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.progress import (
    PROGRESS_INTERVAL,
    SAMPLE_SIZE,
    ProgressWriter,
    Stats,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import UnsafeSource
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.trace import Tracer
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import RateLimiter
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    describe_error,
    error_code,
    http_status,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import (
    BucketIndex,
    join_key,
    listing_prefix,
    use_fast_timestamps,
)

try:
    import botocore.exceptions as _bexc

    _CONNECTION_ERRORS = (
        _bexc.EndpointConnectionError,
        _bexc.ConnectionClosedError,
        _bexc.ReadTimeoutError,
        _bexc.ConnectTimeoutError,
        _bexc.HTTPClientError,
    )
except ImportError:  # pragma: no cover - the module reports the missing library
    _CONNECTION_ERRORS = ()

DEFAULT_CACHE_CONTROL = "public, max-age=315576000, immutable"
DEFAULT_ACL = "public-read"
DEFAULT_CONCURRENCY = 16
# Mastodon's own default for S3_MULTIPART_THRESHOLD (15.megabytes).
DEFAULT_MULTIPART_THRESHOLD = 15 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10000
PRIVATE_ACL = "private"
# triage() result for an object that must be private and is already in the bucket (issue 11): a
# worker checks its ACL (GetObjectAcl) and makes it private (PutObjectAcl) when anyone may read it.
CHECK_PRIVATE = object()
# The same for an object whose file was found in cache.old (counted ``retired`` once checked).
CHECK_PRIVATE_RETIRED = object()
# What CopyEngine._with_retries returns once the object was counted failed.
FAILED = object()

_RETRYABLE_CODES = frozenset((
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
    "503", "500", "502", "504", "BadDigest", "IncompleteBody",
))


def is_retryable(exc):
    """True for errors worth retrying at the object level: 5xx, throttling, connection trouble."""
    if _CONNECTION_ERRORS and isinstance(exc, _CONNECTION_ERRORS):
        return True
    code = error_code(exc)
    if code in _RETRYABLE_CODES:
        return True
    status = http_status(exc)
    if status is not None and (status >= 500 or status == 429):
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


def part_size_for(size, minimum=DEFAULT_PART_SIZE):
    """A part size >= 5 MiB that keeps the part count <= 10,000."""
    part = max(int(minimum), MIN_PART_SIZE)
    while (size + part - 1) // part > MAX_PARTS:
        part *= 2
    return part


class CopyEngine(object):
    """Copy (or verify, or count in check mode) the objects of a stream of RowObjects."""

    def __init__(self, client, bucket, source, key_prefix="", acl=DEFAULT_ACL, cache_control=DEFAULT_CACHE_CONTROL,
                 concurrency=DEFAULT_CONCURRENCY, max_requests_per_second=0, multipart_threshold=DEFAULT_MULTIPART_THRESHOLD,
                 part_size=DEFAULT_PART_SIZE, skip_existing=True, mode="copy", check_mode=False, progress_file=None,
                 retries=4, backoff=0.5, sample_size=SAMPLE_SIZE, limiter=None, sleep=time.sleep, index=None,
                 progress_interval=PROGRESS_INTERVAL, tracer=None):
        if mode not in ("copy", "verify"):
            raise ValueError("mode must be copy or verify, not %r" % mode)
        self.client = client
        if client is not None:
            use_fast_timestamps(client)
        self.bucket = bucket
        self.source = source
        self.key_prefix = key_prefix or ""
        self.acl = acl
        self.cache_control = cache_control
        self.concurrency = max(1, int(concurrency))
        self.multipart_threshold = int(multipart_threshold)
        self.part_size = max(int(part_size), MIN_PART_SIZE)
        self.skip_existing = bool(skip_existing)
        self.mode = mode
        self.check_mode = bool(check_mode)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.limiter = limiter if limiter is not None else RateLimiter(max_requests_per_second)
        self.stats = Stats(sample_size=sample_size)
        # Check mode writes nothing anywhere: no progress file either.
        self.progress = ProgressWriter(None if self.check_mode else progress_file, self.stats, progress_interval)
        self.index = index
        self.tracer = tracer if tracer is not None else Tracer()
        self._sleep = sleep
        # Check mode's plan (media_copy's estimate): the requests a real run would send for the objects
        # it would copy, and the bytes of every object found at the source (what the bucket will hold).
        # Only the producer thread (triage) adds to them.
        self.planned_requests = 0
        self.source_bytes = 0
        # At most a few part buffers in memory at once, whatever the concurrency.
        self._part_slots = threading.BoundedSemaphore(max(1, min(4, self.concurrency)))

    # --- per-object helpers -----------------------------------------------------------------
    def _count(self, kind, obj, outcome, size=0, reason=None):
        """Count one object's outcome, and tell the tracer."""
        self.stats.record(kind, outcome, obj.key, size, reason=reason)
        self.tracer.outcome(kind, obj, outcome)

    def _count_unsafe(self, kind, obj, reason):
        """A source refused for safety: counted failed (Stats.record_unsafe), and the tracer told."""
        self.stats.record_unsafe(kind, obj.key, reason)
        self.tracer.outcome(kind, obj, "failed")

    def dest_key(self, key):
        return join_key(self.key_prefix, key)

    def extra_args(self, obj):
        """ContentType, CacheControl and ACL of one PUT (what Mastodon itself sends)."""
        extra = {}
        if obj.content_type:
            extra["ContentType"] = obj.content_type
        if self.cache_control:
            extra["CacheControl"] = self.cache_control
        acl = obj.acl if obj.acl else self.acl
        if acl:
            extra["ACL"] = acl
        return extra

    def requests_for(self, obj, size):
        """The requests one transfer sends when nothing is retried: one PUT or copy, or the multipart's
        parts plus its create and complete."""
        if size <= self.multipart_threshold or self.source.copy_source(obj.key) is not None:
            return 1
        part = part_size_for(size, self.part_size)
        return (size + part - 1) // part + 2

    def _request(self, method, **kwargs):
        self.limiter.acquire()
        return getattr(self.client, method)(**kwargs)

    def transfer(self, obj, size):
        """Send one object to the bucket (server-side copy, single PUT, or multipart)."""
        dest_key = self.dest_key(obj.key)
        extra = self.extra_args(obj)
        copy_source = self.source.copy_source(obj.key)
        if copy_source is not None:
            self._request("copy_object", Bucket=self.bucket, Key=dest_key, MetadataDirective="REPLACE",
                          CopySource=copy_source, **extra)
        elif size > self.multipart_threshold:
            self._multipart(obj.key, dest_key, size, extra)
        else:
            with self.source.open(obj.key, self.limiter) as body:
                self._request("put_object", Bucket=self.bucket, Key=dest_key, Body=body, ContentLength=size, **extra)

    def _multipart(self, key, dest_key, size, extra):
        part_size = part_size_for(size, self.part_size)
        upload = self._request("create_multipart_upload", Bucket=self.bucket, Key=dest_key, **extra)
        upload_id = upload["UploadId"]
        parts = []
        try:
            number = 1
            offset = 0
            while offset < size:
                length = min(part_size, size - offset)
                with self._part_slots:
                    data = self.source.read_range(key, offset, length, self.limiter)
                    if len(data) != length:
                        raise OSError("source %s changed size while being copied" % key)
                    response = self._request("upload_part", Bucket=self.bucket, Key=dest_key, UploadId=upload_id,
                                             PartNumber=number, Body=data)
                    del data
                parts.append({"PartNumber": number, "ETag": response["ETag"]})
                number += 1
                offset += length
            self._request("complete_multipart_upload", Bucket=self.bucket, Key=dest_key, UploadId=upload_id,
                          MultipartUpload={"Parts": parts})
        except BaseException:
            try:
                self._request("abort_multipart_upload", Bucket=self.bucket, Key=dest_key, UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise

    def triage(self, kind, obj):
        """Decide what to do with one MediaObject without sending anything.

        Returns the source size when the object must be transferred, ``CHECK_PRIVATE`` when it is in
        the bucket but must be private (its ACL is checked by a worker: ensure_private), else None (the
        outcome -- missing_source, skipped, retired, verify findings, check-mode count -- is already recorded).
        Runs in the producer thread: a stat and an index lookup are cheaper than a hand-off to a
        worker, which keeps a no-op re-run fast.
        """
        key = obj.key
        try:
            size, retired = self.source.locate(key, self.limiter)
        except UnsafeSource as exc:
            self._count_unsafe(kind, obj, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001
            self._count(kind, obj, "failed", reason="cannot read source: %s" % exc)
            return None
        if size is None:
            # An object whose source is gone cannot be copied: in verify mode too it is reported
            # as missing_source only, so that missing_in_bucket lists what a copy would still send.
            self._count(kind, obj, "missing_source")
            return None
        # A file found in cache.old (retired by this migration) is no missing file: it is counted
        # ``retired`` instead of ``skipped`` (copied from there when the bucket lacks it).
        present_outcome = "retired" if retired else "skipped"
        self.source_bytes += size
        dest_key = self.dest_key(key)
        if self.mode == "verify":
            present = self.index.size_of(dest_key) if self.index is not None else None
            if present is None:
                self.stats.record_verify(kind, "missing_in_bucket", dest_key)
            elif present != size:
                self.stats.record_verify(kind, "different_size", dest_key, size, present)
            self._count(kind, obj, present_outcome)
            return None
        if self.skip_existing and self.index is not None and self.index.size_of(dest_key) == size:
            if obj.acl == PRIVATE_ACL:
                # skipped (retired) once a worker has checked its ACL (ensure_private)
                return CHECK_PRIVATE_RETIRED if retired else CHECK_PRIVATE
            self._count(kind, obj, present_outcome)
            return None
        if self.check_mode:
            self.planned_requests += self.requests_for(obj, size)
            self._count(kind, obj, "copied", size)
            return None
        return size

    def _with_retries(self, send, kind, obj, failure=""):
        """``send()`` with object-level retries: a retryable error (5xx, throttling, connection trouble)
        is tried again after an exponential backoff (at most 20 s), ``retries`` times at most. Returns
        what ``send`` returns, or ``FAILED`` once the object is counted failed (reason: ``failure`` and
        the error). ``UnsafeSource`` is the caller's to report."""
        attempt = 0
        while True:
            try:
                return send()
            except UnsafeSource:
                raise
            except Exception as exc:  # noqa: BLE001
                attempt += 1
                if attempt <= self.retries and is_retryable(exc):
                    self._sleep(min(self.backoff * (2 ** (attempt - 1)), 20.0))
                    continue
                reason = describe_error(exc, bucket=self.bucket) if hasattr(exc, "response") else "%s: %s" % (
                    type(exc).__name__, exc)
                self._count(kind, obj, "failed", reason=failure + reason)
                return FAILED

    def _make_private(self, dest_key):
        """True when the object's ACL let anyone read it; then it is set ``private`` (not in check mode)."""
        public = bool(public_grants(self._request("get_object_acl", Bucket=self.bucket, Key=dest_key).get("Grants")))
        if public and not self.check_mode:
            self._request("put_object_acl", Bucket=self.bucket, Key=dest_key, ACL=PRIVATE_ACL)
        return public

    def ensure_private(self, kind, obj, outcome="skipped"):
        """An object that must be private (backup, suspended account's media) is already in the bucket:
        if its ACL lets anyone read it (copied before the suspension; Mastodon only chmods local files),
        PutObjectAcl ``private`` (check mode: only reported). Counted ``outcome`` (``skipped``, or ``retired``
        for a file found in cache.old; and ``privatised``),
        or ``failed`` when its ACL cannot be read or set."""
        dest_key = self.dest_key(obj.key)
        public = self._with_retries(lambda: self._make_private(dest_key), kind, obj,
                                    failure="cannot make the object private: ")
        if public is FAILED:
            return
        if public:
            self.stats.record_privatised(kind, dest_key)
        self._count(kind, obj, outcome)

    def copy_one(self, kind, obj, size):
        """Transfer one object with object-level retries; never raises (one failure never aborts the run)."""
        if size is CHECK_PRIVATE or size is CHECK_PRIVATE_RETIRED:
            self.ensure_private(kind, obj, "retired" if size is CHECK_PRIVATE_RETIRED else "skipped")
            return
        try:
            outcome = self._with_retries(lambda: self.transfer(obj, size), kind, obj)
        except UnsafeSource as exc:  # swapped for a link after triage
            self._count_unsafe(kind, obj, str(exc))
            return
        if outcome is not FAILED:
            self._count(kind, obj, "copied", size)

    # --- the run ------------------------------------------------------------------------------
    def _worker(self, work):
        while True:
            item = work.get()
            try:
                if item is None:
                    return
                self.copy_one(item[0], item[1], item[2])
            finally:
                work.task_done()

    def build_index(self):
        """List the destination once (skip_existing / verify)."""
        self.stats.phase = "listing"
        self.progress.write()
        self.index = BucketIndex.from_listing(self.client, self.bucket, listing_prefix(self.key_prefix), self.limiter)
        return self.index

    def run(self, rows, rows_total=None):
        """Process every object of ``rows`` (an iterable of RowObjects); return the result dict."""
        stats = self.stats
        stats.rows_total = rows_total
        self.progress.start()
        work = queue.Queue(maxsize=self.concurrency * 4)
        threads = []
        try:
            if self.index is None and (self.skip_existing or self.mode == "verify"):
                self.build_index()
            if self.source.needs_prepare:
                stats.phase = "listing source"
                self.source.prepare(self.limiter)
            stats.phase = {"copy": "copying", "verify": "verifying"}[self.mode]
            if self.check_mode and self.mode == "copy":
                stats.phase = "counting"
            for number in range(self.concurrency):
                thread = threading.Thread(target=self._worker, args=(work,), name="media_copy-worker-%d" % number)
                thread.daemon = True
                thread.start()
                threads.append(thread)
            for row in rows:
                self.tracer.row(row)
                objects = list(row.objects)
                rejected = getattr(row, "rejected", None) or ()
                stats.add_row(row.kind, len(objects) + len(rejected))
                for kind, key, reason in rejected:
                    stats.record_unsafe(kind, key, reason)  # a crafted file name (mastodon_layout)
                    self.tracer.outcome(kind, None, "failed")  # no MediaObject was made of it
                for obj in objects:
                    kind = getattr(obj, "kind", None) or row.kind
                    size = self.triage(kind, obj)
                    if size is not None:
                        work.put((kind, obj, size))
            self.tracer.enumerated()
            stats.enumeration_done = True
        finally:
            work_items = [None] * len(threads)
            for stop in work_items:
                work.put(stop)
            for thread in threads:
                thread.join()
            stats.phase = "done"
            self.progress.stop()
        return self.result()

    def result(self):
        stats = self.stats
        seconds = max(time.monotonic() - stats.started, 1e-9)
        totals = stats.totals()
        result = {
            "mode": self.mode,
            "kinds": dict((k, dict(v)) for k, v in sorted(stats.kinds.items())),
            "totals": totals,
            "bytes": stats.bytes,
            "seconds": round(seconds, 3),
            "objects_per_second": round(stats.done / seconds, 2),
            "requests": self.limiter.requests,
            "missing_source_sample": list(stats.missing_sample),
            "failed_sample": list(stats.failed_sample),
            "unsafe_source": stats.unsafe_source,
            "unsafe_source_sample": list(stats.unsafe_sample),
            "privatised": stats.privatised,
            "privatised_sample": list(stats.privatised_sample),
            "changed": bool(totals["copied"] or stats.privatised) and self.mode == "copy",
        }
        if self.mode == "verify":
            result["missing_in_bucket"] = stats.missing_in_bucket
            result["different_size"] = stats.different_size
            result["missing_in_bucket_sample"] = list(stats.verify_missing_sample)
            result["different_size_sample"] = list(stats.verify_different_sample)
            # An object whose source could not be read (failed) was not verified either.
            result["verified"] = not (stats.missing_in_bucket or stats.different_size or totals["failed"])
        return result
