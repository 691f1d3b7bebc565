"""Hostile local input against the config-file modules, through ansible-playbook as root.

The app user owns the directory holding .env.production / default.yml: it can plant symbolic
links at any name there. Root must never write through one (issue 12, items 1 and 4).
"""

import json
import os
import re
import shutil
import stat
import tempfile
import textwrap
from pathlib import Path

import pytest

from tests.ansible_helpers import module_play, run_module, run_playbook

APP_UID = 1000
APP_GID = 1000
OLD_ENV_TMP = "..env.production.ansible-tmp"  # the fixed names of the earlier code
OLD_YML_TMP = ".default.yml.ansible-tmp"

ENV_TEXT = textwrap.dedent("""\
    LOCAL_DOMAIN=social.example.net
    DATABASE_URL=postgres://mastodon:Pg-S3cret-Pw@db.internal:5432/mastodon_production
    REDIS_URL=redis://:Redis-S3cret-Pw@127.0.0.1:6379/0
    CACHE_REDIS_URL=rediss://cache:Cache-S3cret-Pw@cache.internal:6380
    DB_PASS=Db-S3cret-Pw
    SMTP_LOGIN=mailer
    PRIVATE_SIGNING_NOTE="first line Multi-S3cret-Line1
    Multi-S3cret-Line2 continues
    last"
    # old: DATABASE_URL=postgres://old:Old-S3cret-Pw@db.old/mastodon
    S3_ENABLED=false
    """)
SECRETS = ("Pg-S3cret-Pw", "Redis-S3cret-Pw", "Cache-S3cret-Pw", "Db-S3cret-Pw", "Multi-S3cret-Line1",
           "Multi-S3cret-Line2", "Old-S3cret-Pw", "New-AK-S3cret", "New-SK-S3cret")


def env_play(path, **more):
    args = dict(path=str(path), settings={"S3_ENABLED": True, "S3_BUCKET": "media"},
                secret_settings={"AWS_ACCESS_KEY_ID": "New-AK-S3cret", "AWS_SECRET_ACCESS_KEY": "New-SK-S3cret"})
    args.update(more)
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Set env
      fediverse.object_storage.mastodon_env: %s
""" % json.dumps(args)


def misskey_play(path):
    args = dict(path=str(path), bucket="media", prefix="drive", base_url="https://s3.example.net/media",
                endpoint="ewr1", access_key="AK-S3cret", secret_key="SK-S3cret")
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Set drive
      fediverse.object_storage.misskey_config: %s
""" % json.dumps(args)


@pytest.fixture
def victim(tmp_path):
    """A root-owned 0440 file outside the app's directory (what an attacker wants to overwrite)."""
    path = tmp_path / "root-only" / "shadow-like"
    path.parent.mkdir()
    path.write_bytes(b"root:secret-hash:19000::::::\n")
    os.chown(path, 0, 0)
    os.chmod(path, 0o440)
    return path


def snapshot(path):
    st = os.lstat(path)
    return path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def app_dir(tmp_path, name):
    directory = tmp_path / name
    directory.mkdir()
    os.chown(directory, APP_UID, APP_GID)
    os.chmod(directory, 0o755)
    return directory


def entries(directory):
    return sorted(os.listdir(directory))


def test_mastodon_env_never_writes_through_planted_temp_links(tmp_path, victim):
    live = app_dir(tmp_path, "live")
    env = live / ".env.production"
    env.write_text(ENV_TEXT)
    os.chown(env, APP_UID, APP_GID)
    os.chmod(env, 0o640)
    # The app user plants links at the old fixed temp name and at every name it can guess.
    os.symlink(str(victim), str(live / OLD_ENV_TMP))
    os.symlink(str(victim), str(live / ".env.production.tmp"))
    before_victim = snapshot(victim)
    listing_before = set(entries(live))

    res = run_playbook(env_play(env))
    assert res.rc == 0, res
    assert snapshot(victim) == before_victim  # content, owner, mode unchanged
    assert os.path.islink(live / OLD_ENV_TMP) and os.readlink(live / OLD_ENV_TMP) == str(victim)
    text = env.read_text()
    assert "S3_BUCKET=media" in text and "AWS_SECRET_ACCESS_KEY=New-SK-S3cret" in text
    st = os.lstat(env)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (APP_UID, APP_GID, 0o640)
    assert not stat.S_ISLNK(st.st_mode)
    # No temporary file is left, only the backup was added; no predictable name was used.
    added = set(entries(live)) - listing_before
    assert len(added) == 1 and re.match(r"^\.env\.production\.\d+\.\d{4}-\d\d-\d\d@\d\d:\d\d:\d\d~$", added.pop())


