"""media_copy against hostile input: links planted in public/system by the app user, file names
crafted by remote servers in the database, and check mode (issue 12, items 2, 3 and 5); files in the
app user's tree it does not own, a hard link to a root-only file among them (issue 20, finding 12).

Real PostgreSQL with Mastodon's tables (tests/fixtures/mastodon_instance.py) and real Ceph RGW
over HTTPS, through ansible-playbook as root.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid

import psycopg2
import pytest

from tests.fixtures.mastodon_instance import LARGE_KEY, build_instance
from tests.media_copy_support import bucket_objects, module_args, run_copy

AVATAR_FILE = "accounts/avatars/000/000/004/original/r6av.webp"  # remote account 4, cache scope
PRIVATE_DIR = "cache/accounts/avatars/001/234/567/890/original"  # holds r4av.jpg
BACKUP_KEY = "backups/dumps/000/000/001/original/b1.zip"


@pytest.fixture
def fresh(pg, tmp_path):
    root = tmp_path / "mastodon" / "public" / "system"
    return build_instance(pg, "hostile_" + uuid.uuid4().hex[:8], root)


@pytest.fixture
def root_only(tmp_path):
    path = tmp_path / "etc-ssl-private" / "server.key"
    path.parent.mkdir()
    path.write_bytes(b"-----BEGIN PRIVATE KEY----- root only\n")
    os.chmod(path, 0o400)
    return path


def sha(data):
    return hashlib.sha256(data).hexdigest()


def bodies(s3, bucket):
    return {key: sha(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in bucket_objects(s3, bucket)}


def test_symlinks_in_public_system_are_reported_never_uploaded(rgw, s3, bucket, fresh, root_only, tmp_path):
    root = fresh.system_root
    # A link at an avatar's path to a root-only file, and a link in a directory component.
    os.unlink(os.path.join(root, AVATAR_FILE))
    os.symlink(str(root_only), os.path.join(root, AVATAR_FILE))
    elsewhere = tmp_path / "elsewhere"
    shutil.move(os.path.join(root, PRIVATE_DIR), str(elsewhere))
    os.symlink(str(elsewhere), os.path.join(root, PRIVATE_DIR))

    res, out = run_copy(module_args(rgw, fresh, bucket))
    assert res.rc != 0, res  # not a silent success
    assert out["unsafe_source"] == 2
    assert {s["key"] for s in out["unsafe_source_sample"]} == {AVATAR_FILE, PRIVATE_DIR + "/r4av.jpg"}
    assert all("symbolic link" in s["reason"] for s in out["unsafe_source_sample"])
    objects = bucket_objects(s3, bucket)
    assert AVATAR_FILE not in objects
    assert PRIVATE_DIR + "/r4av.jpg" not in objects
    assert sha(root_only.read_bytes()) not in bodies(s3, bucket).values()
    # every other object was copied
    want = {k for k in fresh.expected if k not in fresh.missing_keys} - {AVATAR_FILE, PRIVATE_DIR + "/r4av.jpg"}
    assert set(objects) == want

    # ignore_failures lets the run pass, the links are still reported and still not uploaded
    res, out = run_copy(module_args(rgw, fresh, bucket, ignore_failures=True))
    assert res.rc == 0, res
    assert out["unsafe_source"] == 2
    assert AVATAR_FILE not in bucket_objects(s3, bucket)


def test_crafted_db_file_name_is_rejected_and_reported(rgw, s3, bucket, fresh):
    crafted = "../../../../../" + BACKUP_KEY  # still resolves inside public/system
    conn = psycopg2.connect(**fresh.db_params)
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE accounts SET avatar_file_name = %s WHERE id = 4", (crafted,))
    finally:
        conn.close()
    with open(os.path.join(fresh.system_root, BACKUP_KEY), "rb") as handle:
        backup = handle.read()

    res, out = run_copy(module_args(rgw, fresh, bucket, include_backups=False))
    assert res.rc != 0, res
    assert out["unsafe_source"] == 1
    sample = out["unsafe_source_sample"][0]
    assert sample["kind"] == "accounts/avatars" and "path separator" in sample["reason"]
    objects = bucket_objects(s3, bucket)
    assert not [k for k in objects if ".." in k or "backups" in k]
    assert sha(backup) not in bodies(s3, bucket).values()  # the user's archive is not public


def tree(path):
    out = {}
    for dirpath, dirnames, files in os.walk(path):
        for name in dirnames + files:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            out[os.path.relpath(full, path)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def test_check_mode_writes_nothing_anywhere(rgw, s3, bucket, fresh, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    progress = state / "media_copy.json"
    watched = (str(state), os.path.dirname(fresh.system_root), "/tmp")
    before = {w: tree(w) if w != "/tmp" else set(os.listdir(w)) for w in watched}
    res, out = run_copy(module_args(rgw, fresh, bucket, progress_file=str(progress)), check=True)
    assert res.rc == 0, res
    assert out["totals"]["copied"] > 0  # it did count what it would copy
    assert not progress.exists()
    assert tree(str(state)) == before[str(state)] == {}
    assert tree(os.path.dirname(fresh.system_root)) == before[os.path.dirname(fresh.system_root)]
    # Ansible's own module payload directories (ansible_<module>_payload_*, removed by Ansible itself,
    # also made by any other media_copy run on the machine) are not the module's writes.
    assert not [n for n in set(os.listdir("/tmp")) - before["/tmp"]
                if "media_copy" in n and not (n.startswith("ansible_") and "_payload_" in n)]
    assert bucket_objects(s3, bucket) == {}


def test_progress_file_link_is_refused_before_anything_is_copied(rgw, s3, bucket, fresh, root_only, tmp_path):
    before = root_only.read_bytes(), os.stat(root_only).st_mode
    progress = tmp_path / "progress.json"
    os.symlink(str(root_only), str(progress))
    res, out = run_copy(module_args(rgw, fresh, bucket, progress_file=str(progress)))
    assert res.rc != 0
    assert "symbolic link" in out["msg"]
    assert (root_only.read_bytes(), os.stat(root_only).st_mode) == before
    assert bucket_objects(s3, bucket) == {}


# --- issue 20, finding 12: files the app user does not own ------------------------------------------

@pytest.fixture
def app_instance(pg, app_base, appuser):
    """The fixture instance with public/system (and the app directory) owned by the real app user."""
    root = os.path.join(app_base, "mastodon", "public", "system")
    instance = build_instance(pg, "hostile_" + uuid.uuid4().hex[:8], root)
    appuser.own(os.path.join(app_base, "mastodon"))
    return instance


@pytest.fixture
def root_secret(app_base):
    """A root-only 0600 file in a directory the app user can search (so it could hard-link it)."""
    directory = os.path.join(app_base, "etc-ssl-private")
    os.mkdir(directory, 0o755)
    path = os.path.join(directory, "server.key")
    with open(path, "wb") as handle:
        handle.write(b"-----BEGIN PRIVATE KEY----- root only " + uuid.uuid4().hex.encode() + b"\n")
    os.chmod(path, 0o600)
    return path


@contextlib.contextmanager
def unprotected_hardlinks():
    """fs.protected_hardlinks=0 for the block (the kernel then lets a user hard-link a file it cannot
    read), restored after; skipped when this machine does not let the test set it."""
    knob = "/proc/sys/fs/protected_hardlinks"
    try:
        with open(knob) as handle:
            before = handle.read().strip()
        with open(knob, "w") as handle:
            handle.write("0")
    except OSError as exc:
        pytest.skip("cannot set fs.protected_hardlinks=0 here (%s): the hard-link case needs it" % exc)
    try:
        yield
    finally:
        with open(knob, "w") as handle:
            handle.write(before)


def a_plain_key(instance, *excluded):
    return sorted(k for k in instance.expected
                  if k not in instance.missing_keys and k not in excluded and k != LARGE_KEY)[0]


def test_hard_link_to_a_root_only_file_is_reported_never_uploaded(rgw, s3, bucket, app_instance, root_secret, appuser):
    root = app_instance.system_root
    target = os.path.join(root, AVATAR_FILE)

    def plant():  # as the app user: its own avatar file replaced by a hard link to root's key
        os.unlink(target)
        os.link(root_secret, target)

    with unprotected_hardlinks():
        appuser.call(plant)
    assert os.stat(target).st_ino == os.stat(root_secret).st_ino and os.stat(target).st_uid == 0

    res, out = run_copy(module_args(rgw, app_instance, bucket))
    assert res.rc != 0, res  # not a silent success
    assert out["unsafe_source"] == 1
    sample = out["unsafe_source_sample"][0]
    assert sample["key"] == AVATAR_FILE and "owned by uid 0, not by uid %d" % appuser.uid in sample["reason"]
    objects = bucket_objects(s3, bucket)
    assert AVATAR_FILE not in objects
    with open(root_secret, "rb") as handle:
        assert sha(handle.read()) not in bodies(s3, bucket).values()
    # every file the app user owns was copied as before
    assert set(objects) == {k for k in app_instance.expected if k not in app_instance.missing_keys} - {AVATAR_FILE}


def test_root_owned_file_in_the_app_tree_is_reported_never_uploaded(rgw, s3, bucket, app_instance, appuser):
    root = app_instance.system_root
    key = a_plain_key(app_instance, AVATAR_FILE)
    path = os.path.join(root, key)
    os.unlink(path)
    private = b"root's private data " + uuid.uuid4().hex.encode()
    with open(path, "wb") as handle:  # written by root: root's file, 0600, one link
        handle.write(private)
    os.chmod(path, 0o600)
    assert os.stat(path).st_nlink == 1

    res, out = run_copy(module_args(rgw, app_instance, bucket))
    assert res.rc != 0, res
    assert out["unsafe_source"] == 1
    sample = out["unsafe_source_sample"][0]
    assert sample["key"] == key and "owned by uid 0" in sample["reason"]
    objects = bucket_objects(s3, bucket)
    assert key not in objects
    assert sha(private) not in bodies(s3, bucket).values()
    assert set(objects) == {k for k in app_instance.expected if k not in app_instance.missing_keys} - {key}
    assert AVATAR_FILE in objects  # the app user's own files: copied
