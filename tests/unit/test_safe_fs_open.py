"""plugins/module_utils/fs/safe_fs_open.py: a file a/b/c below an anchor in one system call, never
through a link (openat2, the /proc/self/fd comparison, and the walk), on real files."""

import errno
import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs import safe_fs_open
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import Dir, UnsafePath


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "app"
    base.mkdir()
    return base


@pytest.mark.parametrize("path", ["openat2", "proc", "walk"])
def test_open_below_never_goes_through_a_link(root, tmp_path, path, monkeypatch):
    if path == "openat2" and safe_fs_open.OPENAT2[0] is None:
        pytest.skip("no openat2 on this kernel")
    if path != "openat2":
        monkeypatch.setattr(safe_fs_open, "OPENAT2", [None])
    fast = path != "walk"
    outside = tmp_path / "outside"
    (outside / "b").mkdir(parents=True)
    (outside / "b" / "f").write_bytes(b"secret")
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_bytes(b"media")
    (root / "plain").write_bytes(b"x")
    os.symlink(str(outside), str(root / "l"))            # a link in a directory component
    os.symlink(str(outside / "b" / "f"), str(root / "a" / "lf"))  # a link as the file itself
    os.mkfifo(str(root / "a" / "fifo"))
    with Dir.anchor(str(root)) as d:
        real = safe_fs_open.real_path(d) if fast else "/nowhere"      # a wrong real path forces the walk
        fd, st = safe_fs_open.open_below(d, "a/b/f", real)
        try:
            assert os.read(fd, 100) == b"media" and st.st_size == 5
        finally:
            os.close(fd)
        for rel in ("l/b/f", "a/lf"):
            with pytest.raises(UnsafePath, match="symbolic link") as info:
                safe_fs_open.open_below(d, rel, real)
            assert info.value.errno == errno.ELOOP
        with pytest.raises(UnsafePath) as info:             # never blocks, refused
            safe_fs_open.open_below(d, "a/fifo", real)
        assert info.value.errno == errno.EINVAL
        with pytest.raises(UnsafePath):                      # a directory is no file
            safe_fs_open.open_below(d, "a/b", real)
        with pytest.raises(FileNotFoundError):
            safe_fs_open.open_below(d, "a/missing", real)
        with pytest.raises(NotADirectoryError):
            safe_fs_open.open_below(d, "plain/f", real)
        with pytest.raises(UnsafePath):
            safe_fs_open.open_below(d, "a/../plain", real)


@pytest.mark.parametrize("path", ["openat2", "proc"])
def test_open_below_fast_path_after_the_anchor_moved(root, tmp_path, path, monkeypatch):
    """The anchor's directory renamed (by the app user) after anchoring: the descriptor still
    names it, the cached real path does not: the file is still read from the descriptor."""
    if path == "proc":
        monkeypatch.setattr(safe_fs_open, "OPENAT2", [None])
    (root / "a").mkdir()
    (root / "a" / "f").write_bytes(b"1")
    with Dir.anchor(str(root)) as d:
        real = safe_fs_open.real_path(d)
        os.rename(str(root), str(tmp_path / "moved"))
        os.mkdir(str(root))
        (root / "a").mkdir()
        (root / "a" / "f").write_bytes(b"decoy")
        fd, _st = safe_fs_open.open_below(d, "a/f", real)
        try:
            assert os.read(fd, 10) == b"1"
        finally:
            os.close(fd)


@pytest.mark.parametrize("path", ["openat2", "proc"])
def test_open_below_checks_the_relative_path(root, path, monkeypatch):
    if path == "proc":
        monkeypatch.setattr(safe_fs_open, "OPENAT2", [None])
    (root / "a").mkdir()
    (root / "a" / ".hidden").write_bytes(b"h")
    with Dir.anchor(str(root)) as d:
        fd, _st = safe_fs_open.open_below(d, "a/.hidden")
        os.close(fd)
        for bad in ("/etc/hostname", "a/./.hidden", "a//.hidden", "a/../a/.hidden", "a/", "", "a/\x00"):
            with pytest.raises(UnsafePath):
                safe_fs_open.open_below(d, bad)
