"""plugins/module_utils/misskey/drive_engine.py: how the move opens files/ and each local file, the
checksum it compares with the bucket, and what a check-mode pass over rows counts and reports (no
database or bucket is touched in check mode before the flip).

The uploads, the flips and the rollback run on PostgreSQL and Ceph RGW in
tests/integration/test_misskey_drive_move.py and test_misskey_drive_hostile.py.
"""

import hashlib
import io
import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import DriveMoveError
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_engine import (
    DriveMover,
    Unsafe,
    _md5_and_size,
    open_files_dir,
    open_local,
)

U = "0b6f3b1e-2c4d-4f6a-8b9c-0d1e2f3a4b5c"
V = "1c7a4c2f-3d5e-4a7b-9cad-1e2f3a4b5c6d"
W = "2d8b5d3a-4e6f-4b8c-adbe-2f3a4b5c6d7e"
X = "3e9c6e4b-5f70-4c9d-becf-3a4b5c6d7e8f"
INSTANCE = "https://mk.example"
SETTINGS = dict(bucket="mk-media", prefix="misskey", base_url="https://s3.mk.example", set_public_read=True)


@pytest.fixture
def files(tmp_path):
    directory = tmp_path / "files"
    directory.mkdir()
    return directory


def test_open_files_dir(tmp_path, files):
    assert open_files_dir(str(tmp_path / "absent")) is None  # every file is then missing
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(DriveMoveError, match="cannot open the directory"):
        open_files_dir(str(tmp_path / "file"))
    with open_files_dir(str(files)) as anchored:
        assert anchored.lstat("nothing") is None


def test_open_local_regular_absent_link_and_fifo(tmp_path, files):
    (files / U).write_bytes(b"content")
    os.symlink(str(files / U), str(files / ("thumbnail-" + U)))
    os.mkfifo(str(files / ("webpublic-" + U)))
    assert open_local(None, U) is None  # no files/: missing
    with open_files_dir(str(files)) as anchored:
        with open_local(anchored, U) as handle:
            assert handle.read() == b"content"
        assert open_local(anchored, V) is None
        with pytest.raises(Unsafe, match="symbolic link"):
            open_local(anchored, "thumbnail-" + U)
        with pytest.raises(Unsafe, match="not a regular file"):  # never blocks on the FIFO
            open_local(anchored, "webpublic-" + U)


def test_md5_and_size_reads_everything_and_rewinds():
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    handle = io.BytesIO(data)
    assert _md5_and_size(handle) == (hashlib.md5(data).hexdigest(), len(data))  # noqa: S324
    assert handle.tell() == 0


def test_same_object_by_size_and_etag():
    md5 = hashlib.md5(b"abc").hexdigest()  # noqa: S324
    assert DriveMover._same({"ContentLength": 3, "ETag": '"%s"' % md5}, md5, 3)
    assert not DriveMover._same({"ContentLength": 4, "ETag": '"%s"' % md5}, md5, 3)
    assert not DriveMover._same({"ContentLength": 3, "ETag": '"%s-2"' % md5}, md5, 3)  # multipart: not comparable
    assert not DriveMover._same(None, md5, 3)


def row(key, **more):
    r = dict(id="id-" + key[:4], url="%s/files/%s" % (INSTANCE, key), accessKey=key,
             thumbnailAccessKey="thumbnail-" + key, webpublicAccessKey="webpublic-" + key,
             thumbnailUrl=None, webpublicUrl=None, md5=None, storedInternal=True)
    r.update(more)
    return r


def test_check_mode_counts_moves_missing_unsafe_and_refused_rows(files):
    """In check mode a row is planned and its files opened, nothing else: no database, no bucket."""
    (files / U).write_bytes(b"u")
    (files / ("thumbnail-" + U)).write_bytes(b"t")
    (files / V).write_bytes(b"v")  # its thumbnail is missing
    os.symlink(str(files / U), str(files / W))
    (files / X).write_bytes(b"x")  # moved too, past the sample's size
    mover = DriveMover(None, None, SETTINGS, str(files), INSTANCE, check_mode=True, sample_size=1)
    rows = [row(U, thumbnailUrl="%s/files/thumbnail-%s" % (INSTANCE, U)),
            row(V, thumbnailUrl="%s/files/thumbnail-%s" % (INSTANCE, V)),
            row(W),
            row(X),
            row(U, id="bad", accessKey="../etc/passwd")]
    with open_files_dir(str(files)) as anchored:
        for r in rows:
            mover._one(None, r, anchored)
    result = mover.result()
    assert result["stats"] == dict(candidates=0, moved=2, objects_uploaded=0, objects_present=0,
                                   dependents_rewritten=0, missing=1, changed_meanwhile=0, refused=1, unsafe=1)
    assert result["changed"] is True  # a check run says what would change
    assert result["missing"] == [{"id": "id-" + V[:4], "files": ["thumbnail-" + V]}]
    assert result["unsafe"] == [{"id": "id-" + W[:4], "files": [W],
                                 "reason": "files/%s is a symbolic link (not followed)" % W}]
    assert result["refused"][0]["id"] == "bad" and "not a local file name" in result["refused"][0]["reason"]
    assert result["sample"] == [dict(
        id="id-" + U[:4], objects=["misskey/" + U, "misskey/thumbnail-" + U],
        before={"accessKey": U, "url": "%s/files/%s" % (INSTANCE, U), "thumbnailAccessKey": "thumbnail-" + U,
                "thumbnailUrl": "%s/files/thumbnail-%s" % (INSTANCE, U), "storedInternal": True},
        after={"accessKey": "misskey/" + U, "url": "https://s3.mk.example/misskey/" + U,
               "thumbnailAccessKey": "misskey/thumbnail-" + U,
               "thumbnailUrl": "https://s3.mk.example/misskey/thumbnail-" + U, "storedInternal": False})]
    assert (result["base_url"], result["prefix"]) == ("https://s3.mk.example", "misskey")


def test_result_changed_and_lists_capped():
    mover = DriveMover(None, None, SETTINGS, "/nonexistent", INSTANCE)
    assert mover.result()["changed"] is False
    mover.missing = [{"id": str(n)} for n in range(60)]
    mover.stats["objects_uploaded"] = 1  # an upload without a flip (changed meanwhile) still changed the bucket
    result = mover.result()
    assert result["changed"] is True and len(result["missing"]) == 50
    assert DriveMover(None, None, SETTINGS, "d", INSTANCE, batch_size=0, limit="3").batch_size == 1
