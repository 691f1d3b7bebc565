"""Role fediverse.object_storage.mastodon on a .env.production in the shape of Mastodon's sample.

Runs the role through ansible-playbook (tests/ansible_helpers.py). The restart handler is pointed
at a command that writes a marker file (there is no systemd here), which proves it was notified.
The role's pre-flight probe (write + remove an object with the app's keys) runs against the real
Ceph RGW over HTTPS; the tests that use the Vultr shortcut ``ewr1`` (no internet) turn it off.
"""

import glob
import os
import re
import secrets
import shutil

import pytest

from tests.ansible_helpers import run_playbook

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "env.production.sample-shape")

PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: fediverse.object_storage.mastodon
"""

S3_KEYS = ("S3_ENABLED", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ENDPOINT",
           "S3_ALIAS_HOST", "S3_REGION", "S3_PERMISSION", "S3_KEY_PREFIX")


@pytest.fixture
def live(tmp_path):
    """A Mastodon 'live' directory holding a copy of the fixture, and the role's variables."""
    directory = tmp_path / "live"
    directory.mkdir()
    env = directory / ".env.production"
    shutil.copyfile(FIXTURE, env)
    os.chmod(env, 0o600)
    marker = tmp_path / "restarted"
    extra = dict(
        mastodon_env_path=str(env),
        mastodon_domain="social.example.net",
        mastodon_proxy_mode="directory",
        mastodon_s3_bucket="social-example-media",
        mastodon_s3_endpoint="ewr1",
        mastodon_s3_verify=False,
        mastodon_s3_access_key="AK" + secrets.token_hex(8).upper(),
        mastodon_s3_secret_key="Sk" + secrets.token_urlsafe(24),
        mastodon_s3_extra={"S3_KEY_PREFIX": "media"},
        mastodon_services=[],
        mastodon_restart_command="touch %s" % marker,
    )
    return env, marker, extra


def on_rgw(extra, rgw, bucket, **more):
    """The role's variables pointed at the test Ceph RGW (HTTPS, its CA) with the probe on."""
    extra = dict(extra, mastodon_s3_endpoint=rgw.https_endpoint, mastodon_s3_ca_bundle=rgw.ca_bundle,
                 mastodon_s3_bucket=bucket, mastodon_s3_access_key=rgw.access_key,
                 mastodon_s3_secret_key=rgw.secret_key, mastodon_s3_verify=True)
    extra.update(more)
    return extra


