"""plugins/module_utils/fs/atomic.py: the one atomic write, safe in a directory another user owns."""

import json
import os
import stat
from pathlib import Path

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs import atomic
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import progress as copy_progress

APP_UID = 1000


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "outside" / "root-only"
    path.parent.mkdir()
    path.write_bytes(b"do not touch\n")
    os.chmod(path, 0o440)
    return path


def state(path):
    st = os.lstat(path)
    return path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def test_replaces_content_keeping_owner_group_mode(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"old")
    os.chown(target, APP_UID, APP_UID)
    os.chmod(target, 0o640)
    atomic.write_atomic(str(target), b"new")
    assert state(target) == (b"new", APP_UID, APP_UID, 0o640)
    assert os.listdir(tmp_path) == ["f"]


def test_new_file_mode_and_text(tmp_path):
    target = tmp_path / "p.json"
    atomic.write_atomic(str(target), "caf\udce9")  # surrogateescape'd text
    assert target.read_bytes() == b"caf\xe9"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o644


def test_refuses_a_link_at_the_target(tmp_path, victim):
    before = state(victim)
    link = tmp_path / "f"
    os.symlink(str(victim), str(link))
    with pytest.raises(atomic.AtomicWriteError, match="symbolic link"):
        atomic.write_atomic(str(link), b"pwned")
    with pytest.raises(atomic.AtomicWriteError, match="symbolic link"):
        atomic.read_bytes(str(link))
    assert state(victim) == before
    assert os.path.islink(link) and sorted(os.listdir(tmp_path)) == ["f", "outside"]


