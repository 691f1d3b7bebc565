"""The S3 client factory (plugins/module_utils/s3/client.py): pure parts, no network."""

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import client as s3u
from botocore.exceptions import ClientError, EndpointConnectionError


@pytest.mark.parametrize(
    "given, url",
    [
        ("ewr1", "https://ewr1.vultrobjects.com"),
        ("sgp1", "https://sgp1.vultrobjects.com"),
        ("ams1.vultrobjects.com", "https://ams1.vultrobjects.com"),
        ("https://blr1.vultrobjects.com/", "https://blr1.vultrobjects.com"),
        ("http://127.0.0.1:7480", "http://127.0.0.1:7480"),
        (" https://s3.example.net:8443 ", "https://s3.example.net:8443"),
    ],
)
def test_resolve_endpoint(given, url):
    assert s3u.resolve_endpoint(given) == url


@pytest.mark.parametrize("bad", ["", None, "ftp://x.example", "https://", "not a host"])
def test_resolve_endpoint_rejects(bad):
    with pytest.raises(s3u.S3ConfigError):
        s3u.resolve_endpoint(bad)


def test_region_defaults_to_vultr_cluster():
    assert s3u.region_for("ewr1") == "ewr1"
    assert s3u.region_for("https://del1.vultrobjects.com") == "del1"
    assert s3u.region_for("http://127.0.0.1:7480") == "us-east-1"
    assert s3u.region_for("ewr1", region="custom") == "custom"


def test_client_config_sends_checksums_only_when_required():
    config = s3u.client_config(addressing_style="virtual", max_pool_connections=32, max_attempts=7)
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.s3 == {"addressing_style": "virtual"}
    assert config.max_pool_connections == 32
    assert config.retries == {"max_attempts": 7, "mode": "adaptive"}
    default = s3u.client_config(checksum_when_required=False)
    assert getattr(default, "request_checksum_calculation", None) != "when_required"


def test_client_config_rejects_unknown_addressing():
    with pytest.raises(s3u.S3ConfigError, match="addressing_style"):
        s3u.client_config(addressing_style="sideways")


def test_client_uses_endpoint_region_and_ca_bundle(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    client = s3u.s3_client("ewr1", access_key="AK", secret_key="SK", ca_bundle=str(ca))
    assert client.meta.endpoint_url == "https://ewr1.vultrobjects.com"
    assert client.meta.region_name == "ewr1"
    assert client._endpoint.http_session._verify == str(ca)
    with pytest.raises(s3u.S3ConfigError, match="does not exist"):
        s3u.s3_client("ewr1", ca_bundle=str(tmp_path / "missing.pem"))


def test_keys_fall_back_to_environment(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET")
    creds = s3u.s3_client("http://127.0.0.1:1")._request_signer._credentials
    assert (creds.access_key, creds.secret_key) == ("ENVKEY", "ENVSECRET")


def _client_error(code, status=400, message="m"):
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


def test_describe_error_names_the_credential_problem():
    msg = s3u.describe_error(_client_error("SignatureDoesNotMatch", 403), endpoint="https://ewr1.vultrobjects.com")
    assert "secret key" in msg and "SignatureDoesNotMatch" in msg and "ewr1" in msg
    assert "access key" in s3u.describe_error(_client_error("InvalidAccessKeyId", 403))
    assert "taken by another account" in s3u.describe_error(_client_error("BucketAlreadyExists", 409), bucket="media")
    assert "does not exist" in s3u.describe_error(_client_error("NoSuchBucket", 404), bucket="media")
    assert "cannot reach" in s3u.describe_error(EndpointConnectionError(endpoint_url="https://x"), endpoint="https://x")


def test_not_found_detection():
    assert s3u.is_not_found(_client_error("404", 404))
    assert s3u.is_not_found(_client_error("NoSuchKey", 404))
    assert not s3u.is_not_found(_client_error("AccessDenied", 403))
    assert s3u.error_code(ValueError("x")) == ""


def test_unsigned_payload_only_over_https():
    secure = s3u.s3_client("https://s3.example.net", access_key="AK", secret_key="SK")
    assert secure.meta.config.s3.get("payload_signing_enabled") is False
    assert s3u.s3_client("ewr1", access_key="AK", secret_key="SK").meta.config.s3["payload_signing_enabled"] is False
    plain = s3u.s3_client("http://127.0.0.1:7480", access_key="AK", secret_key="SK")
    # botocore would honour payload_signing_enabled=False over HTTP too: it must not be set there.
    assert "payload_signing_enabled" not in plain.meta.config.s3
    assert s3u.client_config().s3 == {"addressing_style": "path"}
