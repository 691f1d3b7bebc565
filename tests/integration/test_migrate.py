"""playbooks/migrate.yml and rollback.yml end to end on this machine: a Mastodon host laid out by
tests/migrate_support.py (real PostgreSQL with the fixture instance, media files on disk, a real nginx
in front of a real Ceph RGW over HTTPS). Keys only in the environment, as AWX injects them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.ansible_helpers import ansible_env
from tests.browser_support import check_mastodon_in_browser, install_real_media, mastodon_media_keys
from tests.migrate_support import APP_HOST, MIGRATE, PROXY_DOMAIN, ROLLBACK, checksums, keys_in, migrate, nginx_files, prepare

INVENTORY = "localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable


@pytest.fixture
def host_factory(pg, rgw, nginx_factory, dns, bucket_name):
    # Not under pytest's tmp_path (0700): nginx's workers (www-data) read the local media.
    root = tempfile.mkdtemp(prefix="fos-test-migrate-")
    os.chmod(root, 0o755)

    def make(mode="system", **kw):
        host = prepare(os.path.join(root, mode), pg, rgw, nginx_factory(), dns, bucket_name, mode=mode, **kw)
        # The marker of the retired cache.old: in the test's root, not in the machine's /var/lib.
        host.extra_vars["migrate_state_dir"] = os.path.join(root, mode, "state")
        return host
    yield make
    shutil.rmtree(root, ignore_errors=True)


def env_values(path):
    values = {}
    with open(path) as fh:
        for line in fh:
            if "=" in line and not line.lstrip().startswith("#"):
                name, value = line.rstrip("\n").split("=", 1)
                values[name] = value
    return values


def check_migrated(host, res, s3, bucket_name, mode, before):
    """After migrate.yml: the bucket, the app's configuration, the retired cache, the proxy."""
    inst = host.instance
    # Every DB-referenced object is in the bucket: remote (cache) and local media (copied by default).
    assert keys_in(s3, bucket_name) == set(inst.expected) | set(inst.expected_local)
    env = env_values(host.env_file)
    alias = {"system": APP_HOST + "/system", "directory": APP_HOST + "/storage", "subdomain": "s3." + APP_HOST}[mode]
    assert (env["S3_ENABLED"], env["S3_BUCKET"], env["S3_ALIAS_HOST"]) == ("true", bucket_name, alias)
    # The summary names the media URL the app now writes (one plan: module_utils/migrate/media_plan.py).
    summary = res.task("Summary of the migration")["msg"]
    assert "media URLs: https://%s/... through the nginx proxy cache (mode %s)" % (alias, mode) in summary, summary
    assert env["AWS_SECRET_ACCESS_KEY"] == host.env["AWS_SECRET_ACCESS_KEY"]
    assert os.path.exists(host.marker), "the app was not restarted"
    # The cache is retired, never deleted; local media untouched.
    assert not os.path.exists(os.path.join(host.system_root, "cache"))
    assert checksums(os.path.join(host.system_root, "cache.old")) == before["cache"]
    assert checksums(host.system_root, skip_prefix="cache") == before["local"]
    # The verify phase fetched media through the proxy.
    assert res.task("Fetch the media through the proxy")["results"], res
    # A retired cached object is now served from the bucket through the proxy: MISS, then HIT.
    key = sorted(k for k, (ctype, acl) in inst.expected.items() if acl is None and k.startswith("cache/"))[-1]
    first = host.get_media(key)
    second = host.get_media(key)
    assert (first.status, first.header("Content-Type")) == (200, inst.expected[key][0])
    assert first.header("X-Cache") in ("MISS", "HIT") and second.header("X-Cache") == "HIT"
    assert first.body == s3.get_object(Bucket=bucket_name, Key=key)["Body"].read()
    if mode == "system":
        # A cached object of the pre-3.2 layout (no cache/ prefix) stays on disk, but once the local
        # copy is verified the proxy serves it from the bucket (X-Cache), not from disk.
        old_layout = sorted(k for k, (ctype, acl) in inst.expected.items() if acl is None and not k.startswith("cache/"))[0]
        assert os.path.exists(os.path.join(host.system_root, old_layout))
        served = host.get_media(old_layout)
        assert served.status == 200 and served.header("X-Cache") in ("MISS", "HIT"), served
    return key


