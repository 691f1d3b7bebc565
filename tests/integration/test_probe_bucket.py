"""s3.probe_bucket on Ceph RGW (HTTPS): HeadBucket answers errors without a body, so the helper asks
once more with ListObjectsV2 and raises the precise code; bucket.bucket_exists builds on it.
"""

import uuid

import pytest
from botocore.exceptions import ClientError

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket import steps as bucket_lib
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import error_code, probe_bucket, s3_client


class Counting:
    """The real client, counting the S3 calls made through it."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        self.calls.append(name)
        return getattr(self.client, name)


def client_for(rgw, secret_key=None):
    return s3_client(rgw.https_endpoint, rgw.access_key, secret_key or rgw.secret_key, ca_bundle=rgw.ca_bundle)


def test_existing_bucket_takes_one_head(rgw, bucket):
    client = Counting(client_for(rgw))
    probe_bucket(client, bucket)
    assert client.calls == ["head_bucket"]
    assert bucket_lib.bucket_exists(client_for(rgw), bucket) is True


def test_missing_bucket_raises_nosuchbucket_not_a_bare_404(rgw):
    name = "fos-missing-" + uuid.uuid4().hex[:10]
    client = Counting(client_for(rgw))
    with pytest.raises(ClientError) as err:
        probe_bucket(client, name)
    assert error_code(err.value) == "NoSuchBucket"
    assert client.calls == ["head_bucket", "list_objects_v2"]
    assert bucket_lib.bucket_exists(client_for(rgw), name) is False


def test_wrong_secret_raises_signature_error(rgw, bucket):
    with pytest.raises(ClientError) as err:
        probe_bucket(client_for(rgw, secret_key="wrong" + uuid.uuid4().hex), bucket)
    assert error_code(err.value) == "SignatureDoesNotMatch"
