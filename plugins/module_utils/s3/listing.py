# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Object keys, bucket listings and the compact key index.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_engine.py and against Ceph
RGW in tests/integration/test_media_copy_rgw.py and test_listing_fixed_costs.py.

- ``join_key``/``listing_prefix``: Mastodon's ``S3_KEY_PREFIX`` joined to a key, and the
  ListObjectsV2 prefix that covers a key prefix.
- ``use_fast_timestamps``: a botocore client parses ListObjectsV2 results with ElementTree and
  S3's timestamps with ``datetime.fromisoformat`` (same results, a fraction of the CPU).
- ``BucketIndex``: the keys and sizes below a prefix of ANY bucket (the copy's destination, an
  S3 source, the cache retirement's bucket) in 16 bytes per object, built from one listing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import bisect
import datetime
import threading
from array import array
from xml.etree import ElementTree

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import acquire


def _botocore_parse_timestamp(value):
    """botocore's own parser, imported on first use only (botocore.utils costs ~0.1 s to import)."""
    from botocore.utils import parse_timestamp

    return parse_timestamp(value)


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
    if factory is None or not hasattr(factory, "create_parser"):
        return
    if hasattr(factory, "set_parser_defaults"):
        factory.set_parser_defaults(timestamp_parser=fast_timestamp)
    if not isinstance(factory, _FastParserFactory):
        endpoint._response_parser_factory = _FastParserFactory(factory)


class BucketIndex(object):
    """Keys and sizes of the objects below a prefix of a bucket, in 16 bytes per object.

    Built from one paginated ListObjectsV2 (``from_listing``); looked up by binary search on a
    sorted array of 64-bit key hashes. (A dict of 400,000 str keys costs ~60 MB; this costs ~6 MB.)
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
        """List every object below ``prefix`` (see ``Listing``) and index it."""
        listing = Listing(client, bucket, limiter, page_size)
        listing.run(prefix, parallel, max_depth)
        index = cls()
        index._set(listing.hashes, listing.sizes)
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


class Listing(object):
    """One listing of the keys below a prefix, collected as key hashes and sizes.

    A prefix of up to one page is listed by one request. Beyond that, with ``parallel`` > 1 the
    key space is split first: the tree is walked with ``Delimiter='/'`` (one request per level
    while it has a single branch), and once a level has enough branches the subtrees -- or
    contiguous ranges of them (``StartAfter`` .. stop key) -- are listed flat by ``parallel``
    threads. Every key lands in the index at least once (a key seen twice is harmless); the
    number of requests stays close to one per 1000 objects. Each request takes a rate token.
    """

    def __init__(self, client, bucket, limiter=None, page_size=1000):
        self.client = client
        self.bucket = bucket
        self.limiter = limiter
        self.page_size = page_size
        self.hashes = array("q")
        self.sizes = array("q")
        self._lock = threading.Lock()

    def request(self, **kwargs):
        acquire(self.limiter)
        return self.client.list_objects_v2(Bucket=self.bucket, MaxKeys=self.page_size, **kwargs)

    def add(self, contents, stop=None):
        """Add a page's objects; False once a key >= stop was met (end of a range)."""
        with self._lock:
            for item in contents:
                if stop is not None and item["Key"] >= stop:
                    return False
                self.hashes.append(key_hash(item["Key"]))
                self.sizes.append(int(item["Size"]))
        return True

    def pages(self, **kwargs):
        while True:
            page = self.request(**kwargs)
            yield page
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return
            kwargs.pop("StartAfter", None)
            kwargs["ContinuationToken"] = token

    def split(self, prefix):
        """Objects directly below ``prefix`` go in the index; its sub-prefixes are returned."""
        contents, subs = self.level(prefix)
        self.add(contents)
        return subs

    def level(self, prefix):
        """``(objects directly below prefix, its sub-prefixes)``: one Delimiter listing, nothing indexed."""
        contents, subs = [], []
        kwargs = {"Delimiter": "/"}
        if prefix:
            kwargs["Prefix"] = prefix
        for page in self.pages(**kwargs):
            contents.extend(page.get("Contents", ()))
            subs.extend(cp["Prefix"] for cp in page.get("CommonPrefixes", ()))
        return contents, subs

    def list_range(self, task):
        """Every key of ``(prefix, start_after, stop)``: below prefix, after start_after, before stop."""
        prefix, start_after, stop = task
        kwargs = {}
        if prefix:
            kwargs["Prefix"] = prefix
        if start_after:
            kwargs["StartAfter"] = start_after
        for page in self.pages(**kwargs):
            if not self.add(page.get("Contents", ()), stop):
                return

    def run(self, prefix, parallel=8, max_depth=8):
        # One flat page first: a bucket (prefix) of up to one page is listed by this one request,
        # instead of a walk down the key tree one level per request (issue 15: fixed costs).
        first = self.request(**({"Prefix": prefix} if prefix else {}))
        if not first.get("IsTruncated"):
            self.add(first.get("Contents", ()))
        elif parallel <= 1:
            self.list_range((prefix, None, None))
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=parallel) as pool:
                # The walk below goes down one level per round trip while the tree has a single branch
                # (cache/ -> media_attachments/ -> files/ -> 000/ ...). The levels the first key passes
                # through are asked for all at once instead; the walk uses those answers where it goes.
                chain = first_key_levels(prefix, (first.get("Contents") or [{}])[0].get("Key"), max_depth)
                known = dict(zip(chain, pool.map(self.level, chain)))
                tasks = self.plan(pool, prefix, parallel, max_depth, known)
                list(pool.map(self.list_range, tasks))

    def plan(self, pool, prefix, parallel, max_depth, known=None):
        """Walk down from ``prefix`` until the key space splits into enough ranges to list in parallel.
        ``known``: ``{prefix: (contents, subs)}`` already listed (``level``); used instead of asking again."""
        known = dict(known or {})

        def split(sub):
            if sub in known:
                contents, subs = known.pop(sub)
                self.add(contents)
                return subs
            return self.split(sub)

        pending = [prefix]
        tasks = []
        for _depth in range(max_depth):
            found = list(pool.map(split, pending))
            next_pending = []
            for parent, subs in zip(pending, found):
                if len(subs) >= parallel:
                    tasks.extend(key_ranges(parent, subs, parallel * 2))
                else:
                    next_pending.extend(subs)
            if len(next_pending) >= parallel:
                return tasks + [(p, None, None) for p in next_pending]
            pending = next_pending
            if not pending:
                return tasks
        return tasks + [(p, None, None) for p in pending]


def first_key_levels(prefix, key, max_depth):
    """The prefixes a walk from ``prefix`` passes through on its way to ``key``: ``prefix``, then each
    directory of ``key`` below it (at most ``max_depth``). ``[prefix]`` when there is no key."""
    levels = [prefix]
    if not key or not key.startswith(prefix):
        return levels
    parts = key[len(prefix):].split("/")[:-1]
    for part in parts[:max(0, max_depth - 1)]:
        levels.append(levels[-1] + part + "/")
    return levels


def key_ranges(parent, subs, count):
    """``count`` contiguous ``(prefix, start_after, stop)`` ranges covering every key below ``parent``."""
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