def check_rolled_back(host, key, before):
    """rollback.yml: the app's configuration and the cache back, the proxy kept; removed only when asked."""
    back = migrate(host, playbook=ROLLBACK)
    assert back.rc == 0, back
    assert Path(host.env_file).read_bytes() == before["env"]
    assert checksums(os.path.join(host.system_root, "cache")) == before["cache"]
    assert not os.path.exists(os.path.join(host.system_root, "cache.old"))
    assert checksums(host.system_root, skip_prefix="cache") == before["local"]
    # The proxy stays by default (media-domain URLs handed out meanwhile keep working) ...
    assert nginx_files(host) != before["nginx"]
    kept = host.get_media(key)
    assert kept.status == 200, kept
    # What the app writes after the rollback exists only on disk: the proxy serves local files first
    # again (in system mode a bucket-only /system/ would answer 404 for every new upload).
    fresh = "media_attachments/files/000/777/001/original/after-rollback.png"
    fresh_path = os.path.join(host.system_root, fresh)
    os.makedirs(os.path.dirname(fresh_path), exist_ok=True)
    Path(fresh_path).write_bytes(b"written after the rollback")
    served = host.get_media(fresh)
    assert (served.status, served.body) == (200, b"written after the rollback"), served
    # ... and goes only when asked, with a warning.
    removed = migrate(host, playbook=ROLLBACK, extra={"migrate_rollback_remove_proxy": True})
    assert removed.rc == 0, removed
    assert "WARNING: removing the nginx proxy" in removed.task("Warn that removing the proxy")["msg"]
    assert nginx_files(host) == before["nginx"]


def check_rerun_summary(host, again, first):
    """The re-run's summary (issue 24): the cached files retired to cache.old by the first run are counted
    "in cache.old (retired)", not "missing on disk"; the retirement is said to be an earlier run's."""
    cache_old = os.path.join(host.system_root, "cache.old")
    retired = sum(1 for k in host.instance.expected if k.startswith("cache/"))
    summary = again.task("Summary of the migration")["msg"]
    pass1 = [x for x in summary if x.startswith("copy pass 1:")]
    assert len(pass1) == 1 and (" %d in cache.old (retired, in the bucket), 0 missing on disk," % retired) in pass1[0], \
        summary
    assert "retire: %s was already retired to %s (an earlier run)" % (os.path.join(host.system_root, "cache"), cache_old) \
        in summary, summary
    assert any(x.startswith("backup: retired cache: " + cache_old) for x in summary), summary
    assert any(x.startswith("to undo: ansible-playbook -i <inventory> ") and "rollback.yml" in x for x in summary), summary
    # ...and the first run's summary says what it did.
    first_summary = first.task("Summary of the migration")["msg"]
    assert "retire: %s moved to %s (nothing deleted)" % (os.path.join(host.system_root, "cache"), cache_old) \
        in first_summary, first_summary
    assert any(x.startswith("config: %s now points at the bucket" % host.env_file) for x in first_summary), first_summary


@pytest.mark.parametrize("mode", ["system", "directory", "subdomain"])
def test_migrate_production_shaped_host_then_rollback(host_factory, s3, bucket_name, mode, browser):
    """One migrate.yml per proxy mode (each is a full run), checked in turn: the migrated state, a second
    run changes nothing, the media in a real browser under Mastodon's CSP, the production-shaped host (the
    app's site, moderation through the proxy), then rollback.yml (last: it undoes the migration)."""
    host = host_factory(mode)
    # A few of the DB's media made real images and a real video before the run (tests/browser_support.py).
    browser_keys = mastodon_media_keys(host.instance.db_params)
    install_real_media(host.system_root, browser_keys)
    # A short validity of the proxy's cache entries, for the moderation checks (48h by default); every run
    # below gets it, so the second migrate.yml is a true re-run.
    host.extra_vars["nginx_proxy_cache_valid"] = "%ds" % VALIDITY
    before = {"env": Path(host.env_file).read_bytes(), "local": checksums(host.system_root, skip_prefix="cache"),
              "cache": checksums(os.path.join(host.system_root, "cache")), "nginx": nginx_files(host)}

    res = migrate(host)
    assert res.rc == 0, res
    key = check_migrated(host, res, s3, bucket_name, mode, before)

    # Before the moderation checks below change the bucket (a re-run would copy a deleted local key again).
    again = migrate(host)
    assert again.rc == 0 and again.changed == 0, [t["name"] for t in again.tasks if t["result"].get("changed")]
    check_rerun_summary(host, again, res)

    check_mastodon_in_browser(browser, host, mode, browser_keys, env_values(host.env_file), APP_HOST, PROXY_DOMAIN)
    check_production_shaped(host, res, s3, bucket_name, mode)
    check_rolled_back(host, key, before)


