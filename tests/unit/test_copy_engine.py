"""Unit tests of plugins/module_utils/copy/engine.py and its rooms (s3_listing, copy_sources, copy_progress):
the parts that need no S3 server (the rate limiter: test_rate_limit.py).

(S3 behaviour is tested against a real Ceph RGW in tests/integration/test_media_copy_rgw.py.)
"""

from __future__ import annotations

import json
import os
import sys
from collections import namedtuple
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_COLLECTIONS = str(REPO / ".cache" / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import engine as ce  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import progress  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import sources  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import public_grants  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import listing  # noqa: E402
from tests.fake_clock import FakeClock  # noqa: E402

# The shapes of plugins/module_utils/mastodon/layout.py, redeclared so these tests stand alone.
MediaObject = namedtuple("MediaObject", "kind key content_type acl row_id")
RowObjects = namedtuple("RowObjects", "kind row_id objects")


# --- keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix,key,expected", [
    (None, "cache/accounts/avatars/000/000/001/original/a.png", "cache/accounts/avatars/000/000/001/original/a.png"),
    ("", "media_attachments/files/1/a.png", "media_attachments/files/1/a.png"),
    ("mastodon", "media_attachments/files/1/a.png", "mastodon/media_attachments/files/1/a.png"),
    ("/mastodon/", "/cache/x.png", "mastodon/cache/x.png"),
    ("a/b", "x", "a/b/x"),
])
def test_join_key(prefix, key, expected):
    assert listing.join_key(prefix, key) == expected


def test_listing_prefix():
    assert listing.listing_prefix(None) == ""
    assert listing.listing_prefix("") == ""
    assert listing.listing_prefix("/mastodon/") == "mastodon/"


def test_engine_dest_key_uses_key_prefix():
    engine = ce.CopyEngine(None, "b", sources.FilesystemSource("/nonexistent"), key_prefix="pfx")
    assert engine.dest_key("cache/a.png") == "pfx/cache/a.png"
    assert ce.CopyEngine(None, "b", None).dest_key("cache/a.png") == "cache/a.png"


# --- PUT headers -------------------------------------------------------------------------------

def test_extra_args_defaults_match_mastodon():
    engine = ce.CopyEngine(None, "b", None)
    obj = MediaObject("media_attachments.file", "k", "image/png", None, 1)
    assert engine.extra_args(obj) == {
        "ContentType": "image/png",
        "CacheControl": "public, max-age=315576000, immutable",
        "ACL": "public-read",
    }


def test_extra_args_private_object_wins_over_module_acl():
    engine = ce.CopyEngine(None, "b", None, acl="public-read")
    obj = MediaObject("backups.dump", "backups/dumps/1/original/x.zip", "application/zip", "private", 1)
    assert engine.extra_args(obj)["ACL"] == "private"


def test_extra_args_empty_acl_sends_none_and_custom_cache_control():
    engine = ce.CopyEngine(None, "b", None, acl="", cache_control="max-age=60")
    obj = MediaObject("k", "k", None, None, 1)
    assert engine.extra_args(obj) == {"CacheControl": "max-age=60"}


# --- destination index ------------------------------------------------------------------------

def test_destination_index_lookup():
    items = [("cache/a/%06d.png" % i, i * 3) for i in range(5000)]
    index = listing.BucketIndex(items)
    assert len(index) == 5000
    for key, size in items[::97]:
        assert index.size_of(key) == size
    assert index.size_of("cache/a/nope.png") is None
    assert listing.BucketIndex().size_of("x") is None


def test_destination_index_is_compact():
    import tracemalloc

    tracemalloc.start()
    index = listing.BucketIndex(("cache/media_attachments/files/%018d/original/%d.jpg" % (i, i), 1000 + i)
                                for i in range(100000))
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(index) == 100000
    # 16 bytes per entry kept; a dict of str keys would hold > 10 MB here
    assert current < 3 * 1024 * 1024
    assert peak < 12 * 1024 * 1024


# --- retry classification ---------------------------------------------------------------------

class _Err(Exception):
    def __init__(self, code, status):
        super().__init__(code)
        self.response = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}


