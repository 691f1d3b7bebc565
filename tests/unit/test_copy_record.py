"""The copy record (plugins/module_utils/copy/record.py): file safety, binding, and one run's use of it (RunRecord).

Its pieces have their own tests: test_copy_selection.py, test_copy_head_index.py, test_copy_trace.py."""

import datetime
import json
import os

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import record as rec
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.head_index import HEAD_LIMIT_ROWS, HeadIndex
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import RateLimiter

SINCE = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)


def bound(bucket="media", prefix=""):
    return rec.binding("https://s3.example.net/", bucket, prefix, ["local", "cache"], False, 0, 1,
                       rec.source_binding("filesystem", "/srv/system"), {"host": "/run/pg", "port": 5432, "dbname": "m"})


def kinds():
    return {"media_attachments/files": {"since": SINCE, "high_id": 42, "retry_ids": [7, 3]}}


@pytest.fixture
def rdir(tmp_path):
    d = tmp_path / "records"
    return str(d)


def test_round_trip_and_modes(rdir):
    path = rec.save(rdir, bound(), kinds())
    assert os.stat(rdir).st_mode & 0o777 == 0o700
    assert os.stat(path).st_mode & 0o777 == 0o600
    record, reason = rec.load(rdir, bound())
    assert reason is None
    assert record["kinds"]["media_attachments/files"] == {"since": SINCE, "high_id": 42, "retry_ids": [3, 7]}


def test_binding_normalises_and_differs():
    assert bound()["scope"] == ["cache", "local"]
    assert bound(prefix="/p/")["key_prefix"] == "p"
    assert rec.record_path("/d", bound()) != rec.record_path("/d", bound(bucket="other"))
    assert rec.record_path("/d", bound()) != rec.record_path("/d", bound(prefix="p"))


def test_record_of_another_binding_is_ignored_even_under_the_right_name(rdir):
    path = rec.save(rdir, bound(), kinds())
    os.rename(path, rec.record_path(rdir, bound(bucket="other")))
    record, reason = rec.load(rdir, bound(bucket="other"))
    assert record is None and "another" in reason


@pytest.mark.parametrize("damage", ["symlink", "world_writable", "other_owner", "garbage", "version", "bad_kind"])
def test_suspicious_or_broken_records_are_ignored(rdir, tmp_path, damage):
    path = rec.save(rdir, bound(), kinds())
    if damage == "symlink":
        target = tmp_path / "elsewhere.json"
        os.rename(path, str(target))
        os.symlink(str(target), path)
    elif damage == "world_writable":
        os.chmod(path, 0o666)
    elif damage == "other_owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to chown")
        os.chown(path, 65534, 65534)
    elif damage == "garbage":
        with open(path, "w") as fh:
            fh.write("{not json")
    else:
        with open(path) as fh:
            data = json.load(fh)
        if damage == "version":
            data["version"] = 99
        else:
            data["kinds"]["media_attachments/files"]["since"] = "yesterday"
        with open(path, "w") as fh:
            json.dump(data, fh)
    record, reason = rec.load(rdir, bound())
    assert record is None and reason


def test_unsafe_record_dir_is_neither_read_nor_written(tmp_path):
    d = tmp_path / "shared"
    d.mkdir()
    os.chmod(str(d), 0o777)
    assert rec.load(str(d), bound())[0] is None
    with pytest.raises(OSError, match="writable by others"):
        rec.save(str(d), bound(), kinds())
    link = tmp_path / "link"
    os.symlink(str(tmp_path), str(link))
    with pytest.raises(OSError, match="link"):
        rec.save(str(link), bound(), kinds())


def test_run_record_chooses_the_index_of_the_bucket(rdir):
    """A full run (no record, or not asked) lets the engine list the bucket; an incremental one gives it a
    HeadIndex sharing the run's limiter, unless more than HEAD_LIMIT_ROWS rows changed."""
    limiter = RateLimiter(0)
    full = rec.RunRecord(rdir, bound(), since_last_run=False)
    assert full.choose_index(None, "media", "", limiter, 4, 10) is None
    assert full.report()["listed"] is True and full.report()["reason"] == "a full run was asked for"

    rec.save(rdir, bound(), kinds())
    incremental = rec.RunRecord(rdir, bound(), since_last_run=True)
    incremental.old, incremental.reason = rec.load(rdir, bound())  # what begin() reads after the clock
    assert incremental.incremental
    index = incremental.choose_index(None, "media", "pre", limiter, 4, HEAD_LIMIT_ROWS)
    assert isinstance(index, HeadIndex) and index is incremental.head_index
    assert index.limiter is limiter and index.workers == 4 and index.key_prefix == "pre"
    assert index.high_ids == {"media_attachments/files": 42}
    assert incremental.listed is False

    assert incremental.choose_index(None, "media", "pre", limiter, 4, HEAD_LIMIT_ROWS + 1) is None
    assert incremental.listed is True and "listed instead" in incremental.reason
    assert incremental.choose_index(None, "media", "pre", limiter, 4, 1, skip_existing=False) is None
    assert incremental.listed is False


def test_the_pace_a_run_held_is_kept_for_check_modes_estimate(rdir):
    """The record keeps the rate the last complete run held (issue 22: check mode estimates with it),
    read whether or not the next run is incremental; a missing or malformed one is None."""
    rec.save(rdir, bound(), kinds(), {"held_rate": 141.7, "throttled": 12, "requests": 4600})
    record, _reason = rec.load(rdir, bound())
    assert record["pacing"] == {"held_rate": 141.7, "throttled": 12}
    assert rec.RunRecord(rdir, bound(), since_last_run=False).last_pacing() == {"held_rate": 141.7, "throttled": 12}
    rec.save(rdir, bound(), kinds(), {"held_rate": "fast"})
    assert rec.load(rdir, bound())[0]["pacing"] is None
    rec.save(rdir, bound(), kinds())
    assert rec.RunRecord(rdir, bound()).last_pacing() is None
    assert rec.RunRecord(rdir + "-none", bound()).last_pacing() is None
