"""Issue 24 item 7: one copy run, one way out. With HTTPS_PROXY (HTTP_PROXY for an http endpoint) set,
the copy engine's small PUTs (the lean path, s3/lean.py) and its multipart uploads (boto3) both go
through the forward proxy, a real relaying proxy with credentials (tests/forward_proxy.py) in front of
the real Ceph RGW, and the objects land in the bucket; with NO_PROXY naming the endpoint, neither
does. Unit tests of the choice itself: tests/unit/test_s3_proxy.py."""

import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.engine import CopyEngine
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import FilesystemSource
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import MediaObject, RowObjects
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import LeanClient, s3_client
from tests.forward_proxy import ForwardProxy

THRESHOLD = 1024 * 1024  # objects above it are multipart uploads (boto3), the others lean PUTs


def _copy(client, bucket, root, key):
    engine = CopyEngine(client, bucket, FilesystemSource(str(root)), concurrency=1, skip_existing=False,
                        multipart_threshold=THRESHOLD, sleep=lambda s: None)
    row = RowObjects("media_attachments.file", 1, [MediaObject("media_attachments.file", key, "image/png", None, 1)])
    result = engine.run(iter([row]), rows_total=1)
    assert result["totals"]["copied"] == 1 and result["totals"]["failed"] == 0, result


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_lean_puts_and_multipart_uploads_take_the_same_proxy(rgw, s3, bucket, scheme, tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    endpoint = rgw.https_endpoint if scheme == "https" else rgw.http_endpoint
    netloc = endpoint.split("://", 1)[1]
    root = tmp_path / "system"
    (root / "cache").mkdir(parents=True)
    files = {"cache/small.png": os.urandom(20 * 1024), "cache/big.png": os.urandom(THRESHOLD + 4096),
             "cache/small-direct.png": os.urandom(10 * 1024), "cache/big-direct.png": os.urandom(THRESHOLD + 1)}
    for key, data in files.items():
        (root / key).write_bytes(data)

    with ForwardProxy(credentials=("fos-proxy", "pr0xy:p@ss")) as proxy:
        monkeypatch.setenv("HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY", proxy.url())
        client = s3_client(endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key, ca_bundle=rgw.ca_bundle,
                           lean=True)
        assert isinstance(client, LeanClient)

        _copy(client, bucket, root, "cache/small.png")  # one lean PUT
        assert not client.boto_loaded
        lean_tunnels, lean_requests = list(proxy.tunnels), list(proxy.forwarded)
        if scheme == "https":
            assert lean_tunnels == [netloc] and lean_requests == []
        else:
            assert lean_tunnels == [] and lean_requests == ["PUT http://%s/%s/cache/small.png" % (netloc, bucket)]

        _copy(client, bucket, root, "cache/big.png")  # CreateMultipartUpload, UploadPart, Complete: boto3
        assert client.boto_loaded
        if scheme == "https":
            assert len(proxy.tunnels) > len(lean_tunnels) and set(proxy.tunnels) == {netloc}
            assert proxy.forwarded == []
        else:
            multipart = [line.split("?")[0] for line in proxy.forwarded[len(lean_requests):]]
            assert multipart == ["POST http://%s/%s/cache/big.png" % (netloc, bucket)] + [
                "PUT http://%s/%s/cache/big.png" % (netloc, bucket)] + [
                "POST http://%s/%s/cache/big.png" % (netloc, bucket)], proxy.forwarded
        assert proxy.refused == 0
        relayed = (list(proxy.tunnels), list(proxy.forwarded))

        # NO_PROXY covering the endpoint's host: both paths go straight to it.
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        direct = s3_client(endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key, ca_bundle=rgw.ca_bundle,
                           lean=True)
        _copy(direct, bucket, root, "cache/small-direct.png")
        _copy(direct, bucket, root, "cache/big-direct.png")
        assert direct.boto_loaded
        assert (proxy.tunnels, proxy.forwarded) == relayed

    for key, data in files.items():
        got = s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == data, key
        assert got["ContentType"] == "image/png"