def test_is_retryable():
    assert ce.is_retryable(_Err("SlowDown", 503))
    assert ce.is_retryable(_Err("InternalError", 500))
    assert ce.is_retryable(_Err("Whatever", 502))
    assert ce.is_retryable(ConnectionResetError())
    assert not ce.is_retryable(_Err("AccessDenied", 403))
    assert not ce.is_retryable(_Err("NoSuchBucket", 404))
    assert not ce.is_retryable(ValueError("x"))
    from botocore.exceptions import EndpointConnectionError

    assert ce.is_retryable(EndpointConnectionError(endpoint_url="https://x"))


def test_part_size_keeps_part_count_under_limit():
    assert ce.part_size_for(12 * 1024 * 1024) == 8 * 1024 * 1024
    assert ce.part_size_for(12 * 1024 * 1024, 1024) == 5 * 1024 * 1024
    big = 200 * 1024 ** 3
    assert (big + ce.part_size_for(big) - 1) // ce.part_size_for(big) <= 10000


# --- accounting (check mode and verify mode need no server) ------------------------------------

@pytest.fixture
def system_root(tmp_path):
    root = tmp_path / "system"
    files = {
        "cache/media_attachments/files/000/000/001/original/a.png": 100,
        "cache/media_attachments/files/000/000/001/small/a.png": 10,
        "cache/accounts/avatars/000/000/002/original/b.jpg": 200,
        "media_attachments/files/000/000/003/original/c.mp4": 300,
    }
    for key, size in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    return root


def _rows():
    return [
        RowObjects("media_attachments", 1, [
            MediaObject("media_attachments", "cache/media_attachments/files/000/000/001/original/a.png", "image/png", None, 1),
            MediaObject("media_attachments", "cache/media_attachments/files/000/000/001/small/a.png", "image/png", None, 1),
        ]),
        RowObjects("accounts", 2, [
            MediaObject("accounts", "cache/accounts/avatars/000/000/002/original/b.jpg", "image/jpeg", None, 2),
            MediaObject("accounts", "cache/accounts/headers/000/000/002/original/gone.jpg", "image/jpeg", None, 2),
        ]),
        RowObjects("media_attachments", 3, [
            MediaObject("media_attachments", "media_attachments/files/000/000/003/original/c.mp4", "video/mp4", None, 3),
        ]),
    ]


def test_check_mode_accounting_with_skip_existing(system_root):
    # one object already there with the same size (skipped), one with another size (copied again)
    index = listing.BucketIndex([
        ("pfx/cache/media_attachments/files/000/000/001/original/a.png", 100),
        ("pfx/cache/media_attachments/files/000/000/001/small/a.png", 11),
    ])
    engine = ce.CopyEngine(None, "bucket", sources.FilesystemSource(str(system_root)), key_prefix="pfx",
                           check_mode=True, index=index, concurrency=3)
    result = engine.run(_rows(), rows_total=3)
    assert result["kinds"] == {
        "accounts": {"rows": 1, "objects": 2, "copied": 1, "skipped": 0, "retired": 0, "missing_source": 1, "failed": 0},
        "media_attachments": {"rows": 2, "objects": 3, "copied": 2, "skipped": 1, "retired": 0, "missing_source": 0,
                              "failed": 0},
    }
    assert result["totals"] == {"rows": 3, "objects": 5, "copied": 3, "skipped": 1, "retired": 0, "missing_source": 1,
                                "failed": 0}
    assert result["bytes"] == 10 + 200 + 300
    assert result["missing_source_sample"] == [{
        "kind": "accounts", "key": "cache/accounts/headers/000/000/002/original/gone.jpg",
        "reason": "source file not found"}]
    assert result["changed"] is True
    assert engine.limiter.requests == 0  # nothing sent


def test_verify_mode_reports_missing_and_different(system_root):
    index = listing.BucketIndex([
        ("cache/media_attachments/files/000/000/001/original/a.png", 100),
        ("cache/media_attachments/files/000/000/001/small/a.png", 9),
        ("media_attachments/files/000/000/003/original/c.mp4", 300),
    ])
    engine = ce.CopyEngine(None, "bucket", sources.FilesystemSource(str(system_root)), mode="verify", index=index)
    result = engine.run(_rows())
    # the object whose source is gone is missing_source, not missing_in_bucket
    assert result["missing_in_bucket"] == 1
    assert [x["key"] for x in result["missing_in_bucket_sample"]] == ["cache/accounts/avatars/000/000/002/original/b.jpg"]
    assert result["totals"]["missing_source"] == 1
    assert result["different_size"] == 1
    assert result["different_size_sample"][0]["key"] == "cache/media_attachments/files/000/000/001/small/a.png"
    assert result["verified"] is False
    assert result["changed"] is False
    assert result["totals"]["copied"] == 0


