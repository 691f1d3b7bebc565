"""misskey_drive_move against a files/ tree owned by Misskey's own unprivileged user (issue 20, findings
4, 9, 10 and the restore kill test): real PostgreSQL (Misskey 2025.x tables, tests/fixtures/misskey_drive.py),
real Ceph RGW over HTTPS, the tree owned by the ``appuser`` fixture (a real user made with useradd) and
every plant (setuid files, FIFOs, links) made AS that user, through a descriptor of files/ it owns.
"""

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
import time

import pytest

from tests.ansible_helpers import REPO, ansible_env, descendants, kill_tree, run_playbook
from tests.fixtures.misskey_drive import PNG, WEBP
from tests.misskey_drive_support import MOVE, PREFIX, build_drive, objects, row

VERSION = "2025.4.0"  # the file handling does not depend on the version
BIG = 8 * 1024 * 1024  # objects of a few MB, so that a kill lands mid-file


@pytest.fixture
def drive(tmp_path, pg, rgw, bucket, appuser):
    d = build_drive(pg, rgw, bucket, tmp_path, VERSION, db_prefix="mkh_")
    d.owner = appuser
    appuser.own(d.files_dir)  # Misskey's files/ and every file in it belong to Misskey's user
    return d


def as_app(d, fn):
    """Run ``fn(dir_fd)`` as the app's user, ``dir_fd`` an open descriptor of its files/ (the user needs no
    access to the test's directories above it, exactly as it has none above the app on some hosts)."""
    fd = os.open(d.files_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        d.owner.call(fn, fd)
    finally:
        os.close(fd)


def md5_of(path):
    with open(path, "rb") as handle:
        return hashlib.md5(handle.read()).hexdigest()


def moved(pg, d, r):
    return row(pg, d, r["id"])["accessKey"] == "%s/%s" % (PREFIX, r["accessKey"])


def soak_passed(pg, d):
    pg.execute("UPDATE fediverse_object_storage_drive_journal SET flipped_at = now() - interval '2 days', "
               "updated_at = now() - interval '2 days'", d.db)


def play(d, state, **extra):
    return dict(d.extra, move_state=state, **extra)


PURGE = MOVE.replace("batch_size: 2", "batch_size: 2\n        soak_days: 1")


# --- finding 4: restored files never copy a setuid (or executable) sibling's mode -----------------------------

def test_rollback_after_purge_never_copies_a_setuid_sibling_mode(pg, s3, drive):
    d = drive
    assert run_playbook(MOVE, extra_vars=d.extra).rc == 0
    soak_passed(pg, d)
    purge = run_playbook(PURGE, extra_vars=play(d, "purged"))
    assert purge.rc == 0 and purge.task("Move the drive")["purge_stats"]["files_deleted"] == 9, purge
    photo_names = (d.photo["accessKey"], d.photo["thumbnailAccessKey"], d.photo["webpublicAccessKey"])
    assert not any(os.path.lexists(os.path.join(d.files_dir, n)) for n in photo_names)

    def plant_setuid(dir_fd):  # as the app's user: most of files/ is now setuid 4755
        for n in range(30):
            fd = os.open("planted-%02d" % n, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
            os.write(fd, b"#!/bin/sh\nid\n")
            os.fchmod(fd, 0o4755)
            os.close(fd)

    as_app(d, plant_setuid)
    assert os.stat(os.path.join(d.files_dir, "planted-00")).st_mode & 0o7777 == 0o4755

    back = run_playbook(MOVE, extra_vars=play(d, "rolled_back"))
    assert back.rc == 0, back
    assert back.task("Move the drive")["written_back"] == 9
    for r in (d.photo, d.plain, d.svg, d.archive, d.avatar):
        assert row(pg, d, r["id"])["accessKey"] == r["accessKey"]
    for name in photo_names + (d.plain["accessKey"], d.avatar["accessKey"]):
        info = os.lstat(os.path.join(d.files_dir, name))
        assert stat.S_ISREG(info.st_mode), name
        assert oct(info.st_mode & 0o7777) == oct(0o644), name  # the policy: no setuid, setgid, sticky, x bit
        assert (info.st_uid, info.st_gid) == (d.owner.uid, d.owner.gid), name  # the app's user, as files/
    assert md5_of(os.path.join(d.files_dir, d.photo["accessKey"])) == d.photo["md5"]


# --- findings 9 and 10: a FIFO or a link where a drive file should be --------------------------------------

def _release_fifos(paths, stop, released):
    """Until ``stop``: open every FIFO for writing without blocking, which wakes a reader blocked opening it
    (only a hanging move has one). A safety net that keeps a failing test from hanging for ever."""
    time.sleep(45)
    while not stop.is_set():
        for path in paths:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                continue  # ENXIO: nobody is reading it
            released.append(path)
            os.close(fd)
        time.sleep(0.2)


def test_a_fifo_named_like_a_drive_file_is_refused_and_the_rest_moved(pg, s3, drive):
    d = drive
    fifo_key = d.plain["accessKey"]

    def plant_fifo(dir_fd):
        os.unlink(fifo_key, dir_fd=dir_fd)
        os.mkfifo(fifo_key, 0o644, dir_fd=dir_fd)

    as_app(d, plant_fifo)
    fifo = os.path.join(d.files_dir, fifo_key)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    stop, released = threading.Event(), []
    waker = threading.Thread(target=_release_fifos, args=([fifo], stop, released), daemon=True)
    waker.start()
    started = time.monotonic()
    try:
        result = run_playbook(MOVE, extra_vars=d.extra, timeout=600)
    finally:
        stop.set()
    assert not released, "the move hung on the FIFO for %.0f s" % (time.monotonic() - started)
    assert result.rc == 0, result
    task = result.task("Move the drive")
    assert task["stats"]["moved"] == 4 and task["stats"]["unsafe"] == 1 and task["stats"]["missing"] == 1, task
    [unsafe] = task["unsafe"]
    assert unsafe["id"] == d.plain["id"] and unsafe["files"] == [fifo_key], unsafe
    assert "not a regular file" in unsafe["reason"], unsafe
    assert not moved(pg, d, d.plain) and row(pg, d, d.plain["id"])["url"] == d.plain["url"]
    for r in (d.photo, d.svg, d.archive, d.avatar):
        assert moved(pg, d, r), r["name"]
    assert "%s/%s" % (PREFIX, fifo_key) not in objects(s3, d.bucket)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # left as it is
    journal = dict(pg.execute("SELECT file_id, state FROM fediverse_object_storage_drive_journal", d.db))
    assert journal[d.plain["id"]] == "unsafe"

    again = run_playbook(MOVE, extra_vars=d.extra, timeout=120)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
    assert again.task("Move the drive")["stats"]["unsafe"] == 1


def test_a_symlinked_drive_file_is_refused_and_the_rest_moved(tmp_path, pg, s3, drive):
    d = drive
    secret = tmp_path / "root-only"
    secret.write_bytes(b"root's secret")
    os.chmod(str(secret), 0o600)
    link_key = d.svg["thumbnailAccessKey"]  # a variant: the whole row stays
    svg_original = os.path.join(d.files_dir, d.svg["accessKey"])
    with open(svg_original, "rb") as handle:
        svg_bytes = handle.read()

    def plant_link(dir_fd):
        os.unlink(link_key, dir_fd=dir_fd)
        os.symlink(str(secret), link_key, dir_fd=dir_fd)

    as_app(d, plant_link)
    result = run_playbook(MOVE, extra_vars=d.extra, timeout=300)
    assert result.rc == 0, result
    task = result.task("Move the drive")
    assert task["stats"]["moved"] == 4 and task["stats"]["unsafe"] == 1, task
    [unsafe] = task["unsafe"]
    assert unsafe["id"] == d.svg["id"] and unsafe["files"] == [link_key] and "symbolic link" in unsafe["reason"]
    assert not moved(pg, d, d.svg)
    for r in (d.photo, d.plain, d.archive, d.avatar):  # before and after the refused row
        assert moved(pg, d, r), r["name"]
    keys = objects(s3, d.bucket)
    assert not {k for k in keys if d.svg["accessKey"] in k or d.svg["thumbnailAccessKey"] in k}, keys
    assert all(s3.get_object(Bucket=d.bucket, Key=k)["Body"].read() != b"root's secret" for k in keys)

    again = run_playbook(MOVE, extra_vars=d.extra, timeout=300)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again  # the moved rows stay done

    # The admin puts the real file back: the next run moves that row too.
    thumbnail = WEBP + b"t3"

    def put_back(dir_fd):
        os.unlink(link_key, dir_fd=dir_fd)
        fd = os.open(link_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
        os.write(fd, thumbnail)
        os.close(fd)

    as_app(d, put_back)
    fixed = run_playbook(MOVE, extra_vars=d.extra, timeout=300)
    assert fixed.rc == 0 and fixed.task("Move the drive")["stats"]["moved"] == 1, fixed
    assert moved(pg, d, d.svg)
    for key, body in ((d.svg["accessKey"], svg_bytes), (link_key, thumbnail)):
        assert s3.get_object(Bucket=d.bucket, Key="%s/%s" % (PREFIX, key))["Body"].read() == body


# --- the kill test: a restore killed mid-file, then run again ----------------------------------------------

def _temporaries(files_dir):
    """{name: size} of the regular files in files/ that are temporary files of a write-back."""
    found = {}
    with os.scandir(files_dir) as entries:
        for entry in entries:
            if ".fos-" in entry.name:
                try:
                    info = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(info.st_mode):
                    found[entry.name] = info.st_size
    return found


def _is_module(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            return b"AnsiballZ" in handle.read()
    except OSError:
        return False


def test_restore_killed_mid_file_then_rerun_ends_byte_identical(tmp_path, pg, s3, drive):
    d = drive
    big = [d.add("big-%d.png" % n, "image/png", PNG + os.urandom(BIG)) for n in range(6)]
    d.owner.own(d.files_dir)
    originals = {r["accessKey"]: r["md5"] for r in big}
    assert run_playbook(MOVE, extra_vars=d.extra).rc == 0
    soak_passed(pg, d)
    purge = run_playbook(PURGE, extra_vars=play(d, "purged"))
    assert purge.rc == 0 and purge.task("Move the drive")["purge_stats"]["files_deleted"] == 15, purge
    assert not any(os.path.lexists(os.path.join(d.files_dir, k)) for k in originals)

    playbook = tmp_path / "rollback.yml"
    playbook.write_text(MOVE)
    inventory = tmp_path / "inventory"
    inventory.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps(play(d, "rolled_back")))
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook),
                             "-i", str(inventory), "-e", "@%s" % extra], env=ansible_env(), cwd=str(REPO),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    partial = None
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            for name, size in _temporaries(d.files_dir).items():
                if 0 < size < BIG and any(key in name for key in originals):  # a big file, mid-way
                    partial = (name, size)
                    break
            if partial:
                break
    finally:
        kill_tree(proc)
    assert partial, "the kill did not land mid-file (the rollback ended with rc %s)" % proc.returncode
    time.sleep(1)
    left = _temporaries(d.files_dir)
    assert left and not [p for p in descendants(os.getpid()) if _is_module(p)], "the module was not killed"
    assert min(left.values()) < BIG + len(PNG), left  # a partial file was left behind (under its temporary name)
    # No drive name holds a partial file: each is absent or complete.
    for key, md5 in originals.items():
        path = os.path.join(d.files_dir, key)
        if os.path.lexists(path):
            assert md5_of(path) == md5, key

    again = run_playbook(MOVE, extra_vars=play(d, "rolled_back"))
    assert again.rc == 0, again
    assert _temporaries(d.files_dir) == {}  # nothing half-written is left behind, under any name
    task = again.task("Move the drive")
    assert task["temporaries_removed"] >= 1 and task["written_back"] >= 1, task
    for r in big + [d.photo, d.plain, d.svg, d.archive, d.avatar]:
        assert row(pg, d, r["id"])["accessKey"] == r["accessKey"], r["name"]
        names = [r["accessKey"]] + [r[k + "AccessKey"] for k in ("thumbnail", "webpublic") if r[k + "Url"]]
        for name in names:
            path = os.path.join(d.files_dir, name)
            info = os.lstat(path)
            assert stat.S_ISREG(info.st_mode) and oct(info.st_mode & 0o7777) == oct(0o644), name
            assert (info.st_uid, info.st_gid) == (d.owner.uid, d.owner.gid), name
            body = s3.get_object(Bucket=d.bucket, Key="%s/%s" % (PREFIX, name))["Body"].read()
            with open(path, "rb") as handle:
                assert handle.read() == body, name  # byte-identical to its object
    for key, md5 in originals.items():
        assert md5_of(os.path.join(d.files_dir, key)) == md5
    assert run_playbook(MOVE, extra_vars=play(d, "rolled_back")).stats["localhost"]["changed"] == 0
