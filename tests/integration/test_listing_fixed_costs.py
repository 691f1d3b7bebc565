"""Fixed costs of a re-run (issue 15): a destination of up to one page is listed with one request."""

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import rate_limit
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import listing


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


def test_the_first_keys_levels_are_asked_at_once_and_every_key_is_indexed_once(rgw, bucket):
    """A truncated first page: the directories its first key passes through are listed in one parallel
    round instead of one round trip per level; the walk uses those answers where it goes, and every key
    is indexed exactly once - also objects directly in a level of that chain the walk did not stop at."""
    from concurrent.futures import ThreadPoolExecutor

    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client

    client = s3_client(rgw.https_endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key,
                       ca_bundle=rgw.ca_bundle, lean=True)
    deep = ["a/x/y/z/%02d.png" % i for i in range(6)] + ["a/x/direct-%d.png" % i for i in range(3)]
    wide = ["b/%02d/%02d/o.png" % (i % 9, i) for i in range(36)] + ["c/%d.png" % i for i in range(5)]
    keys = deep + wide
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=k.encode()), keys))
    assert listing.first_key_levels("", "a/x/y/z/00.png", 8) == ["", "a/", "a/x/", "a/x/y/", "a/x/y/z/"]
    assert listing.first_key_levels("a/", "a/x/y/z/00.png", 3) == ["a/", "a/x/", "a/x/y/"]
    assert listing.first_key_levels("b/", None, 8) == ["b/"]
    for prefix, expected in (("", keys), ("b/", [k for k in keys if k.startswith("b/")])):
        for parallel in (2, 4, 8):
            limiter = rate_limit.RateLimiter(0)
            index = listing.BucketIndex.from_listing(client, bucket, prefix, limiter, page_size=4, parallel=parallel)
            assert len(index) == len(expected), (prefix, parallel)  # no key twice, none missing
            assert all(index.size_of(k) == len(k) for k in expected), (prefix, parallel)