def _retire(system_root):
    """What the migration's retirement does (mastodon/cache_retirement.py): public/system/cache -> cache.old."""
    os.rename(system_root / "cache", system_root / "cache.old")


def test_a_rerun_after_retirement_counts_cache_old_files_as_retired_not_missing(system_root):
    """Issue 24: a re-run after the cache was retired to cache.old said "N missing on disk" for files
    that sit in cache.old (and in the bucket). They are counted ``retired``; one not in the bucket is
    copied from cache.old; only a file in neither place is missing."""
    _retire(system_root)
    index = listing.BucketIndex([
        ("cache/media_attachments/files/000/000/001/original/a.png", 100),
        ("cache/media_attachments/files/000/000/001/small/a.png", 10),
        ("media_attachments/files/000/000/003/original/c.mp4", 300),
    ])
    source = sources.FilesystemSource(str(system_root), retired_prefixes=sources.RETIRED_CACHE)
    engine = ce.CopyEngine(None, "bucket", source, check_mode=True, index=index)
    result = engine.run(_rows(), rows_total=3)
    assert result["totals"] == {"rows": 3, "objects": 5, "copied": 1, "skipped": 1, "retired": 2, "missing_source": 1,
                                "failed": 0}
    assert result["kinds"]["media_attachments"]["retired"] == 2
    assert result["bytes"] == 200  # b.jpg, not in the bucket: copied from cache.old
    assert [m["key"] for m in result["missing_source_sample"]] == ["cache/accounts/headers/000/000/002/original/gone.jpg"]

    # verify: the files of cache.old are checked against the bucket like any other
    verify = ce.CopyEngine(None, "bucket", source, mode="verify", index=index).run(_rows())
    assert verify["totals"]["retired"] == 3 and verify["totals"]["missing_source"] == 1
    assert [m["key"] for m in verify["missing_in_bucket_sample"]] == ["cache/accounts/avatars/000/000/002/original/b.jpg"]
    assert verify["verified"] is False

    # a private object of cache.old already in the bucket: its ACL is checked, then it counts retired
    private = MediaObject("media_attachments", "cache/media_attachments/files/000/000/001/original/a.png", "image/png",
                          "private", 1)
    assert ce.CopyEngine(None, "bucket", source, index=index).triage("m", private) is ce.CHECK_PRIVATE_RETIRED


def test_a_retired_file_is_read_from_cache_old_and_never_through_a_link(system_root):
    _retire(system_root)
    old = system_root / "cache.old" / "media_attachments" / "files" / "000" / "000" / "001" / "original"
    source = sources.FilesystemSource(str(system_root), retired_prefixes=sources.RETIRED_CACHE)
    key = "cache/media_attachments/files/000/000/001/original/a.png"
    assert source.locate(key) == (100, True)
    with source.open(key) as fh:
        assert fh.read() == b"x" * 100
    assert source.locate("cache/accounts/headers/000/000/002/original/gone.jpg") == (None, False)
    assert source.locate("media_attachments/files/000/000/003/original/c.mp4") == (300, False)
    # only cache/ has a retired place
    assert source.locate("cache.old/media_attachments/files/000/000/001/original/a.png")[1] is False
    os.symlink(str(system_root / "media_attachments" / "files" / "000" / "000" / "003" / "original" / "c.mp4"),
               old / "link.png")
    with pytest.raises(sources.UnsafeSource):
        source.locate("cache/media_attachments/files/000/000/001/original/link.png")
    # a file back at its own place wins over cache.old
    (system_root / "cache" / "media_attachments" / "files" / "000" / "000" / "001" / "original").mkdir(parents=True)
    (system_root / "cache" / "media_attachments" / "files" / "000" / "000" / "001" / "original" / "a.png").write_bytes(b"y")
    assert source.locate(key) == (1, False)
    # without retired places (a copy back, another source): a retired file is not found
    assert sources.FilesystemSource(str(system_root)).locate(
        "cache/media_attachments/files/000/000/001/small/a.png") == (None, False)


