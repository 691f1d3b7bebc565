# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The copy engine behind ``fediverse.object_storage.media_copy``.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_engine.py.

Shape of a run::

    DB generator of RowObjects --(bounded queue)--> N worker threads --> S3 (PUT / multipart / copy)
                                                        |
        destination listing (ListObjectsV2, ONCE) ------+   compact index: sorted hash64 -> size
        token-bucket rate limiter shared by everything that sends a request
        progress file rewritten atomically every ~2 s

Memory stays bounded whatever the row count: the DB side is a server-side cursor, the queue has a
fixed size, the destination index is two flat ``array`` objects (16 bytes per object in the
bucket), samples of missing/failed keys are capped.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import bisect
import datetime
import errno
import json
import os
import stat
import threading
import time
from array import array
from xml.etree import ElementTree

try:
    import queue
except ImportError:  # pragma: no cover - Python 2 is not supported, kept for the import sanity test
    import Queue as queue  # noqa: N813

from ansible_collections.fediverse.object_storage.plugins.module_utils.atomic import write_atomic
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import (
    describe_error,
    error_code,
    http_status,
    resolve_endpoint,
)

try:
    import botocore.exceptions as _bexc
    from botocore.utils import parse_timestamp as _botocore_parse_timestamp

    _CONNECTION_ERRORS = (
        _bexc.EndpointConnectionError,
        _bexc.ConnectionClosedError,
        _bexc.ReadTimeoutError,
        _bexc.ConnectTimeoutError,
        _bexc.HTTPClientError,
    )
except ImportError:  # pragma: no cover - the module reports the missing library
    _CONNECTION_ERRORS = ()
    _botocore_parse_timestamp = None

DEFAULT_CACHE_CONTROL = "public, max-age=315576000, immutable"
DEFAULT_ACL = "public-read"
DEFAULT_CONCURRENCY = 16
# Mastodon's own default for S3_MULTIPART_THRESHOLD (15.megabytes).
DEFAULT_MULTIPART_THRESHOLD = 15 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10000
SAMPLE_SIZE = 20
PROGRESS_INTERVAL = 2.0
COUNTERS = ("rows", "objects", "copied", "skipped", "missing_source", "failed")
# "The file does not exist": the only source errors that count as a missing source. Anything else
# (EACCES, EIO, ESTALE...) is a failure, in verify mode too: an unreadable file was not verified.
NOT_FOUND_ERRNOS = (errno.ENOENT, errno.ENOTDIR)
VERIFY_COUNTERS = ("missing_in_bucket", "different_size")
PRIVATE_ACL = "private"
# The groups whose grants make an object readable by others than its owner (S3 ACL grantee URIs).
PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)
# triage() result for an object that must be private and is already in the bucket (issue 11): a
# worker checks its ACL (GetObjectAcl) and makes it private (PutObjectAcl) when anyone may read it.
CHECK_PRIVATE = object()

_RETRYABLE_CODES = frozenset((
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests",
    "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
    "503", "500", "502", "504", "BadDigest", "IncompleteBody",
))


def join_key(prefix, key):
    """``prefix/key`` (Mastodon's S3_KEY_PREFIX), or ``key`` when there is no prefix."""
    key = key.lstrip("/")
    if not prefix:
        return key
    prefix = prefix.strip("/")
    return "%s/%s" % (prefix, key) if prefix else key


def listing_prefix(prefix):
    """The ListObjectsV2 prefix that covers every key under ``prefix`` ('' for the whole bucket)."""
    prefix = (prefix or "").strip("/")
    return prefix + "/" if prefix else ""


def key_hash(key):
    """A 64-bit hash of a key (stable within one process, which is all the index needs)."""
    return hash(key)


def fast_timestamp(value):
    """botocore's timestamp parser, with a fast path for S3's ISO 8601 ``LastModified``.

    botocore parses every timestamp with dateutil: for a 1000-key ListObjectsV2 page that is most
    of the client-side time of a listing (measured: ~60 % of a no-op re-run's listing).
    """
    if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T":
        text = value[:-1] + "+00:00" if value.endswith("Z") else value
        try:
            parsed = datetime.datetime.fromisoformat(text)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    return _botocore_parse_timestamp(value)