# What an admin reads from `migrate.yml --check --diff` under the default callback, run from the checkout
# (its ansible.cfg: skipped tasks not listed, one line of diff context) as the demo and the README run it
# (issue 24 item 6: it was 913 lines, the whole nginx site printed twice). A third of 913; 297 now.
CHECK_DIFF_MAX_LINES = 304


def test_check_mode_changes_nothing(host_factory, s3, bucket_name):
    host = host_factory("directory")  # the demo's host (scripts/demo.py)
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    res = migrate(host, check=True, diff=True, callback="default")
    assert res.rc == 0, res.stdout
    assert keys_in(s3, bucket_name) is None  # the bucket was not even created
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before
    assert os.path.isdir(os.path.join(host.system_root, "cache"))
    out = res.stdout
    recap = re.search(r"changed=(\d+)", out[out.index("PLAY RECAP"):])
    assert recap and int(recap.group(1)) > 0, out  # and it says what would change
    # ...each file's diff once, in compact output, with the counts in one line.
    lines = out.splitlines()
    assert len(lines) <= CHECK_DIFF_MAX_LINES, "%d lines:\n%s" % (len(lines), out)
    site = os.path.realpath(os.path.join(host.layout["available"], "mastodon"))
    for path in (os.path.join(host.layout["conf_d"], "fediverse_media-cache.conf"),
                 os.path.join(host.layout["snippets"], "fediverse_media-directory.conf"), site):
        shown = [line for line in lines if line.startswith("changed: ") and line.endswith("(item=%s)" % path)]
        assert len(shown) == 1, (path, shown)
    assert out.count("--- before: %s" % host.env_file) == 1, out
    counts = [line for line in lines if re.search(r"every object of the \d+ DB rows in scope", line)]
    assert len(counts) == 1, counts
    # Its summary says what a run would do, and claims no retirement (issue 24).
    summary = summary_in(out)
    cache = os.path.join(host.system_root, "cache")
    assert summary[0].endswith("(check mode: nothing was changed; each line says what a run would do)"), summary
    assert any(x.startswith("bucket: %s at " % bucket_name) and x.endswith("- would be created") for x in summary), summary
    assert "retire (check mode): %s would be moved to %s.old after a full verify" % (cache, cache) in summary, summary
    assert not any(x.startswith("retire:") or "backup: retired cache" in x for x in summary), summary
    assert "still to do: run it again without --check to apply it" in summary
    # A --tags run (cheap: preflight, then the summary): the phases it left out are said, nothing claimed.
    tagged = migrate(host, check=True, tags="nginx")
    assert tagged.rc == 0, tagged
    summary = tagged.task("Summary of the migration")["msg"]
    assert "retire: not run (--tags nginx) - %s stays in place" % cache in summary, summary
    assert "config: not run (--tags nginx) - the app was not switched by this run" in summary, summary


def summary_in(out):
    """The lines of the migration's summary in what the default callback printed (a JSON list)."""
    block = out[out.index("Summary of the migration]"):out.index("PLAY RECAP")]
    return json.loads(block[block.index("{"):block.rindex("}") + 1])["msg"]


def all_messages(res):
    """failure_messages() and the message of each item a looped assert refused or a looped fail gave (the
    json callback's loop items carry no "failed")."""
    return res.failure_messages() + [
        str(item.get("msg", "")) for t in res.tasks for item in t["result"].get("results", [])
        if isinstance(item, dict) and (item.get("evaluated_to") is False
                                      or (t["result"].get("failed") and t["result"].get("action") == "ansible.builtin.fail"))]


