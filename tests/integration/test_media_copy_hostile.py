"""media_copy against hostile input: links planted in public/system by the app user, file names
crafted by remote servers in the database, and check mode (issue 12, items 2, 3 and 5).

Real PostgreSQL with Mastodon's tables (tests/fixtures/mastodon_instance.py) and real Ceph RGW
over HTTPS, through ansible-playbook as root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid

import psycopg2
import pytest

from tests.fixtures.mastodon_instance import build_instance
from tests.integration.test_media_copy import bucket_objects, module_args, run_copy

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