def test_the_media_copy_module_reads_retired_files_from_cache_old(system_root):
    from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import steps as media_copy

    _retire(system_root)
    source = media_copy.handle_source({"source": "filesystem", "system_root": str(system_root)}, None)
    assert source.locate("cache/media_attachments/files/000/000/001/small/a.png") == (10, True)


def test_samples_are_capped():
    stats = progress.Stats(sample_size=3)
    for i in range(10):
        stats.record("k", "failed", "key%d" % i, reason="boom")
        stats.record("k", "missing_source", "m%d" % i)
    assert len(stats.failed_sample) == 3 and len(stats.missing_sample) == 3
    assert stats.totals()["failed"] == 10 and stats.totals()["missing_source"] == 10


def test_filesystem_source_refuses_escaping_keys(tmp_path):
    (tmp_path / "secret").write_text("x")
    (tmp_path / "system" / "d").mkdir(parents=True)
    source = sources.FilesystemSource(str(tmp_path / "system"))
    with pytest.raises(sources.UnsafeSource):  # reported as unsafe, never read
        source.size("../secret")
    assert source.size("d") is None  # a directory is not an object


# --- progress file ------------------------------------------------------------------------------

def test_progress_contents_and_eta():
    clock = FakeClock()
    stats = progress.Stats(clock=clock)
    stats.rows_total = 100
    stats.phase = "copying"
    for _ in range(10):
        stats.add_row("media_attachments", 2)
    for i in range(15):
        stats.record("media_attachments", "copied", "k%d" % i, size=1000)
    for i in range(5):
        stats.record("media_attachments", "skipped", "s%d" % i)
    clock.now += 10.0
    p = stats.progress()
    assert p["done"] == 20
    assert p["total"] == 200  # 20 objects for 10 rows, 100 rows expected
    assert p["copied"] == 15 and p["skipped"] == 5 and p["failed"] == 0 and p["missing_source"] == 0
    assert p["bytes"] == 15000
    assert p["rate"] == {"objects_per_second": 2.0, "bytes_per_second": 1500.0}
    assert p["eta_seconds"] == 90.0
    assert p["phase"] == "copying" and p["finished"] is False
    done = stats.progress(finished=True)
    assert done["finished"] is True and done["eta_seconds"] == 0.0