# reported: the migrate_* variables the input check names, one message each (issue 24 item 5), and then
# the run fails at once, before any other task; None: a check further into pre-flight.
@pytest.mark.parametrize("case, extra, message, reported", [
    ("dotted bucket", {"migrate_bucket": "media.example.social"}, "contains dots", ["migrate_bucket"]),
    ("system mode for misskey", {"migrate_app": "misskey", "migrate_proxy_mode": "system"}, "does not apply to Misskey",
     ["migrate_proxy_mode"]),
    # A typo of a Vultr cluster: the list of clusters at once, not "cannot reach the S3 endpoint" after retries.
    ("unknown Vultr cluster", {"migrate_endpoint": "ewr9"}, "the clusters are ams1, ams2", ["migrate_endpoint"]),
    ("two wrong inputs", {"migrate_domain": "social", "migrate_copy_scope": ["cache", "remote"]}, "not 'social'",
     ["migrate_domain", "migrate_copy_scope"]),
    ("missing env file", {"migrate_env_file": "/nonexistent/.env.production"}, "does not exist", None),
    ("unreachable database", {"migrate_db_port": 1}, "cannot connect to PostgreSQL", None),
    ("wrong secret key", {"migrate_secret_key": "wrong-secret"}, "Check migrate_access_key/migrate_secret_key", None),
])
def test_bad_input_fails_before_anything_changes(host_factory, s3, bucket_name, case, extra, message, reported):
    host = host_factory("system")
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    t0 = time.monotonic()
    res = migrate(host, extra=extra)
    seconds = time.monotonic() - t0
    assert res.rc != 0, case
    assert any(message in m for m in all_messages(res)), (case, all_messages(res))
    if reported is not None:
        items = res.task("Check the migration's inputs")["results"]
        assert [i["item"] for i in items] == reported, items
        assert all(i["item"] in i["msg"] for i in items), items
        # Nothing ran after the input check, and no request was tried (ewr9 used to take ~20 s of retries).
        assert res.tasks[-1]["name"].endswith("Check the migration's inputs"), [t["name"] for t in res.tasks]
        assert seconds < 30, seconds  # ewr9 took 88 s before (the S3 client's retries), 5-10 s now
    assert keys_in(s3, bucket_name) is None
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before


def kill_marked(marker):
    """SIGKILL every process whose environment holds FOS_TEST_RUN=marker: this test's run and the copy job it
    started in the background (async: its own session), and nothing of a test running beside it (the suite
    runs on two workers: a `pkill -f AnsiballZ_media_copy` would kill the other worker's copies too)."""
    wanted = ("FOS_TEST_RUN=%s" % marker).encode()
    killed = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % pid, "rb") as fh:
                if wanted in fh.read().split(b"\0"):
                    with open("/proc/%s/cmdline" % pid, "rb") as cmd:
                        killed.append(cmd.read().replace(b"\0", b" ").decode(errors="replace"))
                    os.kill(int(pid), signal.SIGKILL)
        except OSError:
            continue  # gone meanwhile, or a kernel thread
    return killed


def test_interrupted_copy_resumes_to_the_same_final_state(host_factory, s3, bucket_name):
    host = host_factory("system")
    inst = host.instance
    progress = os.path.join(host.layout["progress"], "fediverse-media-copy-%s.json" % bucket_name)
    marker = bucket_name
    with tempfile.TemporaryDirectory(prefix="fos-play-") as tmp:
        inv = os.path.join(tmp, "inventory.ini")
        with open(inv, "w") as fh:
            fh.write(INVENTORY)
        extra = os.path.join(tmp, "extra.json")
        with open(extra, "w") as fh:
            json.dump(dict(host.extra_vars, migrate_max_requests_per_second=4), fh)
        proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), MIGRATE,
                                 "-i", inv, "-e", "@" + extra], env=ansible_env(dict(host.env, FOS_TEST_RUN=marker), "default"),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
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
        finally:
            # Kill the run and the copy it started in the background (a crash of the whole host's jobs);
            # also when the copy never got going, so that nothing of this run outlives the test.
            killed = kill_marked(marker)
            proc.wait()
        # the copy job itself was among them (it runs apart from the play, in its own session)
        assert any("AnsiballZ_media_copy" in cmd or "async_wrapper" in cmd for cmd in killed), killed
    partial = keys_in(s3, bucket_name)
    assert partial and len(partial) < len(inst.expected)
    assert os.path.isdir(os.path.join(host.system_root, "cache"))

    res = migrate(host)
    assert res.rc == 0, res
    assert keys_in(s3, bucket_name) == set(inst.expected) | set(inst.expected_local)
    assert env_values(host.env_file)["S3_ENABLED"] == "true"
    assert not os.path.exists(os.path.join(host.system_root, "cache"))
    assert os.path.isdir(os.path.join(host.system_root, "cache.old"))


