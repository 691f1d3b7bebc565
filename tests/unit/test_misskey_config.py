"""plugins/module_utils/misskey/config.py: version line, v10 drive: editing, meta row decisions."""

import json
import os

import pytest
import yaml

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (
    MASK,
    MisskeyConfigError,
    db_settings,
    detect_version,
    drive_settings,
    endpoint_parts,
    mask_meta,
    mask_yaml_secrets,
    meta_changes,
    meta_values,
    parse_version,
    replace_drive,
)

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures")


def v10_text():
    with open(os.path.join(FIXTURES, "misskey-v10-default.yml"), encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.parametrize("version,major,line", [
    ("10.102.544-m544", 10, "v10"),
    ("10.100.0", 10, "v10"),
    ("11.37.1-rei0784-5.16.0", 11, "postgresql"),
    ("12.117.1", 12, "postgresql"),
    ("13.14.2", 13, "postgresql"),
    ("2024.11.0", 2024, "postgresql"),
    ("2025.4.1-beta.2", 2025, "postgresql"),
])
def test_versions(version, major, line):
    found = detect_version(json.dumps({"name": "misskey", "version": version}))
    assert (found.major, found.line) == (major, line)


@pytest.mark.parametrize("version", ["9.0.0", "4.11.1", "1.0", "banana", "", "2022.1.0", "v"])
def test_unknown_versions_fail_clearly(version):
    with pytest.raises(MisskeyConfigError, match="Misskey version"):
        parse_version(version)


def test_package_json_problems():
    with pytest.raises(MisskeyConfigError, match="not valid JSON"):
        detect_version("{nope")
    with pytest.raises(MisskeyConfigError, match="no \"version\""):
        detect_version('{"name": "x"}')


def test_endpoint_parts():
    assert endpoint_parts("ewr1") == ("ewr1.vultrobjects.com", None, True)
    assert endpoint_parts("sgp1.vultrobjects.com") == ("sgp1.vultrobjects.com", None, True)
    assert endpoint_parts("http://127.0.0.1:7480/") == ("127.0.0.1", 7480, False)


def drive():
    return drive_settings(bucket="mk-media", prefix="/storage/", base_url="https://mk.example.net/",
                          endpoint="ewr1", access_key="AKMISSKEY", secret_key="Sk+/secret=", use_proxy=True)


def test_replace_drive_keeps_every_other_line_and_comment():
    text = v10_text()
    new, changed = replace_drive(text, drive())
    assert changed
    loaded = yaml.safe_load(new)
    assert loaded["drive"] == {
        "storage": "minio", "bucket": "mk-media", "prefix": "storage", "baseUrl": "https://mk.example.net",
        "config": {"endPoint": "ewr1.vultrobjects.com", "useSSL": True, "accessKey": "AKMISSKEY",
                   "secretKey": "Sk+/secret=", "useProxy": True, "setPublicRead": False, "s3ForcePathStyle": True}}
    old_lines = text.splitlines(True)
    new_lines = new.splitlines(True)
    start = old_lines.index("drive:\n")
    # the old block is the drive: line and "  storage: 'fs'"; everything around it is kept byte for byte
    assert old_lines[start + 1] == "  storage: 'fs'\n"
    assert new_lines[:start] == old_lines[:start]
    tail = old_lines[start + 2:]
    assert new_lines[-len(tail):] == tail
    assert [line for line in new_lines if line.lstrip().startswith("#")] == \
        [line for line in old_lines if line.lstrip().startswith("#")]
    original = yaml.safe_load(text)
    for key in original:
        if key != "drive":
            assert loaded[key] == original[key]


def test_replace_drive_is_idempotent():
    new, _ = replace_drive(v10_text(), drive())
    again, changed = replace_drive(new, drive())
    assert (again, changed) == (new, False)


def test_replace_drive_updates_an_existing_minio_block():
    new, _ = replace_drive(v10_text(), drive())
    other = drive_settings(bucket="other", prefix="m", base_url="https://s3.mk.example.net", endpoint="sgp1",
                           access_key="A2", secret_key="S2")
    newer, changed = replace_drive(new, other)
    assert changed and yaml.safe_load(newer)["drive"] == other
    assert newer.count("\ndrive:") == 1


def test_replace_drive_without_a_drive_key_appends_one():
    new, changed = replace_drive("url: https://x/\n# c\n", drive())
    assert changed and new.startswith("url: https://x/\n# c\n")
    assert yaml.safe_load(new)["drive"] == drive()


def test_replace_drive_quotes_values_yaml_would_misread():
    tricky = drive_settings(bucket="123", prefix="yes", base_url="https://x", endpoint="ewr1",
                            access_key="@at", secret_key="it's: #1")
    new, _ = replace_drive(v10_text(), tricky)
    assert yaml.safe_load(new)["drive"] == tricky


def test_drive_settings_require_values():
    with pytest.raises(MisskeyConfigError, match="drive.bucket"):
        drive_settings(bucket="", prefix="p", base_url="https://x", endpoint="ewr1", access_key="a", secret_key="s")


def test_mask_yaml_secrets():
    new, _ = replace_drive(v10_text(), drive())
    masked = mask_yaml_secrets(new)
    for secret in ("AKMISSKEY", "Sk+/secret=", "Mongo-Pass-73c1e9"):
        assert secret in new and secret not in masked
    assert "    secretKey: %s\n" % MASK in masked
    assert "#    secretKey: <secretKey>" not in masked  # commented sample values are masked too
    assert len(masked.splitlines()) == len(new.splitlines())


def test_db_settings():
    text = "url: https://x/\ndb:\n  host: 10.0.0.5\n  port: 5433\n  db: mk\n  user: u\n  pass: p\n"
    assert db_settings(text) == {"host": "10.0.0.5", "port": 5433, "db": "mk", "user": "u", "pass": "p"}
    with pytest.raises(MisskeyConfigError, match="Misskey v10"):
        db_settings(v10_text())


def test_meta_values_and_changes():
    wanted = meta_values(bucket="b", prefix="/storage", base_url="https://x/", endpoint="https://h.example:9000",
                         region="", port=0, use_proxy=True, set_public_read=False, s3_force_path_style=True,
                         access_key="a", secret_key="s")
    assert wanted["objectStorageEndpoint"] == "h.example"
    assert wanted["objectStoragePort"] == 9000  # port 0 means "none given": the URL's port wins
    assert wanted["objectStorageUseSSL"] is True
    assert wanted["objectStorageRegion"] is None
    assert wanted["objectStoragePrefix"] == "storage"
    assert wanted["objectStorageBaseUrl"] == "https://x"
    no_port = meta_values(bucket="b", base_url="https://x", endpoint="ewr1", port=0, access_key="a", secret_key="s")
    assert no_port["objectStoragePort"] is None
    assert "objectStorageUseProxy" not in no_port  # None options are left alone
    old_columns = set(wanted) - {"objectStorageUseProxy", "objectStorageSetPublicRead", "objectStorageS3ForcePathStyle"}
    current = dict((column, None) for column in old_columns)
    current["objectStorageBucket"] = "b"
    updates, skipped = meta_changes(current, old_columns, wanted)
    assert "objectStorageBucket" not in updates
    assert "objectStorageRegion" not in updates  # already NULL
    assert sorted(skipped) == ["objectStorageS3ForcePathStyle", "objectStorageSetPublicRead", "objectStorageUseProxy"]
    after = dict(current)
    after.update(updates)
    assert meta_changes(after, old_columns, wanted) == ({}, skipped)
    with pytest.raises(MisskeyConfigError, match="not a Misskey v11"):
        meta_changes({}, {"id", "name"}, wanted)


def test_mask_meta():
    shown = mask_meta({"objectStorageSecretKey": "s", "objectStorageAccessKey": "a", "objectStorageBucket": "b"},
                      changed=["objectStorageSecretKey"])
    assert shown == {"objectStorageSecretKey": MASK + " (changed)", "objectStorageAccessKey": MASK,
                     "objectStorageBucket": "b"}