def test_progress_file_written_atomically_and_final(tmp_path, system_root):
    path = tmp_path / "progress.json"
    engine = ce.CopyEngine(None, "bucket", sources.FilesystemSource(str(system_root)), mode="verify",
                           index=listing.BucketIndex(), progress_file=str(path))
    engine.run(_rows(), rows_total=3)
    data = json.loads(path.read_text())
    assert data["finished"] is True
    assert data["phase"] == "done"
    assert data["done"] == 5 and data["total"] == 5
    assert data["skipped"] == 4 and data["missing_source"] == 1
    assert set(data) >= {"done", "total", "copied", "skipped", "failed", "missing_source", "bytes", "rate",
                         "eta_seconds", "phase", "finished"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_progress_writer_rewrites_periodically(tmp_path):
    path = tmp_path / "p.json"
    stats = progress.Stats()
    writer = progress.ProgressWriter(str(path), stats, interval=0.05)
    writer.start()
    seen = set()
    import time

    for i in range(20):
        stats.record("k", "copied", "k%d" % i, size=1)
        time.sleep(0.03)
        seen.add(json.loads(path.read_text())["done"])
    writer.stop()
    assert len(seen) >= 3  # rewritten while running
    assert json.loads(path.read_text())["done"] == 20


def test_write_json_atomic_replaces(tmp_path):
    path = tmp_path / "x.json"
    progress.write_json_atomic(str(path), {"a": 1})
    progress.write_json_atomic(str(path), {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert os.listdir(tmp_path) == ["x.json"]


def test_same_account():
    assert sources.same_account("https://127.0.0.1:1/", "AK", "https://127.0.0.1:1", "AK")
    assert sources.same_account("ewr1", None, "https://ewr1.vultrobjects.com", "AK")
    assert not sources.same_account("ewr1", "AK", "sjc1", "AK")
    assert not sources.same_account("ewr1", "AK2", "ewr1", "AK")


# --- ListObjectsV2 fast parser ----------------------------------------------------------------

LIST_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>cache/</Prefix><MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType>
  <IsTruncated>true</IsTruncated><KeyCount>2</KeyCount><NextContinuationToken>tok%2B1</NextContinuationToken>
  <Contents><Key>cache/a%20b.png</Key><LastModified>2026-11-22T15:17:36.123Z</LastModified>
    <ETag>&quot;abc&quot;</ETag><Size>123</Size><StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>cache/c.png</Key><LastModified>2026-11-22T15:17:37.000Z</LastModified>
    <ETag>&quot;def-2&quot;</ETag><Size>12586913</Size><StorageClass>STANDARD</StorageClass></Contents>
  <CommonPrefixes><Prefix>cache/x/</Prefix></CommonPrefixes>
</ListBucketResult>"""


def test_parse_list_objects_v2_matches_botocore():
    import datetime

    import botocore.session
    from botocore.parsers import RestXMLParser

    fast = listing.parse_list_objects_v2(LIST_XML)
    model = botocore.session.get_session().get_service_model("s3")
    shape = model.operation_model("ListObjectsV2").output_shape
    slow = RestXMLParser()._do_parse({"body": LIST_XML, "headers": {}, "status_code": 200}, shape)
    for key in ("Name", "Prefix", "EncodingType", "IsTruncated", "KeyCount", "MaxKeys", "NextContinuationToken",
                "CommonPrefixes"):
        assert fast[key] == slow[key], key
    assert [(c["Key"], c["Size"], c["ETag"], c["LastModified"]) for c in fast["Contents"]] == [
        (c["Key"], c["Size"], c["ETag"], c["LastModified"]) for c in slow["Contents"]]
    assert fast["Contents"][0]["LastModified"] == datetime.datetime(2026, 11, 22, 15, 17, 36, 123000,
                                                                    tzinfo=datetime.timezone.utc)


def test_fast_timestamp_falls_back_to_botocore():
    import datetime

    assert listing.fast_timestamp("2026-11-22T15:17:36Z").tzinfo is not None
    rfc = listing.fast_timestamp("Sun, 22 Nov 2026 15:17:36 GMT")
    assert rfc.replace(tzinfo=None) == datetime.datetime(2026, 11, 22, 15, 17, 36)


# --- hostile sources: links in public/system, crafted names --------------------------------------

def test_filesystem_source_never_follows_links(tmp_path, system_root):
    secret = tmp_path / "root-only.key"
    secret.write_bytes(b"PRIVATE")
    os.chmod(secret, 0o400)
    source = sources.FilesystemSource(str(system_root))
    good = "cache/accounts/avatars/000/000/002/original/b.jpg"
    assert source.size(good) == 200
    # a link at a file's path
    linked = system_root / "accounts/avatars/000/000/009/original/x.png"
    linked.parent.mkdir(parents=True)
    os.symlink(str(secret), str(linked))
    with pytest.raises(sources.UnsafeSource, match="symbolic link"):
        source.size("accounts/avatars/000/000/009/original/x.png")
    with pytest.raises(sources.UnsafeSource):
        source.open("accounts/avatars/000/000/009/original/x.png")
    # a link in a directory component
    outside = tmp_path / "outside" / "original"
    outside.mkdir(parents=True)
    (outside / "y.png").write_bytes(b"PRIVATE")
    os.symlink(str(outside.parent), str(system_root / "accounts/avatars/000/000/008"))
    with pytest.raises(sources.UnsafeSource, match="000/000/008 is a symbolic link"):
        source.size("accounts/avatars/000/000/008/original/y.png")
    # a link to a file inside the root is refused as well (the app user chose where it points)
    os.symlink(str(system_root / good), str(system_root / "accounts/avatars/000/000/009/original/z.png"))
    with pytest.raises(sources.UnsafeSource):
        source.size("accounts/avatars/000/000/009/original/z.png")


def test_filesystem_source_root_may_be_a_link(tmp_path, system_root):
    link = tmp_path / "system-link"
    os.symlink(str(system_root), str(link))
    source = sources.FilesystemSource(str(link))
    assert source.size("cache/accounts/avatars/000/000/002/original/b.jpg") == 200
    with source.open("cache/accounts/avatars/000/000/002/original/b.jpg") as fh:
        assert fh.read() == b"x" * 200


def test_engine_reports_unsafe_sources_and_rejected_names(tmp_path, system_root):
    secret = tmp_path / "root-only.key"
    secret.write_bytes(b"PRIVATE")
    linked = "accounts/avatars/000/000/009/original/x.png"
    (system_root / linked).parent.mkdir(parents=True)
    os.symlink(str(secret), str(system_root / linked))
    from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import (
        RowObjects as LayoutRowObjects,
    )

    rows = [
        RowObjects("accounts", 9, [MediaObject("accounts", linked, "image/png", None, 9)]),
        LayoutRowObjects("accounts", 10, (), (("accounts", "accounts/avatars/000/000/010/original/'../x'",
                                         "file name '../x' holds a path separator"),)),
    ]
    engine = ce.CopyEngine(None, "bucket", sources.FilesystemSource(str(system_root)), check_mode=True,
                           index=listing.BucketIndex())
    result = engine.run(rows, rows_total=2)
    assert result["unsafe_source"] == 2
    assert result["totals"]["failed"] == 2 and result["totals"]["copied"] == 0
    assert result["totals"]["objects"] == 2
    assert [s["key"] for s in result["unsafe_source_sample"]] == [linked, "accounts/avatars/000/000/010/original/'../x'"]


def test_check_mode_writes_no_progress_file(tmp_path, system_root):
    state = tmp_path / "state"
    state.mkdir()
    engine = ce.CopyEngine(None, "bucket", sources.FilesystemSource(str(system_root)), check_mode=True,
                           index=listing.BucketIndex(), progress_file=str(state / "p.json"))
    engine.run(_rows(), rows_total=3)
    assert os.listdir(state) == []


# --- issue 11: private objects already in the bucket ---------------------------------------------

OWNER = {"Grantee": {"Type": "CanonicalUser", "ID": "fos", "DisplayName": "fos"}, "Permission": "FULL_CONTROL"}


def _group(name, permission="READ"):
    return {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/" + name},
            "Permission": permission}


def test_object_acl_public_grants():
    # the Grants of GetObjectAcl for the canned ACLs private, public-read, authenticated-read
    assert public_grants([OWNER]) == []
    assert public_grants([]) == [] and public_grants(None) == []
    assert public_grants([OWNER, _group("AllUsers")]) == ["READ"]
    assert public_grants([OWNER, _group("AuthenticatedUsers")]) == ["READ"]
    assert public_grants([OWNER, _group("AllUsers", "READ_ACP")]) == ["READ_ACP"]
    other_user = {"Grantee": {"Type": "CanonicalUser", "ID": "someone"}, "Permission": "READ"}
    assert public_grants([OWNER, other_user, _group("LogDelivery", "WRITE")]) == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_triage_hands_private_existing_objects_to_an_acl_check(system_root, check_mode):
    key = "cache/media_attachments/files/000/000/001/original/a.png"
    index = listing.BucketIndex([(key, 100), ("cache/accounts/avatars/000/000/002/original/b.jpg", 200)])
    engine = ce.CopyEngine(None, "bucket", sources.FilesystemSource(str(system_root)), index=index, check_mode=check_mode)
    # a private object already there: not simply skipped, its ACL is checked by a worker
    assert engine.triage("m", MediaObject("m", key, "image/png", "private", 1)) is ce.CHECK_PRIVATE
    # a public one already there: skipped without a request
    assert engine.triage("a", MediaObject("a", "cache/accounts/avatars/000/000/002/original/b.jpg",
                                          "image/jpeg", None, 2)) is None
    # a private one not there yet: copied (with ACL private), or counted in check mode
    small = MediaObject("m", "cache/media_attachments/files/000/000/001/small/a.png", "image/png", "private", 1)
    assert engine.triage("m", small) == (None if check_mode else 10)
    assert engine.extra_args(small)["ACL"] == "private"
    assert engine.stats.totals()["skipped"] == 1
    assert engine.limiter.requests == 0