# --------------------------------------------------------------------------- a host shaped like production
# (issue 10): the app's site in the shape of Mastodon's dist/nginx.conf and the media proxy share the TLS
# listener (tests/migrate_support.py); names, SNI and Host decide.

VALIDITY = 3  # nginx_proxy_cache_valid in these tests, seconds (48h by default)


def public_keys(expected, prefix=None):
    return sorted(k for k, (ctype, acl) in expected.items() if acl is None and (prefix is None or k.startswith(prefix)))


def alias_url(host, key):
    """(host name, path) of ``key`` under exactly the URL the app now writes (S3_ALIAS_HOST)."""
    alias = env_values(host.env_file)["S3_ALIAS_HOST"]
    name, _, path = alias.partition("/")
    return name, "/" + (path + "/" if path else "") + key


def wait_validity(since):
    # nginx keeps whole seconds: an entry is valid until the end of second (stored + VALIDITY).
    time.sleep(max(0.0, since + VALIDITY + 1.5 - time.monotonic()))


def check_production_shaped(host, res, s3, bucket_name, mode):
    """The production-shaped host keeps the app's site and lets moderation through (within the validity)."""
    from tests.nginx_proxy_support import APP_BACKEND_BODY, nginx_dump

    inst = host.instance
    # The bucket's default model for Mastodon (object-acl, issue 11): anonymous reads follow each object's ACL.
    assert not any("NOT enforced" in str(t["result"].get("msg", "")) for t in res.tasks)

    # The app's own site still answers from the app backend, with SNI and Host DOMAIN.
    app = host.get("/", APP_HOST)
    assert (app.status, app.body, app.header("X-App-Backend")) == (200, APP_BACKEND_BODY, "stub"), app
    assert host.get("/about", APP_HOST).body == APP_BACKEND_BODY

    # Media answer under exactly the URLs the app now writes (SNI s3.DOMAIN in subdomain mode).
    env = env_values(host.env_file)
    assert env["S3_ALIAS_HOST"] == {"subdomain": "s3." + APP_HOST, "directory": APP_HOST + "/storage",
                                    "system": APP_HOST + "/system"}[mode]
    keys = public_keys(inst.expected, "cache/") + public_keys(inst.expected_local)
    for key in keys[:3] + keys[-3:]:
        name, path = alias_url(host, key)
        r = host.get(path, name)
        assert r.status == 200 and r.body == s3.get_object(Bucket=bucket_name, Key=key)["Body"].read(), (key, r)
        assert r.header("Content-Type") == (inst.expected.get(key) or inst.expected_local[key])[0]

    # nginx -T: no conflicting server name; the proxy's site is its own server.
    ok, dump = nginx_dump(host.nginx)
    assert ok and "conflicting server name" not in dump, dump[-3000:]
    with open(host.nginx.error_log) as fh:
        assert "conflicting server name" not in fh.read()

    # A request with an unknown Host (or none the proxy serves) never reaches the bucket.
    key = keys[0]
    body = s3.get_object(Bucket=bucket_name, Key=key)["Body"].read()
    for other in ("unknown.example", "127.0.0.1", "www." + APP_HOST):
        r = host.get(host.media_path(key), other)
        assert r.body != body and r.header("X-Cache") is None, (other, r)
        assert r.status in (421, 404) or r.body == APP_BACKEND_BODY, (other, r)

    # Moderation: cached through the proxy, then made private (ACL) or deleted in the bucket: served
    # (from the cache) within the validity, no longer once it is over.
    private_key, deleted_key = keys[1], keys[2]
    for k in (private_key, deleted_key):
        host.get_media(k)
        assert host.get_media(k).header("X-Cache") == "HIT"
    changed_at = time.monotonic()
    s3.put_object_acl(Bucket=bucket_name, Key=private_key, ACL="private")
    s3.delete_object(Bucket=bucket_name, Key=deleted_key)
    wait_validity(changed_at)
    for k in (private_key, deleted_key):
        r = host.get_media(k)
        assert r.status == 404 and b"AccessDenied" not in r.body, (k, r)
    # An unchanged object revalidates (304 from the bucket) and stays served.
    assert host.get_media(keys[3]).status == 200

    if mode == "system":
        # After the local copy is verified the proxy serves the bucket only: a local key deleted from the
        # bucket is no longer served from disk, and the file is still on disk, untouched.
        local_key = public_keys(inst.expected_local)[0]
        path = os.path.join(host.system_root, local_key)
        before = checksums(os.path.dirname(path))
        assert host.get_media(local_key).status == 200
        s3.delete_object(Bucket=bucket_name, Key=local_key)
        r = host.get_media(local_key)
        if r.status == 200:  # still inside the validity of its cache entry
            wait_validity(time.monotonic())
            r = host.get_media(local_key)
        assert r.status == 404, r
        assert checksums(os.path.dirname(path)) == before
        snippet = Path(host.layout["snippets"], "fediverse_media-system.conf").read_text()
        assert "try_files" not in snippet and "alias " not in snippet