def parse_list_objects_v2(body):
    """The fields of a ListObjectsV2 result the engine needs, parsed with ElementTree directly.

    botocore's generic, model-driven XML parser costs ~40 us per listed object in pure Python,
    which made the listing the bulk of a no-op re-run. Same output shape as botocore's
    (keys still URL-encoded when EncodingType=url: botocore's own after-call handler decodes them).
    """
    root = ElementTree.fromstring(body)
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    out = {}
    for name in ("Name", "Prefix", "Delimiter", "EncodingType", "StartAfter", "ContinuationToken",
                 "NextContinuationToken"):
        node = root.find(ns + name)
        if node is not None:
            out[name] = node.text or ""
    for name in ("MaxKeys", "KeyCount"):
        node = root.find(ns + name)
        if node is not None and node.text:
            out[name] = int(node.text)
    node = root.find(ns + "IsTruncated")
    out["IsTruncated"] = node is not None and (node.text or "").strip().lower() == "true"
    contents = []
    for item in root.iter(ns + "Contents"):
        entry = {"Key": item.findtext(ns + "Key") or "", "Size": int(item.findtext(ns + "Size") or 0)}
        etag = item.findtext(ns + "ETag")
        if etag is not None:
            entry["ETag"] = etag
        modified = item.findtext(ns + "LastModified")
        if modified:
            entry["LastModified"] = fast_timestamp(modified)
        storage_class = item.findtext(ns + "StorageClass")
        if storage_class is not None:
            entry["StorageClass"] = storage_class
        contents.append(entry)
    if contents:
        out["Contents"] = contents
    prefixes = [{"Prefix": cp.findtext(ns + "Prefix") or ""} for cp in root.iter(ns + "CommonPrefixes")]
    if prefixes:
        out["CommonPrefixes"] = prefixes
    return out


class _FastParserFactory(object):
    """Wraps botocore's response parser factory: ListObjectsV2 results go through
    parse_list_objects_v2 (falling back to botocore on any surprise); everything else, and
    every error response, is botocore's."""

    def __init__(self, inner):
        self._inner = inner

    def set_parser_defaults(self, **kwargs):
        self._inner.set_parser_defaults(**kwargs)

    def create_parser(self, protocol_name):
        parser = self._inner.create_parser(protocol_name)
        original = getattr(parser, "_do_parse", None)
        if original is None:
            return parser

        def _do_parse(response, shape):
            if shape is not None and getattr(shape, "name", None) == "ListObjectsV2Output":
                try:
                    return parse_list_objects_v2(response["body"])
                except Exception:  # noqa: BLE001 - botocore's parser knows every corner case
                    pass
            return original(response, shape)

        parser._do_parse = _do_parse
        return parser


def use_fast_timestamps(client):
    """Make ``client`` parse timestamps with fast_timestamp and ListObjectsV2 with ElementTree.

    Same results as botocore's parsers; a no-op if botocore's internals are not as expected.
    """
    endpoint = getattr(client, "_endpoint", None)
    factory = getattr(endpoint, "_response_parser_factory", None)
    if factory is None or not hasattr(factory, "create_parser") or _botocore_parse_timestamp is None:
        return
    if hasattr(factory, "set_parser_defaults"):
        factory.set_parser_defaults(timestamp_parser=fast_timestamp)
    if not isinstance(factory, _FastParserFactory):
        endpoint._response_parser_factory = _FastParserFactory(factory)


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


def acl_is_public(grants):
    """True when an object ACL's ``Grants`` give anything to AllUsers or AuthenticatedUsers
    (a canned ``private`` ACL grants FULL_CONTROL to the owner only)."""
    for grant in grants or ():
        grantee = grant.get("Grantee") or {}
        if grantee.get("Type", "Group") == "Group" and grantee.get("URI") in PUBLIC_GROUPS:
            return True
    return False


def part_size_for(size, minimum=DEFAULT_PART_SIZE):
    """A part size >= 5 MiB that keeps the part count <= 10,000."""
    part = max(int(minimum), MIN_PART_SIZE)
    while (size + part - 1) // part > MAX_PARTS:
        part *= 2
    return part