def test_mastodon_env_refuses_a_symlinked_env_file(tmp_path, victim):
    live = app_dir(tmp_path, "live")
    env = live / ".env.production"
    os.symlink(str(victim), str(env))
    before_victim = snapshot(victim)
    res = run_playbook(env_play(env), diff=True, callback="default")
    assert res.rc != 0
    assert "symbolic link" in res.stdout
    assert "secret-hash" not in res.stdout + res.stderr  # the link's target is not read into a diff
    assert snapshot(victim) == before_victim
    assert entries(live) == [".env.production"]


def test_misskey_config_never_writes_through_planted_temp_links(tmp_path, victim):
    config_dir = app_dir(tmp_path, ".config")
    default = config_dir / "default.yml"
    default.write_text("url: https://mk.example.net/\nport: 3000\n")
    os.chown(default, APP_UID, APP_GID)
    os.chmod(default, 0o600)
    os.symlink(str(victim), str(config_dir / OLD_YML_TMP))
    before_victim = snapshot(victim)
    res = run_playbook(misskey_play(default))
    assert res.rc == 0, res
    assert snapshot(victim) == before_victim
    assert "bucket: media" in default.read_text()
    st = os.lstat(default)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (APP_UID, 0o600)
    assert not [n for n in entries(config_dir) if n.endswith(".tmp")]


def test_misskey_config_refuses_a_symlinked_config(tmp_path, victim):
    config_dir = app_dir(tmp_path, ".config")
    os.symlink(str(victim), str(config_dir / "default.yml"))
    before_victim = snapshot(victim)
    res = run_playbook(misskey_play(config_dir / "default.yml"))
    assert res.rc != 0
    assert snapshot(victim) == before_victim


def test_diff_masks_url_credentials_and_multiline_values(tmp_path):
    live = tmp_path / "live"
    live.mkdir()
    env = live / ".env.production"
    env.write_text(ENV_TEXT)
    # Changes spread over the file, and a diff context wider than the file (the checkout's ansible.cfg keeps
    # one line; an admin may keep Ansible's three or more): every line of the file is in the diff.
    play = env_play(env, settings={"LOCAL_DOMAIN": "social.example.org", "SMTP_LOGIN": "mail2",
                                   "S3_ENABLED": True, "S3_BUCKET": "media"})
    for check in (True, False):
        res = run_playbook(play, diff=True, check=check, callback="default", env={"ANSIBLE_DIFF_CONTEXT": "1000"})
        assert res.rc == 0, res.stdout + res.stderr
        out = res.stdout + res.stderr
        assert "+S3_BUCKET=media" in out  # the diff is there
        assert "postgres://mastodon:********@db.internal" in out
        assert "redis://:********@127.0.0.1" in out
        for secret in SECRETS:
            assert secret not in out, secret


# --- issue 20, finding 8: app-owned files are read through the safe room, parse errors quote nothing ---

ROOT_SECRET = "Root-Only-S3cret-Pw"


@pytest.fixture
def app_tree(appuser):
    """A directory the real app user owns, reachable by it (not under pytest's 0700 tmp_path), and a
    root-only file outside it whose content must never be read into a job's output."""
    base = tempfile.mkdtemp(prefix="fos-test-i20-config-")
    os.chmod(base, 0o755)
    app = os.path.join(base, "app")
    os.makedirs(os.path.join(app, ".config"))
    appuser.own(app)
    secret_dir = os.path.join(base, "root-only")
    os.mkdir(secret_dir, 0o700)
    victim = os.path.join(secret_dir, "db-credentials")
    with open(victim, "w") as fh:
        # A line PyYAML quotes in its error, and dotenv/YAML settings a module would use.
        fh.write("db:\n  host: 127.0.0.1\n  pass: %s: [unbalanced\nDB_PASS=%s\nDB_HOST=127.0.0.1\n"
                 % (ROOT_SECRET, ROOT_SECRET))
    os.chmod(victim, 0o600)
    yield app, victim
    shutil.rmtree(base, ignore_errors=True)


def plant_link(appuser, target, link):
    appuser.call(os.symlink, target, link)
    assert os.lstat(link).st_uid == appuser.uid


