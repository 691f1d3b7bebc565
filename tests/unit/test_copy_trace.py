"""Following a copy run (plugins/module_utils/copy/trace.py): what CopyEngine tells its tracer, and the
copy record's RowTracker fed by a real CopyEngine run (no S3 request is sent: the objects are skipped,
missing, unreadable or vanish before their transfer)."""

import datetime

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import engine as ce
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import trace
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import FilesystemSource
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import MediaObject, RowObjects
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import BucketIndex

SINCE = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
KIND = "media_attachments/files"


def key(row_id, name):
    return "media_attachments/files/000/000/%03d/original/%s" % (row_id, name)


def row(row_id, *names, rejected=()):
    return RowObjects(KIND, row_id, tuple(MediaObject(KIND, key(row_id, n), "image/png", None, row_id) for n in names),
                      tuple((KIND, key(row_id, n), "crafted name") for n in rejected))


class VanishingSource(FilesystemSource):
    """A filesystem source whose files named ``vanishes*`` are removed between triage and transfer, and
    whose files named ``unreadable*`` cannot be looked at (an I/O error)."""

    def locate(self, key, limiter=None):
        if "/unreadable" in key:
            raise OSError("Input/output error")
        return super().locate(key, limiter)

    def open(self, key, limiter=None):
        if "/vanishes" in key:
            raise FileNotFoundError("removed since triage: %s" % key)
        return super().open(key, limiter)


def system_root(tmp_path, names):
    root = tmp_path / "system"
    for row_id, name in names:
        path = root / key(row_id, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * 10)
    return root


class Recording(trace.Tracer):
    def __init__(self):
        self.rows, self.outcomes, self.ended = [], [], False

    def row(self, row):
        self.rows.append(row.row_id)

    def outcome(self, kind, obj, outcome):
        self.outcomes.append((obj.row_id if obj is not None else None, outcome))

    def enumerated(self):
        self.ended = True


def run(tmp_path, rows, tracer):
    root = system_root(tmp_path, [(1, "there.png"), (2, "there.png"), (3, "vanishes.png"), (5, "there.png")])
    index = BucketIndex([(key(1, "there.png"), 10), (key(2, "there.png"), 10), (key(5, "there.png"), 10)])
    engine = ce.CopyEngine(None, "b", VanishingSource(str(root)), index=index, tracer=tracer, concurrency=3, retries=0)
    return engine.run(rows)


def test_the_engine_tells_its_tracer_every_row_and_every_outcome(tmp_path):
    tracer = Recording()
    rows = [row(1, "there.png"), row(2, "there.png", "gone.png"), row(3, "vanishes.png"), row(4, "unreadable.png"),
            row(5, "there.png", rejected=["x"])]
    result = run(tmp_path, rows, tracer)
    assert result["totals"] == {"rows": 5, "objects": 7, "copied": 0, "skipped": 3, "retired": 0, "missing_source": 1,
                                "failed": 3}
    assert result["requests"] == 0
    assert tracer.rows == [1, 2, 3, 4, 5] and tracer.ended
    # one outcome per object counted, each with its row (None: a refused name, which is no MediaObject)
    assert sorted(tracer.outcomes, key=repr) == sorted([
        (1, "skipped"), (2, "skipped"), (2, "missing_source"), (3, "failed"), (4, "failed"), (5, "skipped"),
        (None, "failed")], key=repr)


def test_the_default_tracer_follows_nothing(tmp_path):
    engine = ce.CopyEngine(None, "b", None)
    assert type(engine.tracer) is trace.Tracer
    assert run(tmp_path, [row(1, "there.png"), row(3, "vanishes.png")], None)["totals"]["failed"] == 1


def test_row_tracker_fed_by_the_engine_keeps_high_ids_and_rows_to_retry(tmp_path):
    """Failures in the producer thread (missing, unreadable) and in the workers (vanished before its
    transfer) are all tied to their row."""
    tracker = trace.RowTracker()
    rows = [row(1, "there.png"), row(2, "there.png", "gone.png"), row(4, "unreadable.png"), row(3, "vanishes.png")]
    run(tmp_path, rows, tracker)
    assert tracker.complete and not tracker.unknown
    out = tracker.kinds_record([KIND, "accounts/avatars"], SINCE,
                               {"kinds": {KIND: {"high_id": 100, "since": SINCE, "retry_ids": [1]}}})
    assert out[KIND] == {"since": SINCE, "high_id": 100, "retry_ids": [2, 3, 4]}
    assert out["accounts/avatars"] == {"since": SINCE, "high_id": 0, "retry_ids": []}
    assert trace.RowTracker().kinds_record([KIND], SINCE) is None  # no run: not complete
    fresh = trace.RowTracker()
    run(tmp_path / "again", rows, fresh)
    assert fresh.kinds_record([KIND], SINCE)[KIND]["high_id"] == 4


def test_row_tracker_refuses_incomplete_overflowing_or_untied_runs(tmp_path):
    tracker = trace.RowTracker()
    tracker.row(row(1, "a.png"))
    assert tracker.kinds_record([KIND], SINCE) is None  # the enumeration did not end
    tracker = trace.RowTracker(max_retry_ids=1)
    run(tmp_path / "one", [row(3, "vanishes.png"), row(4, "unreadable.png")], tracker)
    assert tracker.overflow and tracker.kinds_record([KIND], SINCE) is None
    # a refused file name (no MediaObject, so no row to select again): no record, the next run is full
    tracker = trace.RowTracker()
    run(tmp_path / "two", [row(5, "there.png", rejected=["x"])], tracker)
    assert tracker.unknown and tracker.kinds_record([KIND], SINCE) is None