def test_without_local_scope_local_first_stays_and_the_run_says_so(host_factory, s3, bucket_name):
    host = host_factory("system")
    res = migrate(host, extra={"migrate_copy_scope": ["cache"]})
    assert res.rc == 0, res
    said = " ".join(str(t["result"].get("msg", "")) for t in res.tasks)
    assert "NOT enforced" in said, said[-2000:]
    snippet = Path(host.layout["snippets"], "fediverse_media-system.conf").read_text()
    assert "try_files $uri @fediverse_media_bucket;" in snippet


def test_warm_media_cache_survives_a_restart_and_the_app_zone_adopts_none(host_factory, s3, bucket_name):
    """Mastodon's CACHE zone (dist/nginx.conf: /var/cache/nginx) with a short inactive: after a restart,
    the cache loader (60 s after start) must not adopt the media entries (no unlink() ... failed)."""
    host = host_factory("subdomain", app_inactive="5s")
    res = migrate(host)
    assert res.rc == 0, res
    keys = public_keys(host.instance.expected, "cache/")[:4]
    for key in keys:
        host.get_media(key)
        assert host.get_media(key).header("X-Cache") == "HIT"
    media_files = {os.path.join(d, f) for d, _, files in os.walk(host.layout["cache"]) for f in files}
    assert len(media_files) >= len(keys)
    host.nginx.restart()
    for key in keys:
        assert host.get_media(key).header("X-Cache") == "HIT"
    time.sleep(60 + 5 + 10)  # the loader starts 60 s after nginx; the app zone's inactive is 5 s
    for key in keys:
        r = host.get_media(key)
        assert (r.status, r.header("X-Cache")) == (200, "HIT"), r
    with open(host.nginx.error_log) as fh:
        log = fh.read()
    assert "unlink()" not in log and "[crit]" not in log, log[-3000:]
    assert media_files <= {os.path.join(d, f) for d, _, files in os.walk(host.layout["cache"]) for f in files}
    # The app's zone holds only its own entries (the backend's pages), none of the media.
    app_files = [os.path.join(d, f) for d, _, files in os.walk(host.layout["app_cache"]) for f in files]
    assert not set(app_files) & media_files


def test_mastodon_4_1_2_directory_mode_fails_in_preflight(host_factory, s3, bucket_name):
    host = host_factory("directory", mastodon_version=(4, 1, 2))
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    res = migrate(host)
    assert res.rc != 0
    message = " ".join(res.failure_messages())
    assert "4.1.3" in message and "4.1.2" in message and "Nothing was changed" in message, message
    assert keys_in(s3, bucket_name) is None
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before




