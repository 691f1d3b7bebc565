"""The bucket by HeadObject (plugins/module_utils/copy/head_index.py): what an incremental run looks up.

(Against a real Ceph RGW, with its request count: tests/integration/test_media_copy_incremental.py.)"""

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.head_index import HeadIndex
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import MediaObject, RowObjects
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import RateLimiter


class Answers:
    """head_object as S3 answers it: a size for the keys ending in there.png, an error for the others."""

    def __init__(self):
        self.asked = []

    def head_object(self, Bucket, Key):  # noqa: N803
        self.asked.append(Key)
        if Key.endswith("there.png"):
            return {"ContentLength": 7}
        raise KeyError(Key)


def row(kind, row_id, name):
    return RowObjects(kind, row_id, (MediaObject(kind, "k/%d/%s" % (row_id, name), "image/png", None, row_id),))


def test_head_index_looks_up_only_rows_the_record_has_seen():
    """An incremental run does not HEAD the objects of rows above the record's high id (no recorded run saw
    them: they are copied, never skipped); rows at or below it are looked up, per kind."""
    client = Answers()
    limiter = RateLimiter(0)
    index = HeadIndex(client, "b", "pre", limiter=limiter, workers=2, high_ids={"a": 10, "b": 100})
    rows = [row("a", 9, "there.png"), row("a", 11, "new.png"), row("b", 50, "gone.png"), row("c", 1, "x.png")]
    out = list(index.prefetch(iter(rows), batch=2))
    assert out == rows
    assert sorted(client.asked) == ["pre/k/1/x.png", "pre/k/50/gone.png", "pre/k/9/there.png"]
    assert index.unseen_rows == 1 and index.looked_up == 3
    assert limiter.requests == 3  # one token per HeadObject
    assert index.size_of("pre/k/11/new.png") is None  # -> copied


def test_sizes_are_those_of_the_batch_the_engine_is_at():
    """size_of answers for the rows just yielded: the engine triages a batch before the next is looked up."""
    index = HeadIndex(Answers(), "b", workers=1)
    rows = iter([row("a", 1, "there.png"), row("a", 2, "gone.png"), row("a", 3, "there.png")])
    seen = []
    for r in index.prefetch(rows, batch=2):
        seen.append((r.row_id, index.size_of(r.objects[0].key)))
    assert seen == [(1, 7), (2, None), (3, 7)]
    assert len(index) == 1  # only the last batch is kept
