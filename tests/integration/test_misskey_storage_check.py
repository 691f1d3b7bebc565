"""misskey_storage_check (issue 10): an object written with exactly the settings Misskey stored is
fetched through baseUrl. Real PostgreSQL (meta table of Misskey 2025.4.0), real Ceph RGW over HTTPS;
baseUrl is the bucket's path-style URL on the RGW's TLS name (s3.localhost), reached with connect_to.
"""

import pytest
import yaml

from tests.ansible_helpers import run_playbook
from tests.misskey_host import ROLE_PLAY, pg_misskey, set_meta, storage_of, write_misskey

CHECK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Check Misskey's storage
      fediverse.object_storage.misskey_storage_check:
        config_file: "{{ config_file }}"
        line: "{{ line | default('postgresql') }}"
        ca_bundle: "{{ ca_bundle }}"
        connect_to: "{{ connect_to }}"
"""


@pytest.fixture
def switched(tmp_path, pg, rgw, bucket):
    """A Misskey 2025.4.0 meta row switched by the misskey role to the RGW bucket."""
    name, config, _marker, extra = pg_misskey(tmp_path, pg, "2025.4.0")
    extra.update(misskey_s3_endpoint=rgw.https_endpoint, misskey_s3_ca_bundle=rgw.ca_bundle, misskey_s3_bucket=bucket,
                 misskey_s3_access_key=rgw.access_key, misskey_s3_secret_key=rgw.secret_key,
                 misskey_s3_set_public_read=True,
                 misskey_s3_base_url="https://s3.localhost:%d/%s" % (rgw.https_port, bucket))
    assert run_playbook(ROLE_PLAY, extra_vars=extra).rc == 0
    check_vars = dict(config_file=str(config), ca_bundle=rgw.ca_bundle, connect_to="127.0.0.1:%d" % rgw.https_port)
    return name, check_vars


def keys(s3, bucket):
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_object_written_with_the_stored_settings_is_served_through_base_url(pg, s3, bucket, switched):
    _name, check_vars = switched
    result = run_playbook(CHECK, extra_vars=check_vars)
    assert result.rc == 0, result
    task = result.task("Check Misskey's storage")
    assert task["checked"] is True and task["status"] == 200 and task["content_type"].startswith("image/png")
    assert task["key"].startswith("misskey/fediverse-object-storage-check-") and task["region"] == "us-east-1"
    assert task["url"].startswith("https://s3.localhost:")
    assert keys(s3, bucket) == []  # removed again
    assert result.stats["localhost"]["changed"] == 0


@pytest.mark.parametrize("breakage,message", [
    # the port only in objectStoragePort: Misskey's client connects to 443 and cannot upload
    ({"objectStorageEndpoint": "127.0.0.1"}, "cannot upload"),
    ({"objectStorageRegion": None}, "Region is missing"),
    ({"objectStorageSetPublicRead": False}, "answered 403"),  # private objects, no public policy
    ({"objectStoragePrefix": "other"}, None),  # any prefix works: the check writes under it
    ({"objectStorageBaseUrl": "https://s3.localhost:1/nothing"}, "cannot fetch"),
    ({"useObjectStorage": False}, "switch is not in effect"),
])
def test_settings_misskey_could_not_use_fail_the_check(pg, s3, bucket, switched, breakage, message):
    name, check_vars = switched
    if "objectStorageBaseUrl" in breakage:
        check_vars = dict(check_vars, connect_to="127.0.0.1:1")
    set_meta(pg, name, breakage)
    assert all(storage_of(pg, name)[column] == value for column, value in breakage.items())
    result = run_playbook(CHECK, extra_vars=check_vars)
    if message is None:
        assert result.rc == 0, result
        assert result.task("Check Misskey's storage")["key"].startswith("other/")
    else:
        assert result.rc != 0
        assert message in " ".join(result.failure_messages())
    assert keys(s3, bucket) == []


def test_v10_drive_settings(tmp_path, s3, rgw, bucket):
    drive = {"storage": "minio", "bucket": bucket, "prefix": "misskey",
             "baseUrl": "https://s3.localhost:%d/%s" % (rgw.https_port, bucket),
             "config": {"endPoint": "127.0.0.1", "port": rgw.https_port, "useSSL": True, "accessKey": rgw.access_key,
                        "secretKey": rgw.secret_key, "setPublicRead": True, "s3ForcePathStyle": True}}
    config = write_misskey(tmp_path / "misskey", "10.102.544-m544", yaml.safe_dump({"url": "https://x/", "drive": drive}))
    check_vars = dict(config_file=str(config), line="v10", ca_bundle=rgw.ca_bundle,
                      connect_to="127.0.0.1:%d" % rgw.https_port)
    result = run_playbook(CHECK, extra_vars=check_vars)
    assert result.rc == 0, result
    assert result.task("Check Misskey's storage")["key"].startswith("misskey/")
    check = run_playbook(CHECK, extra_vars=check_vars, check=True)
    assert check.rc == 0 and check.task("Check Misskey's storage")["checked"] is False
    assert keys(s3, bucket) == []
