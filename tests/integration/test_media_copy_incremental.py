"""media_copy's incremental passes (issue 15): ``record_dir`` + ``since_last_run``, through
ansible-playbook, against a real PostgreSQL (Mastodon's tables) and Ceph RGW over HTTPS.

What is proven: the record never makes a run skip an object that is not in the bucket -- rows
updated in place (new file name and size), re-fetched remote media, a row committed late (its
updated_at just before the last run started), a source file that appeared after the last run,
a record made for another bucket or prefix, an interrupted run -- and an incremental run does not
list the bucket, while a full verify still checks everything.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import psycopg2
import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import record as record_lib
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db as db_lib
from tests.ansible_helpers import kill_tree
from tests.conftest import empty_and_delete_bucket
from tests.fixtures.mastodon_instance import build_instance
from tests.media_copy_support import (
    ERIN_ID,
    ERIN_MEDIA,
    assert_erin_media_public,
    bucket_objects,
    module_args,
    run_copy,
    start_killable,
    suspend_account,
)

NEW_ID = 108900000000000001  # a remote media attachment created after the first run


@pytest.fixture
def inst(pg, tmp_path):
    root = tmp_path / "mastodon" / "public" / "system"
    return build_instance(pg, "incr_" + uuid.uuid4().hex[:8], root)


def db(inst):
    return psycopg2.connect(host=inst.db_params["host"], port=inst.db_params["port"], dbname=inst.db_params["dbname"],
                            user=inst.db_params["user"], password=inst.db_params["password"])


def sql(inst, statement, params=()):
    conn = db(inst)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
    finally:
        conn.close()


def db_keys(inst, scope=("cache",)):
    """Every object key the database references now (the collection's enumeration)."""
    conn = db_lib.connect(**inst.db_params)
    try:
        return {obj.key for row in db_lib.iter_rows_objects(conn, scope=list(scope)) for obj in row.objects}
    finally:
        conn.close()


def on_disk(inst, keys):
    return {k for k in keys if os.path.isfile(os.path.join(inst.system_root, k))}


def write_files(inst, keys, content=b"new bytes of %s\n"):
    for key in keys:
        path = os.path.join(inst.system_root, key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(content % key.encode())


def record_of(out):
    return out["copy_record"]


def test_incremental_copies_what_changed_without_listing(rgw, s3, bucket, inst, tmp_path):
    records = tmp_path / "records"
    args = module_args(rgw, inst, bucket, record_dir=str(records), since_last_run=True)

    # First run: no record yet -> a full run (listing), which writes the record.
    res, out = run_copy(args)
    assert res.rc == 0, res
    rec = record_of(out)
    assert rec["incremental"] is False and "no record" in rec["reason"]
    assert rec["record_written"] is True
    assert os.stat(rec["record"]).st_mode & 0o777 == 0o600
    assert os.stat(str(records)).st_mode & 0o777 == 0o700
    assert set(bucket_objects(s3, bucket)) == on_disk(inst, db_keys(inst))
    data = json.loads(Path(rec["record"]).read_text())
    assert data["binding"]["bucket"] == bucket
    # the row whose small style had no file is remembered for a retry
    assert data["kinds"]["media_attachments/files"]["retry_ids"] == [6]
    since = record_lib._parse_time(data["kinds"]["media_attachments/files"]["since"])

    before = set(bucket_objects(s3, bucket))
    # (a) a new remote media row; (b) row 7 replaced in place (new name and size);
    # (c) row 9 re-fetched: only Paperclip's file_updated_at moves; (d) a row saved 2 minutes before
    # the first run started but committed after it, with a low id; (e) the missing file appears;
    # (f) an object of an unchanged row vanishes from the bucket (an incremental run cannot see it).
    sql(inst, "INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type,"
              " file_storage_schema_version, created_at, updated_at, file_updated_at)"
              " VALUES (%s, 2, 'https://remote.example/media/n1.png', 'n1.png', 'image/png', 1, now(), now(), now())",
        (NEW_ID,))
    sql(inst, "UPDATE media_attachments SET file_file_name = 'replaced.jpeg', file_content_type = 'image/jpeg',"
              " file_file_size = 99, file_updated_at = now(), updated_at = now() WHERE id = 7")
    sql(inst, "UPDATE media_attachments SET file_file_name = 'refetched.jpg', file_content_type = 'image/jpeg',"
              " file_storage_schema_version = 1, file_updated_at = now() WHERE id = 9")
    sql(inst, "INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type,"
              " file_storage_schema_version, created_at, updated_at)"
              " VALUES (13, 2, 'https://remote.example/media/late.png', 'late.png', 'image/png', 1, %s, %s)",
        (since.replace(microsecond=0) - datetime.timedelta(seconds=120),) * 2)
    changed_keys = db_keys(inst) - before
    missing = set(inst.missing_keys)
    assert missing <= changed_keys
    write_files(inst, changed_keys)
    assert any("/000/000/007/" in k for k in changed_keys) and any("/000/000/009/" in k for k in changed_keys)
    assert any("/000/000/013/" in k for k in changed_keys)
    gone = sorted(k for k in before if "preview_cards" in k)[0]
    s3.delete_object(Bucket=bucket, Key=gone)

    res, out = run_copy(args)
    assert res.rc == 0, res
    rec = record_of(out)
    assert rec["incremental"] is True and rec["listed"] is False and rec["record_written"] is True
    assert out["totals"]["copied"] == len(changed_keys)
    assert set(bucket_objects(s3, bucket)) == (before | changed_keys) - {gone}
    # no LIST: one HEAD per selected object of a row the record had seen (the new row, above the record's
    # high id, is copied without one), one PUT per copied object, one GetObjectAcl per private object
    # already there (the suspended account's media are always selected: issue 11), and the pre-flight's
    # HeadBucket (every request is counted on the wire: issue 22)
    private_there = [k for k, v in inst.expected.items() if v[1] == "private" and k in before]
    assert len(private_there) == 2
    new_id_path = "/".join(("%018d" % NEW_ID)[i:i + 3] for i in range(0, 18, 3))  # Paperclip's id partition
    new_row_keys = [k for k in changed_keys if "/%s/" % new_id_path in k]
    assert new_row_keys and rec["new_rows_not_looked_up"] == 1
    assert rec["looked_up"] == out["totals"]["objects"] - len(new_row_keys)
    assert out["requests"] == 1 + rec["looked_up"] + out["totals"]["copied"] + len(private_there)
    assert out["privatised"] == 0
    assert out["totals"]["rows"] < sum(inst.expected_rows["cache"].values())

    # Nothing changed since: no copy, no change.
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert record_of(out)["incremental"] is True
    assert out["totals"]["copied"] == 0 and out["changed"] is False

    # A full verify still checks everything, and finds the vanished object.
    res, out = run_copy(dict(args, mode="verify"))  # since_last_run is ignored: verify checks all
    assert res.rc == 0, res
    assert out["missing_in_bucket"] == 1
    assert [m["key"] for m in out["missing_in_bucket_sample"]] == [gone]
    # ...and a full copy run puts it back.
    res, out = run_copy(dict(args, since_last_run=False))
    assert res.rc == 0, res
    assert out["totals"]["copied"] == 1
    # (the replaced row's old objects stay: nothing is ever deleted from the bucket)
    assert set(bucket_objects(s3, bucket)) == before | changed_keys


def test_record_of_another_bucket_or_prefix_is_ignored(rgw, s3, bucket, inst, tmp_path):
    records = tmp_path / "records"
    res, out = run_copy(module_args(rgw, inst, bucket, record_dir=str(records)))
    assert res.rc == 0, res
    assert record_of(out)["record_written"] is True
    want = on_disk(inst, db_keys(inst))

    other = "fos-test-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=other)
    try:
        # A record copied over the other bucket's record file: its binding says another bucket.
        args_other = module_args(rgw, inst, other, record_dir=str(records), since_last_run=True)
        bound = record_lib.binding(
            rgw.https_endpoint, other, "", ["cache"], False, 0, 1,
            record_lib.source_binding("filesystem", inst.system_root), inst.db_params)
        forged = record_lib.record_path(str(records), bound)
        shutil.copy(record_of(out)["record"], forged)
        os.chmod(forged, 0o600)
        res, out2 = run_copy(args_other)
        assert res.rc == 0, res
        rec = record_of(out2)
        assert rec["incremental"] is False and "another" in rec["reason"]
        assert set(bucket_objects(s3, other)) == want

        # Same bucket, another key prefix: a full run too.
        res, out3 = run_copy(module_args(rgw, inst, bucket, record_dir=str(records), since_last_run=True,
                                         key_prefix="elsewhere"))
        assert res.rc == 0, res
        assert record_of(out3)["incremental"] is False
        assert {k for k in bucket_objects(s3, bucket) if k.startswith("elsewhere/")} == {"elsewhere/" + k for k in want}
    finally:
        empty_and_delete_bucket(s3, other)


def wait_for(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_interrupted_runs_never_advance_the_record(rgw, s3, bucket, inst, tmp_path):
    records = tmp_path / "records"
    slow = module_args(rgw, inst, bucket, record_dir=str(records), since_last_run=True, max_requests_per_second=3,
                       concurrency=2)
    # 1. A first run killed half way writes no record: the next run is a full one.
    proc = start_killable(tmp_path, slow, "first")
    try:
        assert wait_for(lambda: len(bucket_objects(s3, bucket)) >= 3)
    finally:
        kill_tree(proc)
    assert not records.exists() or not os.listdir(str(records))
    res, out = run_copy(dict(slow, max_requests_per_second=0, concurrency=8))
    assert res.rc == 0, res
    assert record_of(out)["incremental"] is False and record_of(out)["record_written"] is True
    want = on_disk(inst, db_keys(inst))
    assert set(bucket_objects(s3, bucket)) == want
    path = record_of(out)["record"]
    saved = Path(path).read_text()

    # 2. New rows; an incremental run killed half way leaves the record as it was...
    values = ", ".join("(%d, 2, 'https://remote.example/media/x%d.png', 'x%d.png', 'image/png', 1, now(), now())"
                       % (NEW_ID + i, i, i) for i in range(12))
    sql(inst, "INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type,"
              " file_storage_schema_version, created_at, updated_at) VALUES " + values)
    new_keys = db_keys(inst) - want - set(inst.missing_keys)
    assert len(new_keys) == 24
    write_files(inst, new_keys)
    proc = start_killable(tmp_path, slow, "second")
    try:
        assert wait_for(lambda: len(set(bucket_objects(s3, bucket)) & new_keys) >= 2)
    finally:
        kill_tree(proc)
    time.sleep(1)
    landed = set(bucket_objects(s3, bucket)) & new_keys
    assert 0 < len(landed) < len(new_keys)
    assert Path(path).read_text() == saved

    # 3. ...so the next incremental run still selects every new row and completes the bucket.
    res, out = run_copy(dict(slow, max_requests_per_second=0, concurrency=8))
    assert res.rc == 0, res
    assert record_of(out)["incremental"] is True
    assert set(bucket_objects(s3, bucket)) == want | new_keys
    assert out["totals"]["copied"] + out["totals"]["skipped"] >= len(new_keys)
    assert Path(path).read_text() != saved


def test_check_mode_and_limit_write_no_record(rgw, s3, bucket, inst, tmp_path):
    records = tmp_path / "records"
    args = module_args(rgw, inst, bucket, record_dir=str(records))
    res, out = run_copy(args, check=True)
    assert res.rc == 0, res
    assert record_of(out)["record_written"] is False
    assert not records.exists()
    res, out = run_copy(dict(args, limit=3))
    assert res.rc == 0, res
    assert record_of(out)["record_written"] is False
    res, out = run_copy(module_args(rgw, inst, bucket, since_last_run=True))
    assert res.rc != 0 and "record_dir" in out["msg"]


def test_incremental_run_makes_media_of_newly_suspended_account_private(rgw, s3, bucket, inst, tmp_path):
    """A suspension changes accounts.suspended_at, not the media rows: the incremental run still
    selects the suspended account's media and makes the objects copied public before private."""
    records = tmp_path / "records"
    args = module_args(rgw, inst, bucket, record_dir=str(records), since_last_run=True)
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert record_of(out)["record_written"] is True and out["privatised"] == 0
    assert_erin_media_public(rgw, s3, bucket, True)

    suspend_account(inst, ERIN_ID)

    res, out = run_copy(args, check=True)
    assert res.rc == 0, res
    assert record_of(out)["incremental"] is True
    assert out["privatised"] == len(ERIN_MEDIA) and out["changed"] is True
    assert_erin_media_public(rgw, s3, bucket, True)

    res, out = run_copy(args)
    assert res.rc == 0, res
    rec = record_of(out)
    assert rec["incremental"] is True and rec["listed"] is False
    assert out["privatised"] == len(ERIN_MEDIA)
    assert sorted(s["key"] for s in out["privatised_sample"]) == sorted(ERIN_MEDIA)
    assert out["changed"] is True and out["totals"]["copied"] == 0 and out["totals"]["failed"] == 0
    # not a full run: only what changed, plus every suspended account's media
    assert out["totals"]["rows"] < sum(inst.expected_rows["cache"].values())
    assert_erin_media_public(rgw, s3, bucket, False)

    res, out = run_copy(args)
    assert res.rc == 0, res
    assert record_of(out)["incremental"] is True
    assert out["privatised"] == 0 and out["changed"] is False
    assert_erin_media_public(rgw, s3, bucket, False)