@pytest.mark.parametrize("module, args", [
    ("misskey_drive_move", {"config_file": "{app}/.config/default.yml", "state": "rolled_back"}),
    ("misskey_storage_check", {"config_file": "{app}/.config/default.yml", "line": "v10"}),
    ("misskey_meta", {"config_file": "{app}/.config/default.yml", "state": "restored"}),
    ("media_info", {"env_file": "{app}/.env.production", "sample_size": 0}),
    ("misskey_info", {"path": "{app}"}),
])
def test_a_link_planted_at_an_app_owned_config_file_is_refused(app_tree, appuser, module, args):
    """The app user links default.yml / .env.production / package.json to a root-only file: root refuses to
    read through the link (before any database or S3 connection), and nothing of the file reaches the output."""
    app, victim = app_tree
    args = {k: v.format(app=app) if isinstance(v, str) else v for k, v in args.items()}
    for name in (".config/default.yml", ".env.production", "package.json"):
        plant_link(appuser, victim, os.path.join(app, name))
    res = run_module(module, args, callback="default")
    out = res.stdout + res.stderr
    assert res.rc != 0, out
    assert "symbolic link" in out, out
    assert ROOT_SECRET not in out
    assert "unbalanced" not in out


@pytest.mark.parametrize("module, args", [
    ("misskey_drive_move", {"config_file": "{app}/.config/default.yml", "state": "rolled_back"}),
    ("misskey_storage_check", {"config_file": "{app}/.config/default.yml", "line": "v10"}),
])
def test_a_yaml_error_names_the_place_never_the_content(app_tree, appuser, module, args):
    """A default.yml with a secret on a line PyYAML cannot parse: the error gives the file, line and column,
    never a snippet of the line (PyYAML's message quotes it)."""
    app, _victim = app_tree
    args = {k: v.format(app=app) if isinstance(v, str) else v for k, v in args.items()}
    default = os.path.join(app, ".config", "default.yml")

    def write():
        with open(default, "w") as fh:
            fh.write("url: https://mk.example.net/\ndb:\n  host: 127.0.0.1\n  pass: App-S3cret-Pw: [x\n"
                     "drive:\n  storage: fs\n")
    appuser.call(write)
    res = run_module(module, args, callback="default")
    out = res.stdout + res.stderr
    assert res.rc != 0, out
    assert "default.yml is not valid YAML (line 4, column" in out, out
    assert "App-S3cret-Pw" not in out


def test_config_original_restores_with_a_masked_diff_in_check_mode_then_changes_nothing(app_tree, appuser):
    """config_original state=restored: --check --diff shows the change with secrets masked and writes nothing;
    the run restores with the app user's owner and mode; a second run reports no change."""
    app, _victim = app_tree
    env = os.path.join(app, ".env.production")
    switched = ENV_TEXT.replace("S3_ENABLED=false", "S3_ENABLED=true\nAWS_SECRET_ACCESS_KEY=New-SK-S3cret")

    def lay_out():
        with open(env, "w") as fh:
            fh.write(switched)
        os.chmod(env, 0o640)
        with open(env + ".fediverse-object-storage.orig", "w") as fh:
            fh.write(ENV_TEXT)
    appuser.call(lay_out)
    play = module_play("config_original", {"path": env, "state": "restored"})
    res = run_playbook(play, check=True, diff=True, callback="default")
    out = res.stdout + res.stderr
    assert res.rc == 0 and "changed=1" in out, out
    assert "-S3_ENABLED=true" in out and "+S3_ENABLED=false" in out
    for secret in SECRETS:
        assert secret not in out, secret
    assert Path(env).read_text() == switched
    assert run_playbook(play).changed == 1
    assert Path(env).read_text() == ENV_TEXT
    st = os.lstat(env)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (appuser.uid, appuser.gid, 0o640)
    assert run_playbook(play).changed == 0


def test_config_original_kept_only_from_a_file_not_yet_switched(app_tree, appuser):
    """config_original state=kept with unless_set: the original is the pre-switch file; a re-run on the
    switched file (S3_ENABLED=true and this bucket, read with dotenv's rules) keeps it as it was."""
    app, _victim = app_tree
    env = os.path.join(app, ".env.production")
    orig = env + ".fediverse-object-storage.orig"
    appuser.call(lambda: Path(env).write_text(ENV_TEXT))
    wanted = {"S3_ENABLED": "true", "S3_BUCKET": "media-bucket"}
    play = module_play("config_original", {"path": env, "state": "kept", "unless_set": wanted})
    assert run_playbook(play).changed == 1
    assert Path(orig).read_text() == ENV_TEXT
    switched = ENV_TEXT.replace("S3_ENABLED=false", "S3_ENABLED='true'\nS3_BUCKET=media-bucket")
    appuser.call(lambda: Path(env).write_text(switched))
    assert run_playbook(play).changed == 0
    assert Path(orig).read_text() == ENV_TEXT
    other = ENV_TEXT.replace("S3_ENABLED=false", "S3_ENABLED=true\nS3_BUCKET=another-bucket")
    appuser.call(lambda: Path(env).write_text(other))
    assert run_playbook(play).changed == 1
    assert Path(orig).read_text() == other
