"""Role fediverse.object_storage.misskey: v10 default.yml, v11+/v12/current meta row in real PostgreSQL
(the meta tables of each version and the install: tests/misskey_host.py).
"""

import glob
import os
import secrets
import shutil
from pathlib import Path

import pytest
import yaml

from tests.fixtures.misskey_drive import SHARKEY
from tests.ansible_helpers import run_playbook
from tests.misskey_host import (
    ROLE_PLAY,
    STORAGE_COLUMNS,
    pg_misskey,
    read_meta,
    role_vars,
    set_meta,
    storage_of,
    write_misskey,
)

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "misskey-v10-default.yml")

# --- v10 -------------------------------------------------------------------------------------

@pytest.fixture
def v10(tmp_path):
    directory = tmp_path / "misskey"
    config = write_misskey(directory, "10.102.544-m544", Path(FIXTURE).read_text(encoding="utf-8"))
    marker = tmp_path / "restarted"
    return config, marker, role_vars(directory, marker)


def test_v10_drive_section_set_and_everything_else_kept(v10):
    config, marker, extra = v10
    original = config.read_text()
    result = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert result.rc == 0, result
    assert marker.exists(), "the restart handler did not run"
    new = config.read_text()
    loaded = yaml.safe_load(new)
    assert loaded["drive"] == {
        "storage": "minio", "bucket": "mk-example-media", "prefix": "misskey", "baseUrl": "https://s3.mk.example.net",
        "config": {"endPoint": "ewr1.vultrobjects.com", "useSSL": True, "accessKey": extra["misskey_s3_access_key"],
                   "secretKey": extra["misskey_s3_secret_key"], "useProxy": True, "setPublicRead": False,
                   "s3ForcePathStyle": True}}
    before = yaml.safe_load(original)
    assert set(loaded) == set(before)
    for key in before:
        if key != "drive":
            assert loaded[key] == before[key], key
    # all comments, in order; all lines outside the old drive: block byte-identical
    comments = [line for line in original.splitlines() if line.lstrip().startswith("#")]
    assert [line for line in new.splitlines() if line.lstrip().startswith("#")] == comments
    old_lines = original.splitlines(True)
    start = old_lines.index("drive:\n")
    new_lines = new.splitlines(True)
    assert new_lines[:start] == old_lines[:start]
    assert new_lines[-(len(old_lines) - start - 2):] == old_lines[start + 2:]
    backups = glob.glob(str(config) + ".*~")
    assert len(backups) == 1 and Path(backups[0]).read_text() == original

    marker.unlink()
    again = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert again.rc == 0, again
    assert again.stats["localhost"]["changed"] == 0, again
    assert config.read_text() == new and not marker.exists()


def test_v10_check_mode_and_diff_without_secrets(v10):
    config, marker, extra = v10
    original = config.read_bytes()
    result = run_playbook(ROLE_PLAY, extra_vars=dict(extra, misskey_proxy_mode="directory"), check=True, diff=True,
                          verbosity=1, callback="default")
    assert result.rc == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert "+  baseUrl: https://mk.example.net" in output and "+  prefix: storage" in output
    assert "+    secretKey: ********" in output
    for secret in (extra["misskey_s3_access_key"], extra["misskey_s3_secret_key"], "Mongo-Pass-73c1e9"):
        assert secret not in output
    assert config.read_bytes() == original
    assert glob.glob(str(config) + ".*~") == [] and not marker.exists()


# --- v11+ / PostgreSQL -----------------------------------------------------------------------

@pytest.mark.parametrize("version,on_rgw", [("12.117.1", False), ("2025.4.0", True)])
def test_meta_row_set_rerun_unchanged(tmp_path, pg, request, version, on_rgw):
    name, config, marker, extra = pg_misskey(tmp_path, pg, version)
    endpoint, port, region = "ewr1.vultrobjects.com", None, "ewr1"
    if on_rgw:  # the pre-flight probe against the real Ceph RGW over HTTPS
        rgw, bucket, s3 = (request.getfixturevalue(f) for f in ("rgw", "bucket", "s3"))
        extra.update(misskey_s3_endpoint=rgw.https_endpoint, misskey_s3_ca_bundle=rgw.ca_bundle,
                     misskey_s3_bucket=bucket, misskey_s3_access_key=rgw.access_key,
                     misskey_s3_secret_key=rgw.secret_key, misskey_s3_verify=True)
        # Misskey's S3 client reads the port from objectStorageEndpoint only; not Vultr: us-east-1
        endpoint, port, region = "127.0.0.1:%d" % rgw.https_port, rgw.https_port, "us-east-1"
    config_text = config.read_text()
    result = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert result.rc == 0, result
    assert marker.exists()
    if on_rgw:
        assert not result.task("Write a probe object").get("skipped")
        assert s3.list_objects_v2(Bucket=extra["misskey_s3_bucket"]).get("KeyCount") == 0
    [row] = read_meta(pg, name)
    expected = {
        "useObjectStorage": True, "objectStorageBucket": extra["misskey_s3_bucket"], "objectStoragePrefix": "storage",
        "objectStorageBaseUrl": "https://mk.example.net", "objectStorageEndpoint": endpoint,
        "objectStorageRegion": region, "objectStoragePort": port, "objectStorageUseSSL": True,
        "objectStorageAccessKey": extra["misskey_s3_access_key"], "objectStorageSecretKey": extra["misskey_s3_secret_key"],
        "objectStorageUseProxy": True, "objectStorageSetPublicRead": False, "objectStorageS3ForcePathStyle": True,
    }
    assert dict((c, row[c]) for c in STORAGE_COLUMNS) == expected
    assert (row["id"], row["name"], row["smtpPass"]) == ("x", "Example", "smtp-secret")
    task = result.task("in the meta table")
    assert task["skipped_columns"] == []
    assert config.read_text() == config_text  # v11+: default.yml is only read

    marker.unlink()
    again = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert again.rc == 0, again
    assert again.stats["localhost"]["changed"] == 0, again
    assert read_meta(pg, name) == [row] and not marker.exists()