@pytest.mark.parametrize("case, extra, message", [
    ("media host served by another site", {"migrate_media_domain": "media." + APP_HOST}, "already served by"),
    ("media host is the app's name", {"migrate_media_domain": APP_HOST}, "other than migrate_domain"),
    ("cache inside Mastodon's cache", {"nginx_proxy_cache_path": "@app_cache/fediverse_media"}, "is inside"),
    ("cache containing Mastodon's cache", {"nginx_proxy_cache_path": "@root/var/cache"}, "contains"),
    ("header injection", {"nginx_proxy_extra_headers": {"X": 'a"; return 200 "pwned'}}, "refused values"),
    ("header name injection", {"nginx_proxy_extra_headers": {"X-A \"b\"; return 200 x; #": "v"}}, "refused names"),
    ("cors injection", {"nginx_proxy_cors_origin": '*"; return 200 "pwned'}, "nginx_proxy_cors_origin must be"),
    ("resolver injection", {"nginx_proxy_resolvers": ["127.0.0.1; return 200 pwned"]}, "nginx_proxy_resolvers must be"),
    ("newline in a size", {"nginx_proxy_cache_max_size": "20g\n"}, "nginx_proxy_cache_max_size must be"),
    ("brace in a path", {"nginx_proxy_cache_path": "/var/cache/x;}} server {"}, "must be absolute paths"),
    ("domain injection", {"migrate_media_domain": "s3.example.social; return 200"}, "must be a DNS name"),
    ("extra media host", {"migrate_extra_media_hosts": ["https://a.example,\nS3_ENABLED=false"]}, "refused"),
])
def test_bad_proxy_input_fails_before_anything_changes(host_factory, s3, bucket_name, case, extra, message):
    host = host_factory("subdomain")
    # Another enabled site already serving media.DOMAIN (on the same listeners).
    other = os.path.join(host.layout["available"], "other")
    Path(other).write_text("server {\n    listen 127.0.0.1:%d;\n    server_name media.%s;\n    return 404;\n}\n"
                           % (host.http_port, APP_HOST))
    os.symlink(other, os.path.join(host.layout["enabled"], "other"))
    host.nginx.reload()
    extra = {k: (v.replace("@app_cache", host.layout["app_cache"]).replace("@root", host.root)
                 if isinstance(v, str) else v) for k, v in extra.items()}
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    res = migrate(host, extra=extra)
    assert res.rc != 0, case
    assert any(message in m for m in all_messages(res)), (case, all_messages(res))
    assert keys_in(s3, bucket_name) is None
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before
    assert not os.path.exists(host.layout["cache"])
# Issue 20 finding 11: what the nginx -T check used to miss, in the real nginx -T output of the host.
HIDDEN_SITES = {
    # Another site's file with the base name of the proxy's own site (sites-enabled/fediverse_media.conf),
    # in conf.d: it used to be skipped by base name.
    "same base name": ("conf_d", "fediverse_media.conf", "server {{\n    listen 127.0.0.1:{port};\n"
                       "    server_name {name};\n    return 404;\n}}\n"),
    # An escaped quote, then # inside the string: the rest of the line used to be taken as a comment.
    "escaped quote": ("conf_d", "other.conf", "server {{\n    listen 127.0.0.1:{port};\n"
                      "    add_header X-Note \"a \\\" # b\"; server_name {name};\n    return 404;\n}}\n"),
}


@pytest.mark.parametrize("case", sorted(HIDDEN_SITES))
def test_nginx_T_conflict_hidden_from_the_old_check_is_refused(host_factory, s3, bucket_name, case):
    host = host_factory("subdomain")
    where, name, text = HIDDEN_SITES[case]
    path = os.path.join(host.layout[where], name)
    Path(path).write_text(text.format(port=host.http_port, name="s3." + APP_HOST))
    ok, out = host.nginx.test()
    assert ok, out  # nginx takes it (a conflicting server name is only a warning)
    host.nginx.reload()
    env_before = Path(host.env_file).read_bytes()
    nginx_before = nginx_files(host)
    res = migrate(host)
    assert res.rc != 0, case
    messages = all_messages(res)
    assert any("server_name s3.%s is already served by %s" % (APP_HOST, path) in m for m in messages), messages
    assert keys_in(s3, bucket_name) is None
    assert Path(host.env_file).read_bytes() == env_before
    assert nginx_files(host) == nginx_before
    assert not os.path.exists(host.layout["cache"])


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
    assert host.get_media(suspended_media).status in (403, 404)
    assert host.get_media(suspended_avatar).status == 200

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
    assert host.get_media(handed_out).status == 200
    # The private object is private at the endpoint and through the proxy.
    assert host.get_media(new[2]["keys"][0]).status in (403, 404)

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
    local = host.get("/system/" + new[0]["keys"][0], APP_HOST)
    assert (local.status, local.body) == (200, bodies[new[0]["keys"][0]])
    # The URL handed out during the migration still answers (the proxy stays).
    assert host.get_media(handed_out).status == 200

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


# --- issue 20, finding 2: the rollback restores .env.production through the safe room ----------------

ROOT_SECRET = "Root-Only-S3cret-Pw"


def give_live_dir_to(appuser, host, mode=0o640):
    """The app's live directory and .env.production belong to the real app user, as on a server."""
    os.lchown(host.live, appuser.uid, appuser.gid)
    os.lchown(host.env_file, appuser.uid, appuser.gid)
    os.chmod(host.env_file, mode)


