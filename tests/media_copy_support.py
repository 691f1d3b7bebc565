"""Helpers of the media_copy tests through ansible-playbook (tests/integration/test_media_copy_rgw.py,
test_media_copy_incremental.py, test_media_copy_hostile.py): the module's arguments for a fixture
instance (tests/fixtures/mastodon_instance.py) and the RGW, a run of the module, what the bucket holds and
who may read it, a run started in the background and killed with its whole process tree, and the
suspended account of issue 11 (erin).
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import psycopg2

from tests.ansible_helpers import ansible_env, module_play, run_module

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
TASK = "Copy media"


def module_args(rgw, instance, bucket, **extra):
    args = dict(
        db_host=instance.db_params["host"], db_port=instance.db_params["port"], db_name=instance.db_params["dbname"],
        db_user=instance.db_params["user"], db_password=instance.db_params["password"],
        system_root=instance.system_root,
        endpoint=rgw.https_endpoint, ca_bundle=rgw.ca_bundle, access_key=rgw.access_key, secret_key=rgw.secret_key,
        bucket=bucket,
    )
    args.update(extra)
    return args


def playbook(args):
    """The one-task play of the media_copy module with ``args`` (its task: ``TASK``)."""
    return module_play("media_copy", args, name=TASK)


def run_copy(args, check=False):
    """Run the module with ``args``: ``(PlaybookResult, the module's result)``."""
    res = run_module("media_copy", args, name=TASK, check=check)
    return res, res.task(TASK)


def bucket_objects(s3, bucket):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            out[item["Key"]] = item
    return out


def anonymous_get_status(rgw, bucket, key):
    ctx = ssl.create_default_context(cafile=rgw.ca_bundle)
    url = "%s/%s/%s" % (rgw.https_endpoint, bucket, urllib.request.quote(key))
    try:
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def is_public(s3, bucket, key):
    grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(g["Grantee"].get("URI") == ALL_USERS and g["Permission"] in ("READ", "FULL_CONTROL") for g in grants)

def start_killable(tmp_path, args, name="play"):
    """ansible-playbook running the module with ``args`` in the background (its output discarded); stop
    it with kill_tree."""
    path = tmp_path / ("%s.yml" % name)
    path.write_text(playbook(args))
    inv = tmp_path / "inv.ini"
    inv.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    return subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(path), "-i", str(inv)],
                            env=ansible_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)



# --- issue 11: an account suspended after its media were copied (erin) -----------------------------

ALL_PUBLIC_GROUPS = (ALL_USERS, "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")
# erin (id 4): a remote account the fixture does NOT suspend; media attachments 7 and 1234567891
ERIN_ID = 4
ERIN_MEDIA = (
    "cache/media_attachments/files/000/000/007/original/m5.heic",
    "cache/media_attachments/files/000/000/007/small/m5.jpeg",
    "media_attachments/files/001/234/567/891/original/m10.webp",
    "media_attachments/files/001/234/567/891/small/m10.webp",
)
ERIN_AVATAR = "accounts/avatars/000/000/004/original/r6av.webp"


def suspend_account(inst, account_id):
    """What SuspendAccountService does with filesystem storage: suspended_at (and updated_at) on the
    account row, the media attachments' local files chmod 0600; the media rows are not touched."""
    conn = psycopg2.connect(host=inst.db_params["host"], port=inst.db_params["port"], dbname=inst.db_params["dbname"],
                            user=inst.db_params["user"], password=inst.db_params["password"])
    try:
        with conn, conn.cursor() as cur:
            cur.execute("UPDATE accounts SET suspended_at = now(), updated_at = now() WHERE id = %s", (account_id,))
            assert cur.rowcount == 1
    finally:
        conn.close()
    for key in ERIN_MEDIA:
        os.chmod(os.path.join(inst.system_root, key), 0o600)


def readable_by_others(s3, bucket, key):
    grants = s3.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(g["Grantee"].get("URI") in ALL_PUBLIC_GROUPS for g in grants)


def assert_erin_media_public(rgw, s3, bucket, public):
    for key in ERIN_MEDIA:
        assert readable_by_others(s3, bucket, key) is public, key
        assert anonymous_get_status(rgw, bucket, key) == (200 if public else 403), key
    # the avatar of a suspended account stays public, as Mastodon leaves it
    assert is_public(s3, bucket, ERIN_AVATAR)
    assert anonymous_get_status(rgw, bucket, ERIN_AVATAR) == 200