def test_meta_only_existing_columns_v11(tmp_path, pg):
    name, _config, _marker, extra = pg_misskey(tmp_path, pg, "11.37.1")
    result = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert result.rc == 0, result
    task = result.task("in the meta table")
    assert sorted(task["skipped_columns"]) == ["objectStorageS3ForcePathStyle", "objectStorageSetPublicRead",
                                               "objectStorageUseProxy"]
    [row] = read_meta(pg, name)
    assert row["useObjectStorage"] is True and row["objectStorageBucket"] == "mk-example-media"
    assert run_playbook(ROLE_PLAY, extra_vars=extra).stats["localhost"]["changed"] == 0


def test_meta_check_mode_writes_nothing_and_diff_hides_secrets(tmp_path, pg):
    name, _config, marker, extra = pg_misskey(tmp_path, pg, "2025.4.0")
    before = read_meta(pg, name)
    result = run_playbook(ROLE_PLAY, extra_vars=extra, check=True, diff=True, verbosity=1, callback="default")
    assert result.rc == 0, result.stdout[-3000:]
    output = result.stdout + result.stderr
    assert "objectStorageBucket" in output and "mk-example-media" in output  # the diff was shown
    for secret in (extra["misskey_s3_access_key"], extra["misskey_s3_secret_key"], pg.password):
        assert secret not in output
    assert read_meta(pg, name) == before
    assert not marker.exists()
    json_run = run_playbook(ROLE_PLAY, extra_vars=extra, check=True)
    assert json_run.task("in the meta table")["changed"] is True
    assert "objectStorageSecretKey" in json_run.task("in the meta table")["changed_columns"]
    assert read_meta(pg, name) == before


# --- refusals before any change --------------------------------------------------------------

def test_unknown_version_fails_before_any_change(tmp_path, pg):
    name, config, marker, extra = pg_misskey(tmp_path, pg, "12.117.1")
    (config.parent.parent / "package.json").write_text('{"name": "cherrypick", "version": "4.11.1"}')
    before_db, before_file = read_meta(pg, name), config.read_bytes()
    result = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert result.rc != 0
    # CherryPick numbers its versions its own way; without basedMisskeyVersion it is refused, never guessed
    assert "CherryPick 4.11.1 is not supported" in " ".join(result.failure_messages())
    assert "basedMisskeyVersion" in " ".join(result.failure_messages())
    assert read_meta(pg, name) == before_db and config.read_bytes() == before_file
    assert result.stats["localhost"]["changed"] == 0 and not marker.exists()


def test_unknown_version_v10_file_untouched(v10):
    config, marker, extra = v10
    original = config.read_bytes()
    result = run_playbook(ROLE_PLAY, extra_vars=dict(extra, misskey_version="not-a-version"))
    assert result.rc != 0
    assert "cannot tell the Misskey version" in " ".join(result.failure_messages())
    assert config.read_bytes() == original and glob.glob(str(config) + ".*~") == []


@pytest.mark.parametrize("line", ["v10", "12.117.1"])
def test_system_mode_refused_with_explanation(tmp_path, pg, v10, line):
    if line == "v10":
        config, marker, extra = v10
        name = None
    else:
        name, config, marker, extra = pg_misskey(tmp_path / "pg", pg, line)
    before_db = read_meta(pg, name) if name else None
    before_file = config.read_bytes()
    result = run_playbook(ROLE_PLAY, extra_vars=dict(extra, misskey_proxy_mode="system"))
    assert result.rc != 0
    message = " ".join(result.failure_messages())
    assert "'system' does not apply to Misskey" in message and "/files/" in message
    assert config.read_bytes() == before_file
    if name:
        assert read_meta(pg, name) == before_db
    assert [t["name"] for t in result.tasks if "Find the Misskey version" in t["name"]] == []
    assert not marker.exists()