def test_rollback_keeps_the_app_users_owner_and_mode_of_env_production(host_factory, appuser, admin):
    """Migrate and roll back a host whose live directory belongs to the real app user: after the rollback
    .env.production is the original again, still the app user's with its mode, and the app user can read it
    (Mastodon starts). A second rollback changes nothing in it.
    Every run is an admin's as usual (issue 24 item 2): connected as an unprivileged user with sudo (fos-admin,
    neither root nor the app user), the playbooks become root, which the app user's files, the root-owned
    nginx files and the nginx reload need."""
    host = host_factory("system")
    give_live_dir_to(appuser, host, 0o640)
    original = Path(host.env_file).read_bytes()
    res = migrate(host, as_user=admin)
    assert res.rc == 0, res
    assert Path(host.env_file).read_bytes() != original
    st = os.lstat(host.env_file)
    assert (st.st_uid, st.st_mode & 0o7777) == (appuser.uid, 0o640)
    # Written by root, not by the connection user: the proxy's files and the retired cache.
    snippet = os.path.join(host.layout["snippets"], "fediverse_media-system.conf")
    assert os.lstat(snippet).st_uid == 0
    assert os.path.isdir(os.path.join(host.system_root, "cache.old"))
    assert not any(os.lstat(os.path.join(d, f)).st_uid == admin.uid for d, _, fs in os.walk(host.root) for f in fs)

    back = migrate(host, playbook=ROLLBACK, as_user=admin)
    assert back.rc == 0, back
    assert back.task("Restore the original configuration file")["changed"] is True
    st = os.lstat(host.env_file)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (appuser.uid, appuser.gid, 0o640)
    assert Path(host.env_file).read_bytes() == original
    appuser.call(Path(host.env_file).read_bytes)  # as the app user: readable

    again = migrate(host, playbook=ROLLBACK, as_user=admin)
    assert again.rc == 0, again
    assert again.task("Restore the original configuration file")["changed"] is False
    st = os.lstat(host.env_file)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (appuser.uid, appuser.gid, 0o640)


def test_rollback_refuses_an_original_swapped_for_a_link_between_its_steps(host_factory, appuser, tmp_path):
    """After the rollback checked the kept original, and before it restores it (while nginx_proxy tests its
    configuration), the app user swaps the original for a link to a root-only file: nothing of that file
    reaches .env.production or the output; the restore is refused."""
    host = host_factory("system")
    give_live_dir_to(appuser, host, 0o600)
    assert migrate(host).rc == 0
    switched = Path(host.env_file).read_bytes()
    orig = host.env_file + ".fediverse-object-storage.orig"
    assert os.path.isfile(orig) and not os.path.islink(orig)

    secret_dir = os.path.join(host.root, "root-only")
    os.mkdir(secret_dir, 0o700)
    victim = os.path.join(secret_dir, "shadow-like")
    Path(victim).write_text("DB_PASS=%s\n" % ROOT_SECRET)
    os.chmod(victim, 0o600)
    marker = os.path.join(host.root, "swapped")
    hook = os.path.join(host.root, "nginx-test-hook.sh")
    Path(hook).write_text(
        "#!/bin/sh\n"
        "if [ ! -e %(marker)s ]; then\n"
        "  runuser -u %(user)s -- ln -sfn %(victim)s %(orig)s && touch %(marker)s\n"
        "fi\n"
        "exec %(test)s\n" % dict(marker=marker, user=appuser.name, victim=victim, orig=orig,
                                 test=host.extra_vars["nginx_proxy_test_command"]))
    back = migrate(host, playbook=ROLLBACK, extra={"nginx_proxy_test_command": "sh " + hook})
    assert os.path.exists(marker), "the hook did not run between the rollback's steps"
    assert os.path.islink(orig)
    out = back.stdout + back.stderr
    assert ROOT_SECRET not in out
    assert ROOT_SECRET.encode() not in Path(host.env_file).read_bytes()
    assert back.rc != 0
    assert "symbolic link" in back.task("Restore the original configuration file")["msg"]
    assert Path(host.env_file).read_bytes() == switched
    st = os.lstat(host.env_file)
    assert (st.st_uid, st.st_mode & 0o7777) == (appuser.uid, 0o600)
