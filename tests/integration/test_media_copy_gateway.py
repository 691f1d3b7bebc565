"""media_copy through a Vultr-like gateway (issue 22): a real nginx in front of the real Ceph RGW,
terminating TLS and answering 503 SlowDown over its ``limit_req`` rate (tests/s3_gateway.py).

Every object is copied, the gateway pushed back only a few times, and every request the gateway
received - retries included - went through the module's one limiter: the gateway's access log and
the module's count agree, request for request and 503 for 503.
"""

from __future__ import annotations

import uuid

from tests.fixtures.mastodon_instance import build_instance
from tests.media_copy_support import bucket_objects, module_args, run_copy
from tests.s3_gateway import Gateway


def test_copy_through_a_rate_limited_gateway_counts_every_request(rgw, s3, bucket, pg, tmp_path, nginx_factory):
    root = tmp_path / "public" / "system"
    instance = build_instance(pg, "media_copy_gw_" + uuid.uuid4().hex[:8], root)
    want = {k for k in instance.expected if k not in instance.missing_keys}
    gateway = Gateway(nginx_factory(), rgw, rate=20, burst=2).start()
    # a cap above the gateway's limit (what max_requests_per_second could not help with before: issue 22):
    # the pace adapts below it from the first 503
    args = module_args(rgw, instance, bucket, endpoint=gateway.endpoint, ca_bundle=gateway.ca_bundle,
                       max_requests_per_second=30)
    res, out = run_copy(args)
    assert res.rc == 0, res
    assert out["totals"]["failed"] == 0 and set(bucket_objects(s3, bucket)) == want
    requests, refused = gateway.counts()
    pacing = out["pacing"]
    # every attempt passed the limiter, and every 503 was seen by it
    assert (out["requests"], pacing["throttled"]) == (requests, refused), (out["requests"], pacing, requests, refused)
    assert refused >= 1 and pacing["decreases"] >= 1 and pacing["min_rate"] < 20  # pushed back, and the pace cut
    assert refused <= 0.4 * len(want), pacing  # few push-backs (before: 0.8 per object with the defaults)
