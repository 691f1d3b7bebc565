"""The safe file-system room (plugins/module_utils/fs/safe_fs.py), on real files.

The hostile cases run as root against a tree an unprivileged user owns (the `appuser` fixture),
with links, FIFOs and swapped directories planted the way that user could.
"""

import errno
import os
import stat
import threading

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs import safe_fs
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import Dir, UnsafePath


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "app"
    base.mkdir()
    return base


def test_file_mode_keeps_permission_bits_only():
    assert safe_fs.file_mode(0o104755) == 0o644
    assert safe_fs.file_mode(0o6777) == 0o666
    assert safe_fs.file_mode(0o600) == 0o600
    assert safe_fs.dir_mode(0o43777) == 0o777


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\x00b", None])
def test_a_name_is_one_plain_component(root, name):
    with Dir.anchor(str(root)) as d, pytest.raises(UnsafePath):
        d.lstat(name)


def test_anchor_follows_a_link_only_root_can_change(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (real / "f").write_bytes(b"x")
    holder = tmp_path / "holder"
    holder.mkdir(mode=0o755)
    os.chmod(holder, 0o755)
    os.symlink(str(real), str(holder / "link"))
    with Dir.anchor(str(holder / "link")) as d:
        assert d.read_bytes("f") == b"x"
    # The same link in a directory others may write: refused, with the path to give.
    os.chmod(holder, 0o777)
    with pytest.raises(UnsafePath) as info:
        Dir.anchor(str(holder / "link"))
    assert str(real) in str(info.value)


def test_anchor_refuses_a_link_the_app_user_owns(tmp_path, appuser):
    real = tmp_path / "real"
    real.mkdir()
    holder = tmp_path / "holder"
    holder.mkdir()
    os.symlink(str(real), str(holder / "link"))
    os.lchown(str(holder / "link"), appuser.uid, appuser.gid)
    with pytest.raises(UnsafePath):
        Dir.anchor(str(holder / "link"))


def test_walk_below_the_anchor_never_follows_a_link(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    os.symlink(str(outside), str(root / "sub"))
    os.symlink(str(outside / "secret"), str(root / "file"))
    with Dir.anchor(str(root)) as d:
        with pytest.raises(UnsafePath):
            d.open_dir("sub")
        with pytest.raises(UnsafePath):
            d.open_dir("sub/x", create=True)
        with pytest.raises(UnsafePath):
            d.open_file("file")
        with pytest.raises(FileNotFoundError):
            d.open_file("missing")


def test_a_fifo_is_refused_without_blocking(root):
    os.mkfifo(str(root / "fifo"))
    done = []

    def go():
        with Dir.anchor(str(root)) as d, pytest.raises(UnsafePath):
            d.open_file("fifo")
        done.append(True)

    worker = threading.Thread(target=go, daemon=True)
    worker.start()
    worker.join(5)
    assert done == [True]


def test_open_file_reads_blocking_after_the_nonblocking_open(root):
    (root / "f").write_bytes(b"abc" * 1000)
    with Dir.anchor(str(root)) as d:
        fd, st = d.open_file("f")
        try:
            assert stat.S_ISREG(st.st_mode)
            import fcntl
            assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
        finally:
            os.close(fd)
        with pytest.raises(UnsafePath):
            d.read_bytes("f", limit=10)


def test_write_file_appears_only_when_complete_and_checked(root):
    with Dir.anchor(str(root)) as d:
        sub = d.open_dir("a/b", create=True, owner=(1234, 1234))
        with sub:
            assert sub.stat().st_uid == 1234

            def refuse(size, md5):
                assert size == 5
                raise ValueError("no")

            with pytest.raises(ValueError):
                sub.write_file("f", b"hello", check=refuse)
            assert os.listdir(sub.fd) == []
            seen = {}
            size = sub.write_file("f", b"hello", owner=(1234, 1234), mode=0o4755,
                                  check=lambda s, m: seen.update(size=s, md5=m))
            assert size == 5 and seen == {"size": 5, "md5": "5d41402abc4b2a76b9719d911017c592"}
            st = os.stat("f", dir_fd=sub.fd)
            assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == 1234
            assert os.listdir(sub.fd) == ["f"]
            with pytest.raises(FileExistsError):
                sub.write_file("f", b"other")
            assert (root / "a" / "b" / "f").read_bytes() == b"hello"


def test_write_file_never_replaces_a_planted_link(root, tmp_path):
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    os.symlink(str(target), str(root / "f"))
    with Dir.anchor(str(root)) as d:
        with pytest.raises(FileExistsError):
            d.write_file("f", b"evil")
        with pytest.raises(UnsafePath):
            d.write_file("f", b"evil", replace=True)
    assert target.read_bytes() == b"keep"
    assert os.path.islink(str(root / "f"))


def test_replace_keeps_the_name_atomic(root):
    (root / "conf").write_bytes(b"old")
    with Dir.anchor(str(root)) as d:
        d.write_file("conf", b"new", replace=True, mode=0o640)
    assert (root / "conf").read_bytes() == b"new"
    assert stat.S_IMODE(os.stat(str(root / "conf")).st_mode) == 0o640
    assert sorted(os.listdir(str(root))) == ["conf"]


def test_rename_noreplace_and_expect(root):
    (root / "cache").mkdir()
    (root / "cache.old").mkdir()
    with Dir.anchor(str(root)) as d:
        st = d.lstat("cache")
        with pytest.raises(FileExistsError):
            d.rename_noreplace("cache", "cache.old", expect=(st.st_dev, st.st_ino))
        os.rmdir(str(root / "cache.old"))
        other = d.lstat("cache.old")
        assert other is None
        with pytest.raises(UnsafePath):
            d.rename_noreplace("cache", "cache.old", expect=(st.st_dev, st.st_ino + 1))
        d.rename_noreplace("cache", "cache.old", expect=(st.st_dev, st.st_ino))
    assert os.path.isdir(str(root / "cache.old")) and not os.path.exists(str(root / "cache"))


def test_remove_tree_checks_the_inode_and_never_follows(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    tree = root / "old"
    (tree / "x" / "y").mkdir(parents=True)
    (tree / "x" / "y" / "f").write_bytes(b"1")
    (tree / "g").write_bytes(b"2")
    os.symlink(str(outside), str(tree / "link"))
    with Dir.anchor(str(root)) as d:
        st = d.lstat("old")
        with pytest.raises(UnsafePath):
            d.remove_tree("old", (st.st_dev, st.st_ino + 1))
        assert d.remove_tree("old", (st.st_dev, st.st_ino)) == 3
    assert not os.path.lexists(str(tree))
    assert (outside / "keep").read_bytes() == b"k"


def test_remove_tree_refuses_a_swapped_directory(root, tmp_path):
    (root / "old").mkdir()
    (root / "old" / "f").write_bytes(b"1")
    with Dir.anchor(str(root)) as d:
        st = d.lstat("old")
        os.rename(str(root / "old"), str(root / "moved"))
        (root / "old").mkdir()
        (root / "old" / "precious").write_bytes(b"p")
        with pytest.raises(UnsafePath):
            d.remove_tree("old", (st.st_dev, st.st_ino))
    assert (root / "old" / "precious").read_bytes() == b"p"


def test_remove_file_checks_the_inode(root):
    (root / "f").write_bytes(b"1")
    with Dir.anchor(str(root)) as d:
        st = d.lstat("f")
        (root / "f2").write_bytes(b"new")
        os.rename(str(root / "f2"), str(root / "f"))  # the app swaps the file for another one
        with pytest.raises(UnsafePath):
            d.remove_file("f", (st.st_dev, st.st_ino))
        st = d.lstat("f")
        d.remove_file("f", (st.st_dev, st.st_ino))
    assert not os.path.exists(str(root / "f"))


def test_walk_lists_files_and_links_without_entering_links(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o").write_bytes(b"o")
    (root / "a").mkdir()
    (root / "a" / "f").write_bytes(b"1")
    os.symlink(str(outside), str(root / "l"))
    with Dir.anchor(str(root)) as d:
        found = {"/".join(parts): stat.S_ISLNK(st.st_mode) for parts, st in d.walk()}
    assert found == {"a/f": False, "l": True}


def test_error_numbers(root):
    with Dir.anchor(str(root)) as d:
        with pytest.raises(OSError) as info:
            d.open_dir("nope")
        assert info.value.errno == errno.ENOENT


def test_remove_stale_temporaries_removes_only_our_own_leftovers(root, tmp_path, appuser):
    """A killed write_file("a.png") leaves ``.a.png.fos-<16 hex>.tmp`` owned by root: removed. What the app
    user made (its own file, a link, a hard link to a root file, a directory) under such a name, and the
    temporaries of other names, are left alone."""
    ours = ".a.png.fos-0123456789abcdef.tmp"
    (root / ours).write_bytes(b"partial")
    (root / ".a.png.fos-fedcba9876543210.tmp").write_bytes(b"partial too")
    (root / ".b.png.fos-0123456789abcdef.tmp").write_bytes(b"another name's")
    (root / ".a.png.fos-0123456789ABCDEF.tmp").write_bytes(b"not our naming")
    (root / ".a.png.fos-0123456789abcdef.tmp.x").write_bytes(b"not our naming")
    (root / "a.png").write_bytes(b"the final name")
    secret = tmp_path / "secret"
    secret.write_bytes(b"root only")
    os.chmod(str(secret), 0o600)
    appuser.own(str(root))
    os.chown(str(root / ours), 0, 0)
    os.chown(str(root / ".a.png.fos-fedcba9876543210.tmp"), 0, 0)

    here = os.open(str(root), os.O_RDONLY | os.O_DIRECTORY)  # the user's own directory (pytest's parents are 0700)

    def plant():
        fd = os.open(".a.png.fos-1111111111111111.tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=here)
        os.write(fd, b"the app user's")
        os.close(fd)
        os.symlink(str(secret), ".a.png.fos-2222222222222222.tmp", dir_fd=here)
        os.mkdir(".a.png.fos-3333333333333333.tmp", dir_fd=here)

    try:
        appuser.call(plant)
    finally:
        os.close(here)
    assert os.stat(str(root / ".a.png.fos-1111111111111111.tmp")).st_uid == appuser.uid
    os.link(str(secret), str(root / ".a.png.fos-4444444444444444.tmp"))  # as a hard link the user could make
    before = set(os.listdir(str(root)))
    with Dir.anchor(str(root)) as d:
        removed = d.remove_stale_temporaries("a.png")
    assert sorted(removed) == sorted([ours, ".a.png.fos-fedcba9876543210.tmp"])
    assert set(os.listdir(str(root))) == before - set(removed)
    assert secret.read_bytes() == b"root only"


def test_entries_lists_one_level_without_following(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "f").write_bytes(b"1")
    (root / "sub").mkdir()
    (root / "sub" / "deep").write_bytes(b"2")
    os.symlink(str(outside), str(root / "l"))
    os.mkfifo(str(root / "p"))
    with Dir.anchor(str(root)) as d:
        found = {name: stat.S_IFMT(st.st_mode) for name, st in d.entries()}
    assert found == {"f": stat.S_IFREG, "sub": stat.S_IFDIR, "l": stat.S_IFLNK, "p": stat.S_IFIFO}
