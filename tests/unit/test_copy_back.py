"""plugins/module_utils/copy/back.py on real files in a temp directory: the rollback's copy back
writes several objects of one new directory at once (its workers share the directories they create),
through the safe room (safe_fs). Against Ceph RGW, killed mid-file too: tests/integration/test_copy_back_rgw.py."""

import io
import os
import threading

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import back as cb
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import etag_md5
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import Dir, UnsafePath

OWNER = (os.getuid(), os.getgid())


def test_workers_writing_into_one_new_directory_all_succeed(tmp_path):
    """The original/ and small/ of a new media attachment (and its siblings) land in directories none of
    them exist yet: each worker may find one missing and create it while another just did."""
    for attempt in range(30):
        root = tmp_path / str(attempt)
        root.mkdir()
        anchor = Dir.anchor(str(root))
        start = threading.Barrier(8)
        errors = []

        def write(i, anchor=anchor, start=start, errors=errors):
            start.wait()
            try:
                cb.write_file(anchor, ["media_attachments", "files", "000", "900", "%03d" % (i % 2), "f%d.png" % i],
                              io.BytesIO(b"x%d" % i), OWNER, cb.FILE_MODE)
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))

        workers = [threading.Thread(target=write, args=(i,)) for i in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        anchor.close()
        assert errors == [], "attempt %d" % attempt
        for i in range(8):
            path = root / "media_attachments" / "files" / "000" / "900" / ("%03d" % (i % 2)) / ("f%d.png" % i)
            assert path.read_bytes() == b"x%d" % i
        assert oct((root / "media_attachments" / "files" / "000" / "900").stat().st_mode & 0o777) == oct(cb.DIR_MODE)


def _mkdir_after(make_first):
    """os.mkdir as it behaves when another worker (``make_first``) acted between the lookup and the mkdir."""
    real = os.mkdir

    def mkdir(name, mode=0o777, *, dir_fd=None):
        make_first(name, dir_fd)
        return real(name, mode, dir_fd=dir_fd)
    return mkdir


def test_a_directory_made_by_another_worker_between_lookup_and_mkdir_is_used(tmp_path, monkeypatch):
    made = []

    def other_worker(name, dir_fd):
        if name not in made:
            made.append(name)
            os.mkdir(name, 0o755, dir_fd=dir_fd)

    with Dir.anchor(str(tmp_path)) as anchor:
        monkeypatch.setattr(os, "mkdir", _mkdir_after(other_worker))
        cb.write_file(anchor, ["a", "b", "f.png"], io.BytesIO(b"body"), OWNER, cb.FILE_MODE)
    assert made == ["a", "b"]
    assert (tmp_path / "a" / "b" / "f.png").read_bytes() == b"body"


def test_a_link_planted_between_lookup_and_mkdir_is_not_followed(tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "root").mkdir()

    def attacker(name, dir_fd):
        if name == "a":
            os.symlink(str(elsewhere), name, dir_fd=dir_fd)

    with Dir.anchor(str(tmp_path / "root")) as anchor:
        monkeypatch.setattr(os, "mkdir", _mkdir_after(attacker))
        with pytest.raises(UnsafePath, match="root/a"):
            cb.write_file(anchor, ["a", "f.png"], io.BytesIO(b"body"), OWNER, cb.FILE_MODE)
    assert os.listdir(str(elsewhere)) == []


@pytest.mark.parametrize("etag, md5", [
    ('"5d41402abc4b2a76b9719d911017c592"', "5d41402abc4b2a76b9719d911017c592"),
    ('"5D41402ABC4B2A76B9719D911017C592"', "5d41402abc4b2a76b9719d911017c592"),
    ('"5d41402abc4b2a76b9719d911017c592-2"', None),  # multipart: not an MD5 of the body
    (None, None), ("", None), ('"abc"', None)])
def test_etag_md5(etag, md5):
    assert etag_md5(etag) == md5
