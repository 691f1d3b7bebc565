"""playbooks/migrate.yml and rollback.yml end to end on this machine: a Mastodon host laid out by
tests/migrate_support.py (real PostgreSQL with the fixture instance, media files on disk, a real nginx
in front of a real Ceph RGW over HTTPS). Keys only in the environment, as AWX injects them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.ansible_helpers import REPO, ansible_env, run_playbook
from tests.migrate_support import APP_HOST, checksums, prepare
from tests.nginx_proxy_support import request

MIGRATE = str(REPO / "playbooks" / "migrate.yml")
ROLLBACK = str(REPO / "playbooks" / "rollback.yml")
INVENTORY = "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable


@pytest.fixture
def bucket_name(s3):
    from tests.conftest import empty_and_delete_bucket

    name = "fos-migrate-" + uuid.uuid4().hex[:12]
    yield name
    try:
        empty_and_delete_bucket(s3, name)
    except Exception:  # noqa: BLE001 - the test may not have created it
        pass


@pytest.fixture
def host_factory(pg, rgw, nginx_factory, dns, bucket_name):
    # Not under pytest's tmp_path (0700): nginx's workers (www-data) read the local media.
    root = tempfile.mkdtemp(prefix="fos-test-migrate-")
    os.chmod(root, 0o755)

    def make(mode="system"):
        host = prepare(os.path.join(root, mode), pg, rgw, nginx_factory(), dns, bucket_name, mode=mode)
        # The marker of the retired cache.old: in the test's root, not in the machine's /var/lib.
        host.extra_vars["migrate_state_dir"] = os.path.join(root, mode, "state")
        return host
    yield make
    shutil.rmtree(root, ignore_errors=True)


def migrate(host, playbook=MIGRATE, **kw):
    return run_playbook(playbook, extra_vars=dict(host.extra_vars, **kw.pop("extra", {})), env=host.env, **kw)


def keys_in(s3, bucket):
    try:
        return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])}
    except s3.exceptions.NoSuchBucket:
        return None


def env_values(path):
    values = {}
    with open(path) as fh:
        for line in fh:
            if "=" in line and not line.lstrip().startswith("#"):
                name, value = line.rstrip("\n").split("=", 1)
                values[name] = value
    return values


def nginx_files(host):
    """The nginx configuration files (backups ending in ~ aside) and their contents."""
    found = {}
    for name in ("conf_d", "available", "enabled", "snippets"):
        for entry in sorted(os.listdir(host.layout[name])):
            path = os.path.join(host.layout[name], entry)
            if not entry.endswith("~"):
                found[os.path.join(name, entry)] = Path(path).read_bytes()
    return found


@pytest.mark.parametrize("mode", ["system", "directory", "subdomain"])
def test_migrate_then_rollback(host_factory, s3, bucket_name, mode):
    host = host_factory(mode)
    inst = host.instance
    env_before = Path(host.env_file).read_bytes()
    local_before = checksums(host.system_root, skip_prefix="cache")
    cache_before = checksums(os.path.join(host.system_root, "cache"))
    nginx_before = nginx_files(host)

    res = migrate(host)
    assert res.rc == 0, res
    # Every DB-referenced cached object is in the bucket (local media are not copied by default).
    assert keys_in(s3, bucket_name) == set(inst.expected)
    env = env_values(host.env_file)
    alias = {"system": APP_HOST + "/system", "directory": APP_HOST + "/storage", "subdomain": "s3." + APP_HOST}[mode]
    assert (env["S3_ENABLED"], env["S3_BUCKET"], env["S3_ALIAS_HOST"]) == ("true", bucket_name, alias)
    assert env["AWS_SECRET_ACCESS_KEY"] == host.env["AWS_SECRET_ACCESS_KEY"]
    assert os.path.exists(host.marker), "the app was not restarted"
    # The cache is retired, never deleted; local media untouched.
    assert not os.path.exists(os.path.join(host.system_root, "cache"))
    assert checksums(os.path.join(host.system_root, "cache.old")) == cache_before
    assert checksums(host.system_root, skip_prefix="cache") == local_before
    # The verify phase fetched media through the proxy.
    assert res.task("Fetch the media through the proxy")["results"], res
    # A retired cached object is now served from the bucket through the proxy: MISS, then HIT.
    key = sorted(k for k, (ctype, acl) in inst.expected.items() if acl is None and k.startswith("cache/"))[-1]
    tls = mode == "subdomain"
    ca_file = host.tls[0] if tls else None  # self-signed: the certificate is its own CA
    first = request(host.proxy_port(), host.media_path(key), host.proxy_host(), tls=tls, ca_file=ca_file)
    second = request(host.proxy_port(), host.media_path(key), host.proxy_host(), tls=tls, ca_file=ca_file)
    assert (first.status, first.header("Content-Type")) == (200, inst.expected[key][0])
    assert first.header("X-Cache") in ("MISS", "HIT") and second.header("X-Cache") == "HIT"
    assert first.body == s3.get_object(Bucket=bucket_name, Key=key)["Body"].read()
    if mode == "system":
        # A cached object of the pre-3.2 layout (no cache/ prefix) stays on disk and is served from it.
        old_layout = sorted(k for k, (ctype, acl) in inst.expected.items() if acl is None and not k.startswith("cache/"))[0]
        local = request(host.proxy_port(), host.media_path(old_layout), host.proxy_host())
        assert (local.status, local.header("X-Cache")) == (200, None)

    again = migrate(host)
    assert again.rc == 0 and again.changed == 0, [t["name"] for t in again.tasks if t["result"].get("changed")]

    back = migrate(host, playbook=ROLLBACK)
    assert back.rc == 0, back
    assert Path(host.env_file).read_bytes() == env_before
    assert checksums(os.path.join(host.system_root, "cache")) == cache_before
    assert not os.path.exists(os.path.join(host.system_root, "cache.old"))
    assert checksums(host.system_root, skip_prefix="cache") == local_before
    # The proxy stays by default (media-domain URLs handed out meanwhile keep working) ...
    assert nginx_files(host) != nginx_before
    kept = request(host.proxy_port(), host.media_path(key), host.proxy_host(), tls=tls, ca_file=ca_file)
    assert kept.status == 200
    # ... and goes only when asked, with a warning.
    removed = migrate(host, playbook=ROLLBACK, extra={"migrate_rollback_remove_proxy": True})
    assert removed.rc == 0, removed
    assert "WARNING: removing the nginx proxy" in removed.task("Warn that removing the proxy")["msg"]
    assert nginx_files(host) == nginx_before


def test_check_mode_changes_nothing(host_factory, s3, bucket_name):
    host = host_factory("system")
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    res = migrate(host, check=True, diff=True)
    assert res.rc == 0, res
    assert keys_in(s3, bucket_name) is None  # the bucket was not even created
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before
    assert os.path.isdir(os.path.join(host.system_root, "cache"))
    assert res.changed > 0  # and it says what would change


@pytest.mark.parametrize("case, extra, message", [
    ("dotted bucket", {"migrate_bucket": "media.example.social"}, "contains dots"),
    ("system mode for misskey", {"migrate_app": "misskey", "migrate_proxy_mode": "system"}, "does not apply to Misskey"),
    ("missing env file", {"migrate_env_file": "/nonexistent/.env.production"}, "does not exist"),
    ("unreachable database", {"migrate_db_port": 1}, "cannot connect to PostgreSQL"),
    ("wrong secret key", {"migrate_secret_key": "wrong-secret"}, "secret key"),
])
def test_bad_input_fails_before_anything_changes(host_factory, s3, bucket_name, case, extra, message):
    host = host_factory("system")
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    res = migrate(host, extra=extra)
    assert res.rc != 0, case
    assert any(message in m for m in res.failure_messages()), (case, res.failure_messages())
    assert keys_in(s3, bucket_name) is None
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before


def test_interrupted_copy_resumes_to_the_same_final_state(host_factory, s3, bucket_name):
    host = host_factory("system")
    inst = host.instance
    progress = os.path.join(host.layout["progress"], "fediverse-media-copy-%s.json" % bucket_name)
    with tempfile.TemporaryDirectory(prefix="fos-play-") as tmp:
        inv = os.path.join(tmp, "inventory.ini")
        with open(inv, "w") as fh:
            fh.write(INVENTORY)
        extra = os.path.join(tmp, "extra.json")
        with open(extra, "w") as fh:
            json.dump(dict(host.extra_vars, migrate_max_requests_per_second=4), fh)
        proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), MIGRATE,
                                 "-i", inv, "-e", "@" + extra], env=ansible_env(host.env, "default"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.time() + 240
        done = 0
        while time.time() < deadline and proc.poll() is None:
            try:
                with open(progress) as fh:
                    done = json.load(fh).get("done", 0)
            except (OSError, ValueError):
                done = 0
            if done >= 3:
                break
            time.sleep(0.2)
        assert proc.poll() is None and done >= 3, "copy pass 1 never got going"
        # Kill the run and the copy it started in the background (a crash of the whole host's jobs).
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        subprocess.run(["pkill", "-9", "-f", "AnsiballZ_media_copy"], check=False)
    partial = keys_in(s3, bucket_name)
    assert partial and len(partial) < len(inst.expected)
    assert os.path.isdir(os.path.join(host.system_root, "cache"))

    res = migrate(host)
    assert res.rc == 0, res
    assert keys_in(s3, bucket_name) == set(inst.expected)
    assert env_values(host.env_file)["S3_ENABLED"] == "true"
    assert not os.path.exists(os.path.join(host.system_root, "cache"))
    assert os.path.isdir(os.path.join(host.system_root, "cache.old"))


def insert_media(host, rows):
    """New media attachments as Mastodon writes them after the switch: a DB row, the objects only in the bucket."""
    import psycopg2

    conn = psycopg2.connect(**host.instance.db_params)
    with conn, conn.cursor() as cur:
        for row in rows:
            cur.execute("INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type, "
                        "file_storage_schema_version, created_at, updated_at) VALUES (%s, %s, %s, %s, %s, 1, now(), now())",
                        (row["id"], row["account_id"], row["remote_url"], row["name"], "image/png"))
    conn.close()


def anonymous_status(rgw, method, path, data=None):
    import ssl
    import urllib.error
    import urllib.request

    req = urllib.request.Request(rgw.https_endpoint + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=rgw.ca_bundle), timeout=20) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_rollback_copies_back_media_written_after_the_switch_and_keeps_urls(host_factory, s3, bucket_name, rgw):
    """Migrate; the app writes new media (DB rows + objects only in the bucket); rollback: on disk, byte for
    byte, with Mastodon's owner and modes, served at their local URL; the media-domain URL handed out during
    the migration still answers. Then edit, migrate, rollback: the edit is kept."""
    host = host_factory("subdomain")
    res = migrate(host)
    assert res.rc == 0, res
    # The bucket model after a full migrate.yml: the suspended remote account's media attachment is private,
    # its avatar public; a public object 200; anonymous LIST and PUT 403 - at the endpoint and through the proxy.
    suspended_media = "cache/media_attachments/files/000/000/008/original/m7.mp3"
    suspended_avatar = "cache/accounts/avatars/001/234/567/890/original/r4av.jpg"
    assert host.instance.expected[suspended_media][1] == "private"
    assert host.instance.expected[suspended_avatar][1] is None
    assert anonymous_status(rgw, "GET", "/%s/%s" % (bucket_name, suspended_media)) == 403
    assert anonymous_status(rgw, "GET", "/%s/%s" % (bucket_name, suspended_avatar)) == 200
    assert anonymous_status(rgw, "GET", "/%s/" % bucket_name) == 403
    assert anonymous_status(rgw, "PUT", "/%s/evil.txt" % bucket_name, data=b"x") == 403
    with pytest.raises(Exception, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket_name)
    proxy = dict(tls=True, ca_file=host.tls[0])
    assert request(host.proxy_port(), "/" + suspended_media, host.proxy_host(), **proxy).status in (403, 404)
    assert request(host.proxy_port(), "/" + suspended_avatar, host.proxy_host(), **proxy).status == 200

    local_owner = os.stat(host.system_root)
    new = [
        # a local upload after the switch
        dict(id=900001, account_id=1, remote_url="", name="new-local.png", acl="public-read", mode=0o644,
             keys=["media_attachments/files/000/900/001/original/new-local.png",
                   "media_attachments/files/000/900/001/small/new-local.png"]),
        # a remote media fetched after the switch (cache/)
        dict(id=900002, account_id=2, remote_url="https://remote.example/x.png", name="new-remote.png",
             acl="public-read", mode=0o644,
             keys=["cache/media_attachments/files/000/900/002/original/new-remote.png",
                   "cache/media_attachments/files/000/900/002/small/new-remote.png"]),
        # media of the suspended local account (dave, id 3): private, 0600 on disk like Mastodon
        dict(id=900003, account_id=3, remote_url="", name="new-suspended.png", acl="private", mode=0o600,
             keys=["media_attachments/files/000/900/003/original/new-suspended.png",
                   "media_attachments/files/000/900/003/small/new-suspended.png"]),
    ]
    insert_media(host, new)
    bodies = {}
    for item in new:
        for key in item["keys"]:
            bodies[key] = os.urandom(2048) + key.encode()
            s3.put_object(Bucket=bucket_name, Key=key, Body=bodies[key], ACL=item["acl"], ContentType="image/png")
            assert not os.path.exists(os.path.join(host.system_root, key))
    # A media-domain URL handed to other servers during the migration.
    handed_out = new[0]["keys"][0]
    tls_args = dict(tls=True, ca_file=host.tls[0])
    assert request(host.proxy_port(), "/" + handed_out, host.proxy_host(), **tls_args).status == 200
    # The private object is private at the endpoint and through the proxy.
    assert request(host.proxy_port(), "/" + new[2]["keys"][0], host.proxy_host(), **tls_args).status in (403, 404)

    back = migrate(host, playbook=ROLLBACK)
    assert back.rc == 0, back
    for item in new:
        for key in item["keys"]:
            path = os.path.join(host.system_root, key)
            with open(path, "rb") as fh:
                assert fh.read() == bodies[key], key
            st = os.stat(path)
            assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (item["mode"], local_owner.st_uid,
                                                                  local_owner.st_gid), key
    # Served at the local URL by the app's own /system location (public, not the suspended one).
    local = request(host.nginx.port, "/system/" + new[0]["keys"][0], APP_HOST)
    assert (local.status, local.body) == (200, bodies[new[0]["keys"][0]])
    # The URL handed out during the migration still answers (the proxy stays).
    assert request(host.proxy_port(), "/" + handed_out, host.proxy_host(), **tls_args).status == 200

    # migrate / rollback / admin edit / migrate / rollback keeps the edit.
    with open(host.env_file, "a") as fh:
        fh.write("SINGLE_USER_MODE=true\n")
    edited = Path(host.env_file).read_bytes()
    assert migrate(host).rc == 0
    switched = Path(host.env_file).read_bytes()
    assert switched != edited

    def backups():
        live = os.path.dirname(host.env_file)
        return {n: Path(live, n).read_bytes() for n in os.listdir(live) if n.startswith(".env.production.")
                and n.endswith("~")}

    before = backups()
    again = migrate(host, playbook=ROLLBACK)
    assert again.rc == 0, again
    assert Path(host.env_file).read_bytes() == edited
    # The switched file was backed up before the original was restored.
    made = {n: data for n, data in backups().items() if n not in before}
    assert list(made.values()) == [switched], sorted(made)
