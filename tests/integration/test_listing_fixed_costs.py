"""Fixed costs of a re-run (issue 15): a destination of up to one page is listed with one request."""

from ansible_collections.fediverse.object_storage.plugins.module_utils import rate_limit
from ansible_collections.fediverse.object_storage.plugins.module_utils import s3_listing as listing


def test_small_destination_is_listed_with_one_request(s3, bucket):
    keys = ["cache/media_attachments/files/108/%03d/000/%03d/original/f.png" % (i % 3, i) for i in range(40)]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x" * (i % 5))
    limiter = rate_limit.RateLimiter(0)
    index = listing.BucketIndex.from_listing(s3, bucket, "", limiter, page_size=1000, parallel=8)
    assert limiter.requests == 1  # not one request per level of the key tree
    assert all(index.size_of(key) == i % 5 for i, key in enumerate(keys))
    assert index.size_of("cache/other") is None
    # a truncated first page: the parallel walk still sees every key
    limiter = rate_limit.RateLimiter(0)
    index = listing.BucketIndex.from_listing(s3, bucket, "cache/", limiter, page_size=10, parallel=4)
    assert all(index.size_of(key) == i % 5 for i, key in enumerate(keys))
    assert limiter.requests > 1
