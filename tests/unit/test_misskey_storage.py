"""plugins/module_utils/misskey/storage.py: the settings Misskey's S3 client is built from, the check
object's key and URL, and the fetch through baseUrl (a real HTTP server on this machine).

The write and the fetch against the bucket (run_check) are tested on Ceph RGW in
tests/integration/test_misskey_storage_check.py.
"""

import http.server
import os
import threading

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import storage as ms
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import MisskeyConfigError

META = {
    "useObjectStorage": True, "objectStorageBucket": "mk-media", "objectStoragePrefix": "misskey",
    "objectStorageBaseUrl": "https://s3.mk.example", "objectStorageEndpoint": "ewr1.vultrobjects.com",
    "objectStorageRegion": "us-east-1", "objectStorageUseSSL": True, "objectStorageS3ForcePathStyle": True,
    "objectStorageSetPublicRead": True, "objectStorageAccessKey": "AK", "objectStorageSecretKey": "SK",
}


def meta(**over):
    row = dict(META)
    row.update(over)
    return row


# --- the settings, from the meta row (v11+) and from default.yml's drive: (v10) ---------------------

def test_settings_from_meta_as_misskeys_client_reads_them():
    assert ms.settings_from_meta(META) == dict(
        bucket="mk-media", prefix="misskey", base_url="https://s3.mk.example",
        endpoint_url="https://ewr1.vultrobjects.com", region="us-east-1", path_style=True, set_public_read=True,
        access_key="AK", secret_key="SK", region_required=True)


def test_settings_from_meta_scheme_path_style_and_prefix():
    assert ms.settings_from_meta(meta(objectStorageUseSSL=False))["endpoint_url"] == "http://ewr1.vultrobjects.com"
    assert ms.settings_from_meta(meta(objectStorageS3ForcePathStyle=False))["path_style"] is False
    # v11 has no objectStorageS3ForcePathStyle column: its client used path style with an endpoint
    v11 = meta()
    del v11["objectStorageS3ForcePathStyle"]
    assert ms.settings_from_meta(v11)["path_style"] is True
    # no endpoint (AWS itself): no endpoint URL, virtual-hosted style
    aws = ms.settings_from_meta(meta(objectStorageEndpoint=None))
    assert aws["endpoint_url"] is None and aws["path_style"] is False
    assert ms.settings_from_meta(meta(objectStoragePrefix=None))["prefix"] == ""


def test_settings_from_meta_refuses_a_row_not_switched():
    with pytest.raises(MisskeyConfigError, match="useObjectStorage = false"):
        ms.settings_from_meta(meta(useObjectStorage=False))


DRIVE = {"storage": "minio", "bucket": "mk-media", "prefix": "files", "baseUrl": "https://s3.mk.example",
         "config": {"endPoint": "minio.example", "port": 9000, "useSSL": False, "accessKey": "AK", "secretKey": "SK",
                    "region": "eu", "setPublicRead": True}}


def test_settings_from_drive_v10_minio():
    assert ms.settings_from_drive(DRIVE) == dict(
        bucket="mk-media", prefix="files", base_url="https://s3.mk.example", endpoint_url="http://minio.example:9000",
        region="eu", path_style=True, set_public_read=True, access_key="AK", secret_key="SK", region_required=False)
    no_port = dict(DRIVE, config=dict(DRIVE["config"], port=None, useSSL=True, s3ForcePathStyle=False))
    got = ms.settings_from_drive(no_port)
    assert got["endpoint_url"] == "https://minio.example" and got["path_style"] is False


@pytest.mark.parametrize("drive", [None, "minio", {"storage": "fs"}, {"bucket": "x"}])
def test_settings_from_drive_refuses_what_is_not_minio(drive):
    with pytest.raises(MisskeyConfigError, match="not storage 'minio'"):
        ms.settings_from_drive(drive)


def test_read_drive_reads_the_drive_section(tmp_path):
    config = tmp_path / "default.yml"
    config.write_text("url: https://mk.example/\ndrive:\n  storage: minio\n  bucket: b\n")
    assert ms.read_drive(str(config)) == {"storage": "minio", "bucket": "b"}
    config.write_text("url: https://mk.example/\n")
    assert ms.read_drive(str(config)) is None


def test_read_drive_never_follows_a_link(tmp_path):
    (tmp_path / "elsewhere.yml").write_text("drive:\n  storage: minio\n")
    os.symlink(str(tmp_path / "elsewhere.yml"), str(tmp_path / "default.yml"))
    with pytest.raises(OSError):
        ms.read_drive(str(tmp_path / "default.yml"))


# --- what is checked: the key, the URL, the settings that must be there -----------------------------

def test_check_key_under_the_prefix():
    assert ms.check_key({"prefix": "/misskey/"}, "probe.png") == "misskey/probe.png"
    assert ms.check_key({"prefix": ""}, "probe.png") == "probe.png"
    assert ms.check_key({"prefix": None}, "probe.png") == "probe.png"
    one, two = ms.check_key({"prefix": "p"}), ms.check_key({"prefix": "p"})
    assert one != two and one.startswith("p/fediverse-object-storage-check-") and one.endswith(".png")


def test_object_url_joins_base_url_and_quoted_key():
    assert ms.object_url({"base_url": "https://s3.mk.example/"}, "misskey/a b.png") == \
        "https://s3.mk.example/misskey/a%20b.png"
    assert ms.object_url({"base_url": "https://cdn.example/bucket"}, "k") == "https://cdn.example/bucket/k"


def test_validate_names_every_missing_setting():
    settings = ms.settings_from_meta(META)
    ms.validate(settings)  # complete
    with pytest.raises(MisskeyConfigError, match="lack bucket, access_key$"):
        ms.validate(dict(settings, bucket=None, access_key=""))
    with pytest.raises(MisskeyConfigError, match="Region is missing"):
        ms.validate(dict(settings, region=None))
    ms.validate(dict(ms.settings_from_drive(DRIVE), region=None))  # v10's minio client needs none


# --- the fetch through baseUrl -------------------------------------------------------------------

class _Handler(http.server.BaseHTTPRequestHandler):
    seen = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen.append((self.path, self.headers.get("Host")))
        body = ms.PNG if self.path.startswith("/ok") else b"no"
        self.send_response(200 if self.path.startswith("/ok") else 404)
        self.send_header("Content-Type", "image/png" if self.path.startswith("/ok") else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_fetch_connects_to_the_given_address_and_keeps_the_urls_host(server):
    port = server.server_address[1]
    status, content_type, body = ms.fetch("http://s3.mk.example:8080/ok/misskey/a.png?x=1",
                                          connect_to="127.0.0.1:%d" % port)
    assert (status, content_type, body) == (200, "image/png", ms.PNG)
    assert _Handler.seen == [("/ok/misskey/a.png?x=1", "s3.mk.example:8080")]
    assert ms.fetch("http://127.0.0.1:%d/missing" % port)[:2] == (404, "text/plain")