def test_refuses_a_directory_or_fifo(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(atomic.AtomicWriteError):
        atomic.write_atomic(str(tmp_path / "d"), b"x")
    os.mkfifo(str(tmp_path / "fifo"))
    with pytest.raises(atomic.AtomicWriteError):
        atomic.read_bytes(str(tmp_path / "fifo"))  # and it does not hang


def test_temporary_names_are_unpredictable_and_exclusive(tmp_path, victim, monkeypatch):
    """Links planted at every name an attacker could guess stay untouched; each write uses a new
    random name, opened with O_CREAT|O_EXCL|O_NOFOLLOW."""
    before = state(victim)
    target = tmp_path / ".env.production"
    target.write_bytes(b"A=1\n")
    for guess in ("..env.production.ansible-tmp", ".env.production.tmp", ".env.production.%d.tmp" % os.getpid()):
        os.symlink(str(victim), str(tmp_path / guess))
    opened = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):
        # every open for writing (the directories on the way are opened read-only by safe_fs)
        if kwargs.get("dir_fd") is not None and flags & (os.O_WRONLY | os.O_RDWR):
            opened.append((path, flags))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "open", spy)
    for n in range(3):
        atomic.write_atomic(str(target), b"A=%d\n" % n)
    names = [name for name, _flags in opened]
    assert len(set(names)) == 3
    for _name, flags in opened:
        assert flags & os.O_EXCL and flags & os.O_CREAT and flags & os.O_NOFOLLOW
    assert state(victim) == before
    assert target.read_bytes() == b"A=2\n"


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def boom(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", boom)
    with pytest.raises(OSError):
        atomic.write_atomic(str(target), b"new")
    assert os.listdir(tmp_path) == ["f"] and target.read_bytes() == b"old"


def test_backup_copy_keeps_owner_and_mode_and_refuses_links(tmp_path):
    target = tmp_path / "f"
    target.write_bytes(b"secret=1\n")
    os.chown(target, APP_UID, APP_UID)
    os.chmod(target, 0o600)
    backup = atomic.backup_copy(str(target), target.read_bytes(), os.lstat(target))
    assert backup.startswith(str(target) + ".") and backup.endswith("~")
    st = os.lstat(backup)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (APP_UID, 0o600)


def test_progress_file_never_written_through_links(tmp_path, victim):
    before = state(victim)
    progress = tmp_path / "progress.json"
    # the progress file's old temp name (".<name>.<pid>.tmp") planted as a link
    os.symlink(str(victim), str(tmp_path / (".progress.json.%d.tmp" % os.getpid())))
    copy_progress.write_json_atomic(str(progress), {"done": 1})
    assert json.loads(progress.read_text()) == {"done": 1}
    assert state(victim) == before
    os.unlink(progress)
    os.symlink(str(victim), str(progress))
    with pytest.raises(atomic.AtomicWriteError):
        copy_progress.write_json_atomic(str(progress), {"done": 2})
    assert state(victim) == before


def test_read_bytes_refuses_more_than_its_limit(tmp_path):
    path = tmp_path / "job"
    path.write_bytes(b"x" * 10)
    assert atomic.read_bytes(str(path), limit=10) == b"x" * 10
    with pytest.raises(atomic.AtomicWriteError, match="larger than 9 bytes"):
        atomic.read_bytes(str(path), limit=9)


# --- keep_original / restore_original (module config_original, the rollback) ----------------------------

def test_restore_original_keeps_owner_and_mode_of_the_replaced_file(tmp_path):
    live = tmp_path / ".env.production"
    live.write_bytes(b"S3_ENABLED=true\n")
    os.chown(live, APP_UID, APP_UID)
    os.chmod(live, 0o640)
    orig = tmp_path / ".env.production.fediverse-object-storage.orig"
    orig.write_bytes(b"S3_ENABLED=false\n")
    os.chmod(orig, 0o600)  # root's, as the earlier versions made it
    planned = atomic.restore_original(str(live), check_mode=True)
    assert planned["changed"] and planned["before"] == b"S3_ENABLED=true\n"
    assert live.read_bytes() == b"S3_ENABLED=true\n"  # check mode writes nothing
    done = atomic.restore_original(str(live))
    assert done["changed"] and done["found"]
    assert state(live) == (b"S3_ENABLED=false\n", APP_UID, APP_UID, 0o640)
    assert state(Path(done["backup_file"])) == (b"S3_ENABLED=true\n", APP_UID, APP_UID, 0o640)
    again = atomic.restore_original(str(live))
    assert not again["changed"] and "backup_file" not in again


def test_restore_original_of_an_absent_file_takes_the_directorys_owner(tmp_path):
    os.chown(tmp_path, APP_UID, APP_UID)
    orig = tmp_path / "default.yml.fediverse-object-storage.orig"
    orig.write_bytes(b"url: x\n")
    os.chmod(orig, 0o640)
    atomic.restore_original(str(tmp_path / "default.yml"))
    assert state(tmp_path / "default.yml") == (b"url: x\n", APP_UID, APP_UID, 0o640)


def test_restore_original_refuses_a_link_or_fifo_and_reports_no_original(tmp_path, victim):
    live = tmp_path / ".env.production"
    live.write_bytes(b"A=1\n")
    assert atomic.restore_original(str(live))["found"] is False
    orig = tmp_path / ".env.production.fediverse-object-storage.orig"
    os.symlink(str(victim), str(orig))
    with pytest.raises(atomic.AtomicWriteError, match="symbolic link"):
        atomic.restore_original(str(live), check_mode=True)
    with pytest.raises(atomic.AtomicWriteError, match="symbolic link"):
        atomic.restore_original(str(live))
    os.unlink(orig)
    os.mkfifo(str(orig))
    with pytest.raises(atomic.AtomicWriteError, match="not a regular file"):
        atomic.restore_original(str(live))  # and it does not hang
    assert live.read_bytes() == b"A=1\n"


def test_keep_original_copies_owner_and_mode_and_never_follows_links(tmp_path, victim):
    live = tmp_path / ".env.production"
    live.write_bytes(b"A=1\n")
    os.chown(live, APP_UID, APP_UID)
    os.chmod(live, 0o600)
    changed, kept = atomic.keep_original(str(live))
    assert changed and state(Path(kept)) == (b"A=1\n", APP_UID, APP_UID, 0o600)
    assert atomic.keep_original(str(live)) == (False, kept)
    live.write_bytes(b"A=2\n")
    assert atomic.keep_original(str(live), force=False) == (False, kept)
    assert Path(kept).read_bytes() == b"A=1\n"
    os.unlink(live)
    os.symlink(str(victim), str(live))
    before = state(victim)
    with pytest.raises(atomic.AtomicWriteError, match="symbolic link"):
        atomic.keep_original(str(live))
    assert Path(kept).read_bytes() == b"A=1\n" and state(victim) == before


def test_keep_original_leaves_the_kept_one_when_the_file_is_already_switched(tmp_path):
    """A re-run: the file already points at the bucket, so it is not the original (unless)."""
    env = tmp_path / ".env.production"
    env.write_text("S3_ENABLED=false\n")
    changed, kept = atomic.keep_original(str(env), unless=lambda data: b"S3_ENABLED=true" in data)
    assert changed and Path(kept).read_text() == "S3_ENABLED=false\n"
    env.write_text("S3_ENABLED=true\n")
    changed, kept = atomic.keep_original(str(env), unless=lambda data: b"S3_ENABLED=true" in data)
    assert not changed and Path(kept).read_text() == "S3_ENABLED=false\n"
    changed, kept = atomic.keep_original(str(env))
    assert changed and Path(kept).read_text() == "S3_ENABLED=true\n"