def test_missing_package_json_fails_clearly(v10):
    config, _marker, extra = v10
    os.unlink(config.parent.parent / "package.json")
    result = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert result.rc != 0
    assert "package.json does not exist" in " ".join(result.failure_messages())
    shutil.rmtree(config.parent)


def test_rejected_keys_fail_before_the_meta_row_changes(tmp_path, pg, rgw, bucket):
    name, _config, marker, extra = pg_misskey(tmp_path, pg, "12.117.1")
    extra.update(misskey_s3_endpoint=rgw.https_endpoint, misskey_s3_ca_bundle=rgw.ca_bundle, misskey_s3_bucket=bucket,
                 misskey_s3_access_key=rgw.access_key, misskey_s3_secret_key="bad" + rgw.secret_key[3:],
                 misskey_s3_verify=True)
    before = read_meta(pg, name)
    result = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert result.rc != 0
    assert "probe" in " ".join(result.failure_messages())
    assert read_meta(pg, name) == before and not marker.exists()


# --- rollback: the meta values from before the switch come back exactly (issue 11) ------------

ROLLBACK_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Roll Misskey back
      ansible.builtin.include_role:
        name: fediverse.object_storage.misskey
        tasks_from: rollback
"""

# What an admin had before: another provider, odd but legal values (trailing space, unicode, quotes).
PREVIOUS = {
    "useObjectStorage": True, "objectStorageBucket": "old-bucket", "objectStoragePrefix": "files/ with space ",
    "objectStorageBaseUrl": "https://cdn.old.example/ä", "objectStorageEndpoint": "minio.old.example",
    "objectStorageRegion": None, "objectStoragePort": 9000, "objectStorageUseSSL": False,
    "objectStorageAccessKey": "OLD'AK\"1", "objectStorageSecretKey": "old-S\u00e9cret \\n ",
    "objectStorageUseProxy": False, "objectStorageSetPublicRead": True, "objectStorageS3ForcePathStyle": False,
}


@pytest.mark.parametrize("version", ["12.117.1", "2025.4.0", SHARKEY])
def test_rollback_restores_the_previous_meta_values_exactly(tmp_path, pg, version):
    """Switch, rerun, rollback byte for byte; on Sharkey's meta too (package.json "sharkey", issue 23)."""
    name, _config, marker, extra = pg_misskey(tmp_path, pg, version)
    set_meta(pg, name, PREVIOUS)
    before = read_meta(pg, name)
    assert storage_of(pg, name) == PREVIOUS

    switch = run_playbook(ROLE_PLAY, extra_vars=extra)
    assert switch.rc == 0, switch
    assert switch.task("Find the Misskey version")["fork"] == ("Sharkey" if version == SHARKEY else "Misskey")
    switched = storage_of(pg, name)
    assert switched["objectStorageBucket"] == "mk-example-media"
    assert switched["objectStorageRegion"] == "ewr1"  # never NULL (aws-sdk v3: "Region is missing")
    # a second switch run (e.g. new keys) keeps the values from before the switch
    again = run_playbook(ROLE_PLAY, extra_vars=dict(extra, misskey_s3_secret_key="rotated-" + secrets.token_hex(8)))
    assert again.rc == 0 and again.task("in the meta table")["backup"] == "kept"

    marker.unlink()
    check = run_playbook(ROLLBACK_PLAY, extra_vars=extra, check=True)
    assert check.rc == 0 and check.task("Put back")["changed"] is True
    assert storage_of(pg, name)["objectStorageBucket"] == "mk-example-media" and not marker.exists()

    back = run_playbook(ROLLBACK_PLAY, extra_vars=extra)
    assert back.rc == 0, back
    assert read_meta(pg, name) == before  # every column, byte for byte
    assert marker.exists()
    marker.unlink()
    assert run_playbook(ROLLBACK_PLAY, extra_vars=extra).stats["localhost"]["changed"] == 0
    assert read_meta(pg, name) == before and not marker.exists()

    # migrate, admin edit after the rollback, migrate, rollback: the edit comes back, not the old backup
    set_meta(pg, name, {"objectStorageBucket": "edited-after-rollback"})
    edited = read_meta(pg, name)
    assert run_playbook(ROLE_PLAY, extra_vars=extra).rc == 0
    assert run_playbook(ROLLBACK_PLAY, extra_vars=extra).rc == 0
    assert read_meta(pg, name) == edited
    # the saved values are not readable by other database roles
    acl = pg.execute("SELECT relacl FROM pg_class WHERE relname = 'fediverse_object_storage_meta_backup'", name)
    assert acl and "=r" not in str(acl[0][0] or "")


def test_rollback_without_saved_values_only_turns_object_storage_off(tmp_path, pg):
    name, _config, _marker, extra = pg_misskey(tmp_path, pg, "2025.4.0")
    set_meta(pg, name, PREVIOUS)
    result = run_playbook(ROLLBACK_PLAY, extra_vars=extra)
    assert result.rc == 0, result
    after = storage_of(pg, name)
    assert after == dict(PREVIOUS, useObjectStorage=False)
    assert "no values saved before the switch" in result.stdout + result.stderr
