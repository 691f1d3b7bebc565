"""FilesystemSource.size: only "file not found" is a missing source (real files in a temp dir)."""

import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import FilesystemSource, UnsafeSource


def test_not_found_is_none_other_errors_raise(tmp_path):
    (tmp_path / "cache" / "a").mkdir(parents=True)
    (tmp_path / "cache" / "a" / "f.png").write_bytes(b"12345")
    (tmp_path / "plain").write_bytes(b"x")
    src = FilesystemSource(str(tmp_path))
    assert src.size("cache/a/f.png") == 5
    assert src.size("cache/a/missing.png") is None          # ENOENT
    assert src.size("plain/under-a-file.png") is None       # ENOTDIR: a path that cannot exist
    # A looping link (ELOOP when followed): never followed, never "not found": reported as unsafe.
    os.symlink("loop", tmp_path / "cache" / "loop")
    with pytest.raises(UnsafeSource):
        src.size("cache/loop/f.png")
    # A special file is no media file: nothing to copy (opened non-blocking, never read).
    os.mkfifo(tmp_path / "cache" / "fifo")
    assert src.size("cache/fifo") is None


def test_a_file_of_another_owner_or_a_hard_linked_root_file_is_unsafe(tmp_path):
    """The tree belongs to root here: a file of another user, or a root file with a second link
    somewhere (a hard link a user may have made to a root-only file), is never uploaded."""
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "ok.png").write_bytes(b"ok")
    (tmp_path / "cache" / "other.png").write_bytes(b"other")
    os.chown(tmp_path / "cache" / "other.png", 12345, 12345)
    (tmp_path / "private.key").write_bytes(b"secret")
    os.link(tmp_path / "private.key", tmp_path / "cache" / "linked.png")
    src = FilesystemSource(str(tmp_path))
    assert src.size("cache/ok.png") == 2
    with pytest.raises(UnsafeSource, match="owned by uid 12345, not by uid 0"):
        src.size("cache/other.png")
    with pytest.raises(UnsafeSource, match="2 hard links"):
        src.open("cache/linked.png")