def key_of(line):
    match = re.match(r"^#?\s*([A-Z0-9_]+)=", line)
    return match.group(1) if match else None


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def test_role_sets_s3_keys_keeps_other_lines_backs_up_and_restarts(live, rgw, bucket, s3):
    env, marker, live_extra = live
    extra = on_rgw(live_extra, rgw, bucket, mastodon_s3_region="ewr1")
    original = read(env)
    result = run_playbook(PLAY, extra_vars=extra)
    assert result.rc == 0, result
    assert result.stats["localhost"]["changed"] == 2, result  # the file, and the restart handler
    assert marker.exists(), "the restart handler did not run"

    new = read(env)
    lines = new.decode().splitlines(True)
    values = dict((line.split("=", 1)[0], line.rstrip("\n").split("=", 1)[1]) for line in lines
                  if re.match(r"^[A-Z0-9_]+=", line))
    assert values["S3_ENABLED"] == "true"
    assert values["S3_BUCKET"] == bucket
    assert values["AWS_ACCESS_KEY_ID"] == rgw.access_key
    assert values["AWS_SECRET_ACCESS_KEY"] == rgw.secret_key
    assert values["S3_ENDPOINT"] == rgw.https_endpoint
    assert values["S3_ALIAS_HOST"] == "social.example.net/storage"
    assert values["S3_REGION"] == "ewr1"
    assert values["S3_PERMISSION"] == "public-read"
    assert values["S3_KEY_PREFIX"] == "media"

    # every other line byte-identical, in the same order
    old_lines = original.decode().splitlines(True)
    keep_old = [line for line in old_lines if key_of(line) not in S3_KEYS]
    keep_new = [line for line in lines if key_of(line) not in S3_KEYS]
    appended = keep_new[len(keep_old):]
    assert keep_new[:len(keep_old)] == keep_old
    assert all(not line.strip() or line.startswith("# Object storage") for line in appended)
    # commented-out sample keys were replaced where they stood, not duplicated
    for key in ("S3_ENABLED", "S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "S3_ALIAS_HOST"):
        index = next(i for i, line in enumerate(old_lines) if line.startswith("# %s=" % key))
        assert lines[index].startswith("%s=" % key)
        assert sum(1 for line in lines if key_of(line) == key) == 1
    assert lines.index("S3_REGION=ewr1\n") == old_lines.index("S3_REGION=us-east-1\n")
    assert os.stat(env).st_mode & 0o777 == 0o600

    backups = glob.glob(str(env) + ".*~")
    assert len(backups) == 1
    assert read(backups[0]) == original
    module_result = result.task("Point Mastodon's media storage")
    assert module_result["backup_file"] == backups[0]
    assert "S3_BUCKET" in module_result["changed_keys"]
    # the probe object was written and removed again
    for name in ("Write a probe object", "Remove the probe object"):
        probe = result.task(name)
        assert not probe.get("failed") and not probe.get("skipped"), probe
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0

    # second run: nothing to do, no new backup, no restart
    marker.unlink()
    again = run_playbook(PLAY, extra_vars=extra)
    assert again.rc == 0, again
    assert again.stats["localhost"]["changed"] == 0, again
    assert read(env) == new
    assert not marker.exists()
    assert len(glob.glob(str(env) + ".*~")) == 1


def test_check_mode_leaves_the_file_untouched(live):
    env, marker, extra = live
    original = read(env)
    stat = os.stat(env)
    result = run_playbook(PLAY, extra_vars=extra, check=True, diff=True)
    assert result.rc == 0, result
    task = result.task("Point Mastodon's media storage")
    assert task["changed"] is True
    assert "S3_ENDPOINT" in task["changed_keys"]
    after = task["diff"]["after"] if isinstance(task["diff"], dict) else task["diff"][0]["after"]
    assert "\nS3_ENDPOINT=https://ewr1.vultrobjects.com\n" in after
    assert "\nS3_REGION=ewr1\n" in after
    assert "\nS3_ALIAS_HOST=social.example.net/storage\n" in after
    assert read(env) == original
    assert os.stat(env).st_mtime_ns == stat.st_mtime_ns
    assert glob.glob(str(env) + ".*~") == []
    assert not marker.exists()


def test_no_secret_in_output_or_diff(live):
    env, _marker, extra = live
    result = run_playbook(PLAY, extra_vars=extra, diff=True, verbosity=1, callback="default")
    assert result.rc == 0, result.stderr
    output = result.stdout + result.stderr
    # the diff was shown (so the check below looks at it)
    assert "+S3_BUCKET=social-example-media" in output
    assert "+AWS_SECRET_ACCESS_KEY=********" in output
    secrets_in_file = [extra["mastodon_s3_access_key"], extra["mastodon_s3_secret_key"], "Pg-Pass-4f1d9c7e",
                       "Smtp-Pass-8a2b4c6d", "9b1e6f2d4c8a0e3f7b5d1c9a2e4f6b8d", "Vapid-Private-2b7c3d9e0f1a"]
    for secret in secrets_in_file:
        assert secret not in output
    # and the same with the JSON callback (what AWX and the tests read), changing the secret again
    new_secret = "Sk" + secrets.token_urlsafe(24)
    result = run_playbook(PLAY, extra_vars=dict(extra, mastodon_s3_secret_key=new_secret), diff=True, verbosity=2)
    assert result.rc == 0, result
    assert result.task("Point Mastodon's media storage")["changed_keys"] == ["AWS_SECRET_ACCESS_KEY"]
    assert "AWS_SECRET_ACCESS_KEY=******** (changed)" in result.stdout
    for secret in secrets_in_file + [new_secret]:
        assert secret not in result.stdout + result.stderr


def test_missing_env_file_fails_clearly_before_any_change(live, tmp_path):
    _env, marker, extra = live
    missing = tmp_path / "nowhere" / ".env.production"
    result = run_playbook(PLAY, extra_vars=dict(extra, mastodon_env_path=str(missing)))
    assert result.rc != 0
    messages = " ".join(result.failure_messages())
    assert "does not exist" in messages and str(missing) in messages and "nothing was changed" in messages
    assert not missing.parent.exists()
    assert result.stats["localhost"]["changed"] == 0
    assert not marker.exists()


def test_rejected_keys_fail_before_any_change(live, rgw, bucket):
    env, marker, extra = live
    original = read(env)
    result = run_playbook(PLAY, extra_vars=on_rgw(extra, rgw, bucket, mastodon_s3_secret_key="wrong" + rgw.secret_key[5:]))
    assert result.rc != 0
    messages = " ".join(result.failure_messages())
    # a HEAD with a bad signature gets a bare 403 (no error code in a HEAD response)
    assert "403" in messages or "SignatureDoesNotMatch" in messages, messages
    assert read(env) == original
    assert glob.glob(str(env) + ".*~") == [] and not marker.exists()
    assert rgw.secret_key[5:] not in result.stdout


@pytest.mark.parametrize("mode,alias", [("subdomain", "s3.social.example.net"), ("system", "social.example.net/system")])
def test_alias_host_follows_the_proxy_mode(live, mode, alias):
    env, _marker, extra = live
    result = run_playbook(PLAY, extra_vars=dict(extra, mastodon_proxy_mode=mode))
    assert result.rc == 0, result
    assert ("S3_ALIAS_HOST=%s\n" % alias).encode() in read(env)