class RateLimiter(object):
    """Token bucket shared by every thread: ``acquire()`` before each S3 request.

    ``rate`` requests per second on average, bursts up to ``burst`` (default: one second's worth,
    at least 1). ``rate`` 0 or None means no cap. ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(self, rate, burst=None, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate or 0)
        self.capacity = float(burst if burst is not None else max(1.0, self.rate))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._last = clock()
        self.requests = 0

    def acquire(self, n=1):
        if self.rate <= 0:
            with self._lock:
                self.requests += n
            return 0.0
        with self._lock:
            # Debt-based bucket: take the tokens now, then sleep off any deficit while holding the
            # lock. Waiters are serialised, which keeps the rate exact (a waiting thread could not
            # send anything anyway).
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            self.requests += n
            if self._tokens >= 0:
                return 0.0
            delay = -self._tokens / self.rate
            self._sleep(delay)
            return delay


class DestinationIndex(object):
    """Keys and sizes of the objects already in the bucket, in 16 bytes per object.

    Built from one paginated ListObjectsV2 of the destination prefix; looked up by binary search
    on a sorted array of 64-bit key hashes. (A dict of 400,000 str keys costs ~60 MB; this
    costs ~6 MB.)
    """

    def __init__(self, items=()):
        hashes = array("q")
        sizes = array("q")
        for key, size in items:
            hashes.append(key_hash(key))
            sizes.append(int(size))
        self._set(hashes, sizes)

    def _set(self, hashes, sizes):
        if len(hashes) > 1:
            order = sorted(range(len(hashes)), key=hashes.__getitem__)
            hashes = array("q", (hashes[i] for i in order))
            sizes = array("q", (sizes[i] for i in order))
            del order
        self._hashes = hashes
        self._sizes = sizes

    @classmethod
    def from_listing(cls, client, bucket, prefix, limiter=None, page_size=1000, parallel=8, max_depth=8):
        """List every object below ``prefix`` and index it.

        With ``parallel`` > 1 the key space is split first: the tree is walked with
        ``Delimiter='/'`` (one request per level while it has a single branch), and once a level has
        enough branches the subtrees -- or contiguous ranges of them (``StartAfter`` .. stop key) --
        are listed flat by ``parallel`` threads. Every key lands in the index at least once (a key
        seen twice is harmless); the number of requests stays close to one per 1000 objects.
        """
        index = cls()
        hashes = array("q")
        sizes = array("q")
        lock = threading.Lock()

        def request(**kwargs):
            if limiter is not None:
                limiter.acquire()
            return client.list_objects_v2(Bucket=bucket, MaxKeys=page_size, **kwargs)

        def add(contents, stop=None):
            """Add a page's objects; False once a key >= stop was met (end of a range)."""
            more = True
            with lock:
                for item in contents:
                    if stop is not None and item["Key"] >= stop:
                        more = False
                        break
                    hashes.append(key_hash(item["Key"]))
                    sizes.append(int(item["Size"]))
            return more

        def pages(**kwargs):
            while True:
                page = request(**kwargs)
                yield page
                token = page.get("NextContinuationToken")
                if not page.get("IsTruncated") or not token:
                    return
                kwargs.pop("StartAfter", None)
                kwargs["ContinuationToken"] = token

        def split(pfx):
            """Objects directly below ``pfx`` go in the index; its sub-prefixes are returned."""
            subs = []
            kwargs = {"Delimiter": "/"}
            if pfx:
                kwargs["Prefix"] = pfx
            for page in pages(**kwargs):
                add(page.get("Contents", ()))
                subs.extend(cp["Prefix"] for cp in page.get("CommonPrefixes", ()))
            return subs

        def list_range(task):
            pfx, start_after, stop = task
            kwargs = {}
            if pfx:
                kwargs["Prefix"] = pfx
            if start_after:
                kwargs["StartAfter"] = start_after
            for page in pages(**kwargs):
                if not add(page.get("Contents", ()), stop):
                    return

        def ranges(parent, subs, count):
            """``count`` contiguous ranges covering every key below ``parent`` (subs sorted)."""
            subs = sorted(subs)
            count = max(1, min(count, len(subs)))
            bounds = [subs[(i * len(subs)) // count] for i in range(1, count)]
            out = []
            start = None
            for bound in bounds + [None]:
                out.append((parent, start, bound))
                # the next range starts just before ``bound`` (its keys all begin with it)
                start = bound[:-1] if bound else None
            return out

        # One flat page first: a bucket (prefix) of up to one page is listed by this one request,
        # instead of a walk down the key tree one level per request (issue 15: fixed costs).
        first = request(**({"Prefix": prefix} if prefix else {}))
        if not first.get("IsTruncated"):
            add(first.get("Contents", ()))
        elif parallel <= 1:
            list_range((prefix, None, None))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=parallel) as pool:
                pending = [prefix]
                tasks = []
                depth = 0
                while pending:
                    if depth >= max_depth:
                        tasks.extend((p, None, None) for p in pending)
                        break
                    found = list(pool.map(split, pending))
                    next_pending = []
                    for parent, subs in zip(pending, found):
                        if len(subs) >= parallel:
                            tasks.extend(ranges(parent, subs, parallel * 2))
                        else:
                            next_pending.extend(subs)
                    if len(next_pending) >= parallel:
                        tasks.extend((p, None, None) for p in next_pending)
                        break
                    pending = next_pending
                    depth += 1
                list(pool.map(list_range, tasks))
        index._set(hashes, sizes)
        return index

    def __len__(self):
        return len(self._hashes)

    def size_of(self, key):
        """Size of ``key`` in the bucket, or None when it is not there."""
        h = key_hash(key)
        i = bisect.bisect_left(self._hashes, h)
        if i < len(self._hashes) and self._hashes[i] == h:
            return self._sizes[i]
        return None


class SourceMissing(Exception):
    """The source object does not exist (a missing file): counted, not a failure."""


class UnsafeSource(Exception):
    """The source is a symbolic link, or reached through one: reported, never uploaded."""


_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class FilesystemSource(object):
    """Files below Mastodon's ``public/system`` (PAPERCLIP_ROOT_PATH). Only ever read.

    The app user owns that tree, so a file is never opened through a symbolic link: the final
    component is opened with ``O_NOFOLLOW`` and the directories above it are checked to be no
    links either (the path the kernel opened must be the expected one below the real root, else
    a walk with ``O_NOFOLLOW`` from the root decides). A link raises ``UnsafeSource``. The root
    itself (an admin's choice) may be reached through links.
    """

    kind = "filesystem"

    def __init__(self, system_root):
        self.system_root = os.path.abspath(system_root)
        self.real_root = os.path.realpath(self.system_root)

    def path(self, key):
        path = os.path.normpath(os.path.join(self.system_root, key.lstrip("/")))
        if path != self.system_root and not path.startswith(self.system_root + os.sep):
            raise ValueError("key %r leaves system_root" % key)
        return path

    def _parts(self, key):
        parts = key.strip("/").split("/")
        if not key.strip("/") or any(part in ("", ".", "..") or "\x00" in part for part in parts):
            raise UnsafeSource("key %r is not a plain relative path" % key)
        return parts

    def _walk_open(self, parts):
        """Open ``parts`` below the real root component by component, never following a link."""
        dir_fd = os.open(self.real_root, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
        try:
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                flags = os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC | (_O_NONBLOCK if last else _O_DIRECTORY)
                try:
                    fd = os.open(part, flags, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                        try:
                            is_link = stat.S_ISLNK(os.lstat(part, dir_fd=dir_fd).st_mode)
                        except OSError:
                            is_link = False
                        if is_link:
                            raise UnsafeSource("%s is a symbolic link" % "/".join(parts[:index + 1])) from None
                    raise
                os.close(dir_fd)
                dir_fd = fd
            fd, dir_fd = dir_fd, None
            return fd
        finally:
            if dir_fd is not None:
                os.close(dir_fd)

    def open_fd(self, key):
        """A read-only descriptor of the source file; ``UnsafeSource`` for links, ``OSError`` else."""
        parts = self._parts(key)
        expected = os.path.join(self.real_root, *parts)
        try:
            fd = os.open(expected, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            fd = None
        if fd is not None:
            try:
                opened = os.readlink("/proc/self/fd/%d" % fd)
            except OSError:
                opened = None
            if opened == expected:
                return fd
            os.close(fd)
        # A link somewhere, or no /proc: the walk tells which component (or opens it safely).
        return self._walk_open(parts)

    def prepare(self, limiter=None):
        if not os.path.isdir(self.system_root):
            raise SourceMissing("system_root %s is not a directory" % self.system_root)

    def size(self, key):
        """The size of a regular source file; None when it does not exist; ``UnsafeSource`` for links;
        any other error (EACCES, EIO...) raises."""
        try:
            fd = self.open_fd(key)
        except ValueError:
            return None
        except OSError as exc:
            if exc.errno in NOT_FOUND_ERRNOS:
                return None
            raise
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return st.st_size

    def open(self, key):
        fd = self.open_fd(key)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafeSource("%s is not a regular file" % key)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read_range(self, key, offset, length, limiter=None):
        with self.open(key) as fh:
            fh.seek(offset)
            return fh.read(length)


class S3Source(object):
    """Objects in another bucket (moving between providers, as in the seeds' S3-to-S3 tool).

    The source bucket is listed ONCE into a DestinationIndex-style index (sizes), so a missing
    source object costs no request. When source and destination share the endpoint and keys,
    objects are copied server side (CopyObject); otherwise streamed through this host.
    """

    kind = "s3"

    def __init__(self, client, bucket, key_prefix="", same_account=False):
        self.client = client
        use_fast_timestamps(client)
        self.bucket = bucket
        self.key_prefix = key_prefix or ""
        self.same_account = bool(same_account)
        self.index = None

    def source_key(self, key):
        return join_key(self.key_prefix, key)

    def prepare(self, limiter=None):
        self.index = DestinationIndex.from_listing(self.client, self.bucket, listing_prefix(self.key_prefix), limiter)

    def size(self, key):
        if self.index is None:
            self.prepare()
        return self.index.size_of(self.source_key(key))

    def get_bytes(self, key):
        return self.client.get_object(Bucket=self.bucket, Key=self.source_key(key))["Body"].read()

    def read_range(self, key, offset, length, limiter=None):
        rng = "bytes=%d-%d" % (offset, offset + length - 1)
        return self.client.get_object(Bucket=self.bucket, Key=self.source_key(key), Range=rng)["Body"].read()


def same_account(source_endpoint, source_access_key, endpoint, access_key):
    """True when a server-side CopyObject can reach the source (same endpoint, same keys)."""
    try:
        same_endpoint = resolve_endpoint(source_endpoint) == resolve_endpoint(endpoint)
    except ValueError:
        return False
    return same_endpoint and (not source_access_key or source_access_key == access_key)


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
        """Count one processed object: outcome is copied/skipped/missing_source/failed."""
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
    """Write ``data`` as JSON to ``path`` via module_utils/atomic.py (readers never see half;
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


class CopyEngine(object):
    """Copy (or verify, or count in check mode) the objects of a stream of RowObjects."""

    def __init__(self, client, bucket, source, key_prefix="", acl=DEFAULT_ACL, cache_control=DEFAULT_CACHE_CONTROL,
                 concurrency=DEFAULT_CONCURRENCY, max_requests_per_second=0, multipart_threshold=DEFAULT_MULTIPART_THRESHOLD,
                 part_size=DEFAULT_PART_SIZE, skip_existing=True, mode="copy", check_mode=False, progress_file=None,
                 retries=4, backoff=0.5, sample_size=SAMPLE_SIZE, limiter=None, sleep=time.sleep, index=None,
                 progress_interval=PROGRESS_INTERVAL):
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
        self._sleep = sleep
        # At most a few part buffers in memory at once, whatever the concurrency.
        self._part_slots = threading.BoundedSemaphore(max(1, min(4, self.concurrency)))

    # --- per-object helpers -----------------------------------------------------------------
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

    def _request(self, method, **kwargs):
        self.limiter.acquire()
        return getattr(self.client, method)(**kwargs)

    def transfer(self, obj, size):
        """Send one object to the bucket (single PUT, multipart, or server-side copy)."""
        dest_key = self.dest_key(obj.key)
        extra = self.extra_args(obj)
        source = self.source
        if isinstance(source, S3Source) and source.same_account:
            self._request("copy_object", Bucket=self.bucket, Key=dest_key, MetadataDirective="REPLACE",
                          CopySource={"Bucket": source.bucket, "Key": source.source_key(obj.key)}, **extra)
            return
        if size > self.multipart_threshold:
            self._multipart(obj.key, dest_key, size, extra)
            return
        if isinstance(source, FilesystemSource):
            with source.open(obj.key) as body:
                self._request("put_object", Bucket=self.bucket, Key=dest_key, Body=body, **extra)
        else:
            self.limiter.acquire()  # the GET on the source
            body = source.get_bytes(obj.key)
            self._request("put_object", Bucket=self.bucket, Key=dest_key, Body=body, **extra)

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
                    if isinstance(self.source, S3Source):
                        self.limiter.acquire()
                    data = self.source.read_range(key, offset, length)
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
        outcome -- missing_source, skipped, verify findings, check-mode count -- is already recorded).
        Runs in the producer thread: a stat and an index lookup are cheaper than a hand-off to a
        worker, which keeps a no-op re-run fast.
        """
        key = obj.key
        try:
            size = self.source.size(key)
        except UnsafeSource as exc:
            self.stats.record_unsafe(kind, key, str(exc))
            return None
        except Exception as exc:  # noqa: BLE001
            self.stats.record(kind, "failed", key, reason="cannot read source: %s" % exc)
            return None
        if size is None:
            # An object whose source is gone cannot be copied: in verify mode too it is reported
            # as missing_source only, so that missing_in_bucket lists what a copy would still send.
            self.stats.record(kind, "missing_source", key)
            return None
        dest_key = self.dest_key(key)
        if self.mode == "verify":
            present = self.index.size_of(dest_key) if self.index is not None else None
            if present is None:
                self.stats.record_verify(kind, "missing_in_bucket", dest_key)
            elif present != size:
                self.stats.record_verify(kind, "different_size", dest_key, size, present)
            self.stats.record(kind, "skipped", key)
            return None
        if self.skip_existing and self.index is not None and self.index.size_of(dest_key) == size:
            if obj.acl == PRIVATE_ACL:
                return CHECK_PRIVATE  # skipped once a worker has checked its ACL (ensure_private)
            self.stats.record(kind, "skipped", key)
            return None
        if self.check_mode:
            self.stats.record(kind, "copied", key, size)
            return None
        return size

    def ensure_private(self, kind, obj):
        """An object that must be private (backup, suspended account's media) is already in the bucket:
        if its ACL lets anyone read it (copied before the suspension; Mastodon only chmods local files),
        PutObjectAcl ``private`` (check mode: only reported). Counted ``skipped`` (and ``privatised``),
        or ``failed`` when its ACL cannot be read or set."""
        dest_key = self.dest_key(obj.key)
        attempt = 0
        while True:
            try:
                grants = self._request("get_object_acl", Bucket=self.bucket, Key=dest_key).get("Grants")
                public = acl_is_public(grants)
                if public and not self.check_mode:
                    self._request("put_object_acl", Bucket=self.bucket, Key=dest_key, ACL=PRIVATE_ACL)
            except Exception as exc:  # noqa: BLE001
                attempt += 1
                if attempt <= self.retries and is_retryable(exc):
                    self._sleep(min(self.backoff * (2 ** (attempt - 1)), 20.0))
                    continue
                reason = describe_error(exc, bucket=self.bucket) if hasattr(exc, "response") else "%s: %s" % (
                    type(exc).__name__, exc)
                self.stats.record(kind, "failed", obj.key, reason="cannot make the object private: %s" % reason)
                return
            break
        if public:
            self.stats.record_privatised(kind, dest_key)
        self.stats.record(kind, "skipped", obj.key)

    def copy_one(self, kind, obj, size):
        """Transfer one object with object-level retries; never raises (one failure never aborts the run)."""
        if size is CHECK_PRIVATE:
            self.ensure_private(kind, obj)
            return
        attempt = 0
        while True:
            try:
                self.transfer(obj, size)
            except UnsafeSource as exc:  # swapped for a link after triage
                self.stats.record_unsafe(kind, obj.key, str(exc))
                return
            except Exception as exc:  # noqa: BLE001
                attempt += 1
                if attempt <= self.retries and is_retryable(exc):
                    self._sleep(min(self.backoff * (2 ** (attempt - 1)), 20.0))
                    continue
                reason = describe_error(exc, bucket=self.bucket) if hasattr(exc, "response") else "%s: %s" % (
                    type(exc).__name__, exc)
                self.stats.record(kind, "failed", obj.key, reason=reason)
                return
            self.stats.record(kind, "copied", obj.key, size)
            return

    def process(self, kind, obj):
        """triage() then copy_one() in the calling thread."""
        size = self.triage(kind, obj)
        if size is not None:
            self.copy_one(kind, obj, size)

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
        self.index = DestinationIndex.from_listing(self.client, self.bucket, listing_prefix(self.key_prefix), self.limiter)
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
            if isinstance(self.source, S3Source) and self.source.index is None:
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
                objects = list(row.objects)
                rejected = getattr(row, "rejected", None) or ()
                stats.add_row(row.kind, len(objects) + len(rejected))
                for kind, key, reason in rejected:
                    stats.record_unsafe(kind, key, reason)  # a crafted file name (mastodon_layout)
                for obj in objects:
                    kind = getattr(obj, "kind", None) or row.kind
                    size = self.triage(kind, obj)
                    if size is not None:
                        work.put((kind, obj, size))
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
