"""The copy record (plugins/module_utils/copy_record.py): file safety, binding, selection SQL, tracking."""

import datetime
import json
import os
import threading

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils import copy_record as rec
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon_layout import MediaObject, RowObjects

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


def test_selection_sql():
    record = {"kinds": {"media_attachments/files": {"since": SINCE, "high_id": 42, "retry_ids": [3]}}}
    sel = rec.Selection(record, margin=600)
    cols = {"id", "updated_at", "file_updated_at", "file_file_name"}
    sql, params = sel("media_attachments/files", "media_attachments", "file", cols)
    assert sql == "t.id > %s OR t.updated_at >= %s OR t.file_updated_at >= %s OR t.id = ANY(%s)"
    assert params == [42, SINCE - datetime.timedelta(minutes=10), SINCE - datetime.timedelta(minutes=10), [3]]
    # a kind the record does not know, or a table without updated_at: every row
    assert sel("accounts/avatars", "accounts", "avatar", {"id", "updated_at"}) is None
    assert sel("media_attachments/files", "media_attachments", "file", {"id", "file_file_name"}) is None
    assert sel.kinds == {"media_attachments/files", "accounts/avatars"}
    assert rec.Selection(None)("media_attachments/files", "media_attachments", "file", cols) is None


class FakeStats:
    def __init__(self):
        self.seen = []

    def record(self, kind, outcome, key=None, size=0, reason=None):
        self.seen.append((kind, outcome, key))


class FakeEngine:
    """Calls stats.record from triage (producer thread) and copy_one (worker thread), as CopyEngine does."""

    def __init__(self):
        self.stats = FakeStats()

    def triage(self, kind, obj):
        if obj.key.endswith("missing"):
            self.stats.record(kind, "missing_source", obj.key)
            return None
        return 1

    def copy_one(self, kind, obj, size):
        self.stats.record(kind, "failed" if obj.key.endswith("bad") else "copied", obj.key, size)


def row(kind, rid, *names):
    return RowObjects(kind, rid, tuple(MediaObject(kind, "%d/%s" % (rid, n), None, None, rid) for n in names))


def test_tracker_records_high_ids_and_rows_to_retry():
    tracker = rec.Tracker()
    engine = FakeEngine()
    tracker.attach(engine)
    rows = [row("k", 5, "ok", "missing"), row("k", 9, "ok"), row("k", 7, "bad"), row("j", 1, "ok")]
    for r in tracker.rows(rows):
        for obj in r.objects:
            if engine.triage(r.kind, obj) is not None:
                t = threading.Thread(target=engine.copy_one, args=(r.kind, obj, 1))
                t.start()
                t.join()
    assert len(engine.stats.seen) == 5  # the real record() still counted everything
    out = tracker.kinds_record(["k", "j", "empty"], SINCE, {"kinds": {"k": {"high_id": 100, "since": SINCE,
                                                                              "retry_ids": [1]}}})
    assert out["k"] == {"since": SINCE, "high_id": 100, "retry_ids": [5, 7]}
    assert out["j"]["high_id"] == 1 and out["j"]["retry_ids"] == []
    assert out["empty"]["high_id"] == 0


def test_tracker_refuses_incomplete_or_overflowing_runs():
    tracker = rec.Tracker()
    rows = tracker.rows([row("k", 1, "ok")])
    next(rows)
    assert tracker.kinds_record(["k"], SINCE) is None  # the enumeration did not end
    tracker = rec.Tracker(max_retry_ids=1)
    engine = FakeEngine()
    tracker.attach(engine)
    for r in tracker.rows([row("k", 1, "missing"), row("k", 2, "missing")]):
        for obj in r.objects:
            engine.triage(r.kind, obj)
    assert tracker.kinds_record(["k"], SINCE) is None
    tracker = rec.Tracker()
    engine = FakeEngine()
    tracker.attach(engine)
    list(tracker.rows([]))
    engine.stats.record("k", "failed", "x")  # an outcome outside triage/copy_one: row unknown
    assert tracker.kinds_record(["k"], SINCE) is None


def test_head_index_looks_up_only_rows_the_record_has_seen():
    """An incremental run does not HEAD the objects of rows above the record's high id (no recorded run saw
    them: they are copied, never skipped); rows at or below it are looked up, per kind."""
    asked = []

    class Recording:
        def head_object(self, Bucket, Key):  # noqa: N803
            asked.append(Key)
            if Key.endswith("there.png"):
                return {"ContentLength": 7}
            raise KeyError(Key)

    def row(kind, row_id, name):
        return RowObjects(kind, row_id, (MediaObject(kind, "k/%d/%s" % (row_id, name), "image/png", None, row_id),))

    index = rec.HeadIndex(Recording(), "b", "pre", workers=2, high_ids={"a": 10, "b": 100})
    rows = [row("a", 9, "there.png"), row("a", 11, "new.png"), row("b", 50, "gone.png"), row("c", 1, "x.png")]
    out = list(index.prefetch(iter(rows), batch=2))
    assert out == rows
    assert sorted(asked) == ["pre/k/1/x.png", "pre/k/50/gone.png", "pre/k/9/there.png"]
    assert index.unseen_rows == 1 and index.looked_up == 3
    assert index.size_of("pre/k/11/new.png") is None  # -> copied
