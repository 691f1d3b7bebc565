"""What gates the retirement of public/system/cache: a verify that cannot read a source fails (only
"file not found" is a missing source), against real PostgreSQL (fixture instance) and Ceph RGW over HTTPS.

The collection runs as root, for whom permissions never fail; the unreadable-cache case therefore runs
the same engine code as the unprivileged user ``nobody`` with the system Python (python3-boto3,
python3-psycopg2, as on a Debian app host), which is what an NFS root-squash or a wrong mode looks like.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

from tests.ansible_helpers import REPO
from tests.fixtures.mastodon_instance import build_instance
from tests.media_copy_support import module_args, run_copy

SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534

ENGINE_SCRIPT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import engine as e
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import sources
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client
cfg = json.loads(sys.argv[2])
client = s3_client(cfg["endpoint"], access_key=cfg["access_key"], secret_key=cfg["secret_key"], ca_bundle=cfg["ca"])
conn = db.connect(**cfg["db"])
engine = e.CopyEngine(client, cfg["bucket"], sources.FilesystemSource(cfg["root"]), mode="verify", concurrency=2)
print(json.dumps(engine.run(db.iter_rows_objects(conn, ["cache"]))))
"""


@pytest.fixture
def world_root():
    root = tempfile.mkdtemp(prefix="fos-test-verify-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def collections_root(tmp):
    """The collection reachable by nobody (the repo is world-readable; .cache/collections links to it)."""
    path = os.path.join(tmp, "collections", "ansible_collections", "fediverse")
    if os.path.isdir(path):
        return os.path.join(tmp, "collections")
    os.makedirs(path)
    os.symlink(str(REPO), os.path.join(path, "object_storage"))
    for dirpath, _dirs, _files in os.walk(os.path.join(tmp, "collections")):
        os.chmod(dirpath, 0o755)
    return os.path.join(tmp, "collections")


def verify_as_nobody(world_root, inst, rgw, bucket):
    ca = os.path.join(world_root, "ca.pem")
    shutil.copy(rgw.ca_bundle, ca)
    os.chmod(ca, 0o644)
    cfg = dict(endpoint=rgw.https_endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key, ca=ca,
               bucket=bucket, root=inst.system_root, db=inst.db_params)
    proc = subprocess.run(["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups",
                           SYSTEM_PYTHON, "-c", ENGINE_SCRIPT, collections_root(world_root), json.dumps(cfg)],
                          capture_output=True, text=True, timeout=300, cwd=world_root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def copy_all(rgw, inst, bucket):
    """media_copy of the instance to the bucket: ``(PlaybookResult, the module's arguments)``."""
    args = module_args(rgw, inst, bucket)
    res, _out = run_copy(args)
    return res, args


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON) or os.geteuid() != 0, reason="needs root and the system Python")
def test_unreadable_cache_fails_verify(pg, rgw, s3, bucket, world_root):
    inst = build_instance(pg, "verify_gate_" + uuid.uuid4().hex[:8], os.path.join(world_root, "public", "system"),
                          missing=())
    for dirpath, _dirs, files in os.walk(world_root):
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)
    res, _args = copy_all(rgw, inst, bucket)
    assert res.rc == 0, res

    readable = verify_as_nobody(world_root, inst, rgw, bucket)
    assert readable["verified"] is True and readable["totals"]["failed"] == 0, readable
    assert readable["totals"]["skipped"] > 0

    # The cache becomes unreadable for the user that verifies: every cached source is EACCES.
    os.chmod(os.path.join(inst.system_root, "cache"), 0o700)
    out = verify_as_nobody(world_root, inst, rgw, bucket)
    assert out["verified"] is False, out
    assert out["totals"]["failed"] > 0 and out["totals"]["missing_source"] == 0, out["totals"]
    assert "Permission denied" in out["failed_sample"][0]["reason"], out["failed_sample"]


def test_a_source_error_other_than_not_found_fails_the_verify_module(pg, rgw, s3, bucket, world_root):
    """As root: a looping link in cache/ (ELOOP) is not "file not found": the verify task fails."""
    inst = build_instance(pg, "verify_loop_" + uuid.uuid4().hex[:8], os.path.join(world_root, "public", "system"),
                          missing=())
    res, args = copy_all(rgw, inst, bucket)
    assert res.rc == 0, res
    avatars = os.path.join(inst.system_root, "cache", "accounts", "avatars")
    os.rename(avatars, avatars + ".moved")
    os.symlink("avatars", avatars)  # a link to itself: ELOOP
    verify, out = run_copy(dict(args, mode="verify"))
    assert verify.rc != 0
    msgs = " ".join(verify.failure_messages())
    assert "verify failed" in msgs and "could not be read" in msgs and "accounts/avatars" in msgs, msgs
    assert out["verified"] is False and out["totals"]["failed"] > 0
