"""fediverse.object_storage.media_copy through ansible-playbook, against a real PostgreSQL holding
Mastodon's tables (tests/fixtures/mastodon_instance.py) and a real Ceph RGW over HTTPS (CA bundle).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid

import pytest

from tests.ansible_helpers import kill_tree
from tests.fixtures.mastodon_instance import build_instance
from tests.media_copy_support import (
    ERIN_AVATAR,
    ERIN_ID,
    ERIN_MEDIA,
    anonymous_get_status,
    assert_erin_media_public,
    bucket_objects,
    is_public,
    module_args,
    readable_by_others,
    run_copy,
    start_killable,
    suspend_account,
)

CACHE_CONTROL = "public, max-age=315576000, immutable"


# --- fixtures and helpers ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def instance(pg, tmp_path_factory):
    root = tmp_path_factory.mktemp("mastodon") / "public" / "system"
    return build_instance(pg, "media_copy_" + uuid.uuid4().hex[:8], root)


def tree_checksums(root):
    sums = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as fh:
                st = os.stat(path)
                sums[os.path.relpath(path, root)] = (hashlib.sha256(fh.read()).hexdigest(), st.st_mode, st.st_mtime_ns)
    return sums


def present(expected, instance):
    return {k: v for k, v in expected.items() if k not in instance.missing_keys}


# --- acceptance: exact key set, headers, ACLs; idempotence; local media untouched -------------

def test_full_copy_exact_keys_headers_acl_and_second_run_noop(rgw, s3, bucket, instance):
    before = tree_checksums(instance.system_root)
    args = module_args(rgw, instance, bucket, multipart_threshold=8 * 1024 * 1024)
    res, out = run_copy(args)
    assert res.rc == 0, res
    want = present(instance.expected, instance)

    objects = bucket_objects(s3, bucket)
    assert set(objects) == set(want)
    for key, (content_type, acl) in want.items():
        head = s3.head_object(Bucket=bucket, Key=key)
        assert head["ContentType"] == content_type, key
        assert head["CacheControl"] == CACHE_CONTROL, key
        assert head["ContentLength"] == os.path.getsize(os.path.join(instance.system_root, key))
        assert is_public(s3, bucket, key) is (acl != "private"), key
    # anonymous GET: public objects 200, private 403 (both kinds exist in the fixture)
    privates = [k for k, v in want.items() if v[1] == "private"]
    publics = [k for k, v in want.items() if v[1] != "private"]
    assert privates and publics
    for key in privates:
        assert anonymous_get_status(rgw, bucket, key) == 403, key
    for key in publics[:5]:
        assert anonymous_get_status(rgw, bucket, key) == 200, key

    # the 12 MiB file went multipart (ETag "...-N")
    etag = objects[instance.large_key]["ETag"].strip('"')
    assert etag.endswith("-2"), etag

    # result accounting
    assert out["changed"] is True
    assert out["totals"]["copied"] == len(want)
    assert out["totals"]["missing_source"] == len(instance.missing_keys)
    assert out["totals"]["failed"] == 0
    assert {m["key"] for m in out["missing_source_sample"]} == set(instance.missing_keys)
    assert out["totals"]["rows"] == sum(instance.expected_rows["cache"].values())
    assert {k: v["rows"] for k, v in out["kinds"].items()} == instance.expected_rows["cache"]
    assert out["bytes"] == sum(o["Size"] for o in objects.values())
    assert out["objects_per_second"] > 0 and out["seconds"] > 0

    # second run: nothing copied, no change
    res2, out2 = run_copy(args)
    assert res2.rc == 0, res2
    assert out2["changed"] is False
    assert out2["totals"]["copied"] == 0
    assert out2["totals"]["skipped"] == len(want)
    assert res2.changed == 0

    # local media untouched: same files, same content, modes and mtimes
    assert tree_checksums(instance.system_root) == before


def test_missing_source_is_reported_and_does_not_fail(rgw, s3, bucket, instance):
    res, out = run_copy(module_args(rgw, instance, bucket))
    assert res.rc == 0, res
    assert instance.missing_keys
    assert out["totals"]["missing_source"] == len(instance.missing_keys)
    assert [m["key"] for m in out["missing_source_sample"]] == sorted(instance.missing_keys)
    assert set(bucket_objects(s3, bucket)) == set(present(instance.expected, instance))


def test_check_mode_uploads_nothing_and_counts(rgw, s3, bucket, instance):
    res, out = run_copy(module_args(rgw, instance, bucket, max_requests_per_second=400), check=True)
    assert res.rc == 0, res
    assert bucket_objects(s3, bucket) == {}
    want = present(instance.expected, instance)
    assert out["totals"]["copied"] == len(want)
    size = sum(os.path.getsize(os.path.join(instance.system_root, k)) for k in want)
    assert out["bytes"] == size
    assert out["changed"] is True
    # issue 22: the plan - one PUT per object (all small) plus what check mode sent itself (HeadBucket, one
    # listing page); this run's time plus the PUTs' at the cap; the storage the bucket will need (empty: what
    # is copied)
    assert out["estimate"] == {"objects": len(want), "bytes": size, "requests": len(want) + out["requests"],
                               "rate": 400.0, "rate_from": "max_requests_per_second",
                               "seconds": round(out["seconds"] + len(want) / 400.0, 1), "bucket_bytes": size}
    assert out["requests"] == 2


def test_verify_reports_exactly_deleted_objects(rgw, s3, bucket, instance):
    args = module_args(rgw, instance, bucket)
    res, _ = run_copy(args)
    assert res.rc == 0, res
    want = sorted(present(instance.expected, instance))
    deleted = [want[0], want[len(want) // 2], want[-1]]
    for key in deleted:
        s3.delete_object(Bucket=bucket, Key=key)
    # and one object overwritten with another size
    changed_key = want[1]
    s3.put_object(Bucket=bucket, Key=changed_key, Body=b"other size")

    res, out = run_copy(dict(args, mode="verify"))
    assert res.rc == 0, res
    assert out["changed"] is False
    assert out["missing_in_bucket"] == 3
    assert sorted(m["key"] for m in out["missing_in_bucket_sample"]) == sorted(deleted)
    assert out["different_size"] == 1
    assert [m["key"] for m in out["different_size_sample"]] == [changed_key]
    assert out["verified"] is False
    # verify copied nothing
    assert not set(deleted) & set(bucket_objects(s3, bucket))

    res, _ = run_copy(args)
    res, out = run_copy(dict(args, mode="verify"))
    assert out["missing_in_bucket"] == 0 and out["different_size"] == 0 and out["verified"] is True


def test_shards_split_the_set_without_overlap(rgw, s3, bucket, instance):
    want = set(present(instance.expected, instance))
    args = module_args(rgw, instance, bucket, shard_count=2)
    res0, out0 = run_copy(dict(args, shard_index=0))
    assert res0.rc == 0, res0
    after0 = set(bucket_objects(s3, bucket))
    assert 0 < len(after0) < len(want)
    assert out0["totals"]["copied"] == len(after0)

    # skip_existing false: shard 1 copies everything of its own, so any overlap would show in its count
    res1, out1 = run_copy(dict(args, shard_index=1, skip_existing=False))
    assert res1.rc == 0, res1
    after1 = set(bucket_objects(s3, bucket))
    assert after1 == want
    assert out1["totals"]["copied"] == len(after1 - after0)
    assert out0["totals"]["copied"] + out1["totals"]["copied"] == len(want)
    assert out0["totals"]["rows"] + out1["totals"]["rows"] == sum(instance.expected_rows["cache"].values())


def test_interrupted_run_resumes_to_complete(rgw, s3, bucket, instance, tmp_path):
    progress = tmp_path / "progress.json"
    args = module_args(rgw, instance, bucket, max_requests_per_second=3, concurrency=2, progress_file=str(progress))
    proc = start_killable(tmp_path, args)
    want = set(present(instance.expected, instance))
    try:
        deadline = time.monotonic() + 60
        landed = set()
        while time.monotonic() < deadline:
            landed = set(bucket_objects(s3, bucket))
            if len(landed) >= 5:
                break
            time.sleep(0.3)
        assert len(landed) >= 5
        # the progress file is there and not finished
        data = json.loads(progress.read_text())
        assert data["finished"] is False and data["phase"] in ("copying", "listing")
    finally:
        kill_tree(proc)
    time.sleep(1)  # a request whose body was fully sent may still complete on the server
    landed = set(bucket_objects(s3, bucket))
    assert 0 < len(landed) < len(want)
    time.sleep(2)
    assert set(bucket_objects(s3, bucket)) == landed  # the copy really died

    res, out = run_copy(dict(args, max_requests_per_second=0, concurrency=16))
    assert res.rc == 0, res
    assert set(bucket_objects(s3, bucket)) == want
    assert out["totals"]["skipped"] >= len(landed) - 2  # (an object may land just as the kill comes)
    assert out["totals"]["copied"] + out["totals"]["skipped"] == len(want)
    data = json.loads(progress.read_text())
    assert data["finished"] is True and data["done"] == len(instance.expected)
    assert data["copied"] == out["totals"]["copied"]


def test_rate_limit_is_honoured(rgw, s3, bucket, instance):
    args = module_args(rgw, instance, bucket, max_requests_per_second=20, limit=6)
    start = time.monotonic()
    res, out = run_copy(args)
    assert res.rc == 0, res
    # every request went through the limiter: (requests - burst) / rate <= the run's duration
    assert out["requests"] >= out["totals"]["copied"] + 1
    assert out["seconds"] >= (out["requests"] - 20) / 20.0 - 0.05
    assert time.monotonic() - start >= out["seconds"]


def test_key_prefix(rgw, s3, bucket, instance):
    res, out = run_copy(module_args(rgw, instance, bucket, key_prefix="mastodon"))
    assert res.rc == 0, res
    assert set(bucket_objects(s3, bucket)) == {"mastodon/" + k for k in present(instance.expected, instance)}
    res, out = run_copy(module_args(rgw, instance, bucket, key_prefix="mastodon"))
    assert out["totals"]["copied"] == 0 and out["changed"] is False


def test_scope_local_and_backups_private(rgw, s3, bucket, instance):
    res, out = run_copy(module_args(rgw, instance, bucket, scope=["local"], include_backups=True, acl=""))
    assert res.rc == 0, res
    want = present(dict(instance.expected_local, **instance.expected_backups), instance)
    assert set(bucket_objects(s3, bucket)) == set(want)
    assert instance.expected_backups
    for key in instance.expected_backups:
        assert not is_public(s3, bucket, key)
        assert anonymous_get_status(rgw, bucket, key) == 403
    # acl "" sends no ACL: the bucket default (private) applies to every object
    for key in want:
        assert not is_public(s3, bucket, key), key
    assert {k: v["rows"] for k, v in out["kinds"].items()} == dict(instance.expected_rows["local"],
                                                                   **instance.expected_rows["backups"])


def test_backups_private_even_with_public_acl(rgw, s3, bucket, instance):
    res, _ = run_copy(module_args(rgw, instance, bucket, scope=["local"], include_backups=True))
    assert res.rc == 0, res
    for key, (_ct, acl) in present(instance.expected_local, instance).items():
        assert is_public(s3, bucket, key) is (acl != "private"), key
    for key in instance.expected_backups:
        assert not is_public(s3, bucket, key)


def test_source_s3_bucket_to_bucket(rgw, s3, bucket, instance):
    source = "fos-test-src-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=source)
    try:
        res, _ = run_copy(module_args(rgw, instance, source, key_prefix="old"))
        assert res.rc == 0, res
        # another key pair on the same endpoint would stream; same keys -> server-side copy
        args = module_args(rgw, instance, bucket, source="s3", source_bucket=source, source_key_prefix="old",
                           source_endpoint=rgw.https_endpoint, system_root="/nonexistent")
        res, out = run_copy(args)
        assert res.rc == 0, res
        want = present(instance.expected, instance)
        assert set(bucket_objects(s3, bucket)) == set(want)
        for key, (content_type, acl) in want.items():
            head = s3.head_object(Bucket=bucket, Key=key)
            assert head["ContentType"] == content_type and head["CacheControl"] == CACHE_CONTROL
            assert is_public(s3, bucket, key) is (acl != "private")
        assert out["totals"]["missing_source"] == len(instance.missing_keys)
        res, out = run_copy(args)
        assert out["totals"]["copied"] == 0 and out["changed"] is False
    finally:
        from tests.conftest import empty_and_delete_bucket

        empty_and_delete_bucket(s3, source)


def test_source_s3_streamed_with_other_keys(rgw, s3, bucket, instance):
    """Different source keys: objects are streamed (GET + PUT), the large one multipart."""
    source = "fos-test-src-" + uuid.uuid4().hex[:10]
    s3.create_bucket(Bucket=source)
    uid = "fos-src-" + uuid.uuid4().hex[:6]
    out = json.loads(rgw.admin("user", "create", "--uid", uid, "--display-name", uid))
    keys = out["keys"][0]
    try:
        res, _ = run_copy(module_args(rgw, instance, source, limit=40))
        assert res.rc == 0, res
        # let the other user read the source bucket
        s3.put_bucket_policy(Bucket=source, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/%s" % uid]},
                           "Action": ["s3:GetObject", "s3:ListBucket"],
                           "Resource": ["arn:aws:s3:::%s" % source, "arn:aws:s3:::%s/*" % source]}]}))
        args = module_args(rgw, instance, bucket, source="s3", source_bucket=source,
                           source_access_key=keys["access_key"], source_secret_key=keys["secret_key"],
                           multipart_threshold=8 * 1024 * 1024)
        res, out = run_copy(args)
        assert res.rc == 0, res
        objects = bucket_objects(s3, bucket)
        assert set(objects) == set(present(instance.expected, instance))
        assert objects[instance.large_key]["ETag"].strip('"').endswith("-2")
        assert objects[instance.large_key]["Size"] == instance.large_size
    finally:
        from tests.conftest import empty_and_delete_bucket

        empty_and_delete_bucket(s3, source)
        rgw.admin("user", "rm", "--uid", uid, "--purge-data")


# --- pre-flight errors: clear, before any copy --------------------------------------------------

def test_wrong_secret_key_fails_before_copy(rgw, s3, bucket, instance):
    res, out = run_copy(module_args(rgw, instance, bucket, secret_key="not-the-secret"))
    assert res.rc != 0
    assert out["failed"] is True
    assert "credentials rejected" in out["msg"] and "SignatureDoesNotMatch" in out["msg"], out["msg"]
    assert "not-the-secret" not in res.stdout
    assert bucket_objects(s3, bucket) == {}


def test_unreachable_db_fails_clearly(rgw, s3, bucket, instance):
    res, out = run_copy(module_args(rgw, instance, bucket, db_host="127.0.0.1", db_port=1))
    assert res.rc != 0
    assert out["msg"].startswith("database: cannot connect to PostgreSQL"), out["msg"]
    assert not instance.db_params["password"] or instance.db_params["password"] not in res.stdout
    assert bucket_objects(s3, bucket) == {}


def test_missing_bucket_fails_clearly(rgw, instance):
    res, out = run_copy(module_args(rgw, instance, "fos-test-no-such-bucket-" + uuid.uuid4().hex[:6]))
    assert res.rc != 0
    assert "does not exist" in out["msg"] and "NoSuchBucket" in out["msg"], out["msg"]


def test_db_from_env_file(rgw, s3, bucket, instance, tmp_path):
    env = tmp_path / ".env.production"
    p = instance.db_params
    env.write_text("DB_HOST=%s\nDB_PORT=%s\nDB_NAME=%s\nDB_USER=%s\nDB_PASS=%s\n"
                   % (p["host"], p["port"], p["dbname"], p["user"], p["password"]))
    args = module_args(rgw, instance, bucket, env_file=str(env), limit=3)
    for name in ("db_host", "db_port", "db_name", "db_user", "db_password"):
        args.pop(name)
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert out["totals"]["rows"] == 3


def test_failed_objects_fail_the_task_unless_ignored(rgw, s3, instance):
    """A user that may list but not write the bucket: every PUT fails (AccessDenied), run continues."""
    name = "fos-test-ro-" + uuid.uuid4().hex[:8]
    s3.create_bucket(Bucket=name)
    uid = "fos-ro-" + uuid.uuid4().hex[:6]
    keys = json.loads(rgw.admin("user", "create", "--uid", uid, "--display-name", uid))["keys"][0]
    try:
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam:::user/%s" % uid]},
                           "Action": ["s3:ListBucket"], "Resource": ["arn:aws:s3:::%s" % name]}]}))
        args = module_args(rgw, instance, name, access_key=keys["access_key"], secret_key=keys["secret_key"], limit=4)
        res, out = run_copy(args)
        assert res.rc != 0
        assert out["totals"]["failed"] == out["totals"]["objects"] - out["totals"]["missing_source"] > 0
        assert "AccessDenied" in out["failed_sample"][0]["reason"]
        assert "could not be copied" in out["msg"]
        res, out = run_copy(dict(args, ignore_failures=True))
        assert res.rc == 0, res
        assert out["totals"]["failed"] > 0 and out["changed"] is False
    finally:
        from tests.conftest import empty_and_delete_bucket

        empty_and_delete_bucket(s3, name)
        rgw.admin("user", "rm", "--uid", uid, "--purge-data")


# --- the engine's destination listing on the real server ----------------------------------------

@pytest.mark.parametrize("parallel", [1, 4])
def test_destination_listing_covers_every_key(s3, bucket, parallel):
    """Parallel listing (tree walk + key ranges) sees every key exactly as a plain listing does."""
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import rate_limit
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import listing

    keys = ["a", "a-b/c", "a/", "a/b", "p/x y+z.png", "p/%41", "top.txt"]
    keys += ["p/media/%03d/%03d/original/f.png" % (i // 7, i) for i in range(60)]
    keys += ["p/media/%03d/%03d/small/f.png" % (i // 7, i) for i in range(60)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * (i % 13))
    limiter = rate_limit.RateLimiter(0)
    index = listing.BucketIndex.from_listing(s3, bucket, "", limiter, page_size=7, parallel=parallel)
    for i, key in enumerate(keys):
        assert index.size_of(key) == i % 13, key
    assert index.size_of("p/media") is None
    sub = listing.BucketIndex.from_listing(s3, bucket, "p/", None, page_size=5, parallel=parallel)
    assert sub.size_of("p/media/000/000/original/f.png") == keys.index("p/media/000/000/original/f.png") % 13
    assert sub.size_of("top.txt") is None
    # every request went through the limiter
    assert limiter.requests >= len(keys) // 7


# --- issue 11: an account suspended after its media were copied --------------------------------



@pytest.fixture
def fresh_instance(pg, tmp_path):
    """An instance of its own: these tests suspend an account in its database."""
    return build_instance(pg, "acl_" + uuid.uuid4().hex[:8], tmp_path / "mastodon" / "public" / "system")




def test_account_suspended_after_copy_is_made_private(rgw, s3, bucket, fresh_instance):
    inst = fresh_instance
    assert all(inst.expected[k][1] is None for k in ERIN_MEDIA) and ERIN_AVATAR in inst.expected
    args = module_args(rgw, inst, bucket)
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert out["privatised"] == 0
    assert_erin_media_public(rgw, s3, bucket, True)
    already_private = [k for k, v in present(inst.expected, inst).items() if v[1] == "private"]
    assert already_private

    suspend_account(inst, ERIN_ID)

    # check mode: reports what would be made private, changes no ACL
    res, out = run_copy(args, check=True)
    assert res.rc == 0, res
    assert out["privatised"] == len(ERIN_MEDIA)
    assert sorted(s["key"] for s in out["privatised_sample"]) == sorted(ERIN_MEDIA)
    assert out["changed"] is True and out["totals"]["copied"] == 0
    assert_erin_media_public(rgw, s3, bucket, True)

    # the real run: the objects already in the bucket (skipped) are made private
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert_erin_media_public(rgw, s3, bucket, False)
    assert out["privatised"] == len(ERIN_MEDIA)
    assert sorted(s["key"] for s in out["privatised_sample"]) == sorted(ERIN_MEDIA)
    assert out["changed"] is True and res.changed == 1
    assert out["totals"]["copied"] == 0 and out["totals"]["failed"] == 0
    assert out["totals"]["skipped"] == len(present(inst.expected, inst))
    assert_erin_media_public(rgw, s3, bucket, False)
    for key in already_private:
        assert not readable_by_others(s3, bucket, key), key

    # nothing left to do
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert out["privatised"] == 0 and out["privatised_sample"] == []
    assert out["changed"] is False and res.changed == 0
    assert_erin_media_public(rgw, s3, bucket, False)
