"""UNSIGNED-PAYLOAD over HTTPS, signed payloads over HTTP: against the real Ceph RGW (issue 15).

The header ``x-amz-content-sha256`` each request carries is recorded as botocore sends it; the
objects are then read back to prove Ceph accepted them as sent.
"""

import hashlib
import uuid

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client
from tests.conftest import empty_and_delete_bucket


def recording_client(rgw, endpoint):
    client = s3_client(endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key, ca_bundle=rgw.ca_bundle)
    seen = []

    def record(request, **_kwargs):
        seen.append((request.url.split("?", 1)[1] if "?" in request.url else "",
                     request.method, request.headers.get("x-amz-content-sha256")))

    client.meta.events.register("before-send.s3", record)
    return client, seen


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_put_and_upload_part_payload_signing(rgw, scheme):
    endpoint = rgw.https_endpoint if scheme == "https" else rgw.http_endpoint
    client, seen = recording_client(rgw, endpoint)
    name = "fos-unsigned-" + uuid.uuid4().hex[:10]
    client.create_bucket(Bucket=name)
    try:
        body = b"x" * 1000
        del seen[:]
        client.put_object(Bucket=name, Key="a/b.png", Body=body, ContentType="image/png")
        part = b"p" * (5 * 1024 * 1024)
        upload = client.create_multipart_upload(Bucket=name, Key="big.bin")
        etags = []
        for number in (1, 2):
            response = client.upload_part(Bucket=name, Key="big.bin", UploadId=upload["UploadId"],
                                          PartNumber=number, Body=part)
            etags.append({"PartNumber": number, "ETag": response["ETag"]})
        client.complete_multipart_upload(Bucket=name, Key="big.bin", UploadId=upload["UploadId"],
                                         MultipartUpload={"Parts": etags})
        puts = [value for query, method, value in seen if method == "PUT"]
        assert len(puts) == 3, seen
        if scheme == "https":
            assert puts == [b"UNSIGNED-PAYLOAD"] * 3
        else:
            assert puts == [hashlib.sha256(body).hexdigest().encode(), hashlib.sha256(part).hexdigest().encode(),
                            hashlib.sha256(part).hexdigest().encode()]
        assert client.get_object(Bucket=name, Key="a/b.png")["Body"].read() == body
        assert client.head_object(Bucket=name, Key="big.bin")["ContentLength"] == 2 * len(part)
    finally:
        empty_and_delete_bucket(client, name)
