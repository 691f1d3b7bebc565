"""vultr_object_storage against the local Vultr API v2 stand-in (tests/services/vultr_api_server.py),
and the bucket role end to end: subscription from the fake API, bucket on the real Ceph RGW (HTTPS).
"""

import time
import uuid

import pytest
import yaml

from tests.ansible_helpers import run_module, run_playbook
from tests.services.vultr_api_server import VultrAPIServer

API_KEY = "test-" + uuid.uuid4().hex


@pytest.fixture
def vultr_api():
    with VultrAPIServer(api_key=API_KEY, polls_until_active=3, max_per_page=2) as server:
        yield server


def base_args(api, **over):
    args = dict(api_key=API_KEY, api_url=api.url, label="mastodon-media", cluster="ewr1.vultrobjects.com",
                wait_interval=0.2, wait_timeout=30)
    args.update(over)
    return args


def test_create_waits_for_active_and_returns_keys(vultr_api):
    t0 = time.monotonic()
    result = run_module("vultr_object_storage", base_args(vultr_api))
    seconds = time.monotonic() - t0
    assert result.rc == 0, result
    out = result.task("Run the module")
    assert out["changed"] is True
    assert out["object_storage"]["status"] == "active"
    assert out["object_storage"]["cluster_id"] == 2
    assert out["object_storage"]["tier_id"] == 2  # the cluster's default tier (Standard)
    assert out["s3_hostname"] == "ewr1.vultrobjects.com"
    (sub,) = vultr_api.subscriptions.values()
    assert out["s3_access_key"] == sub["s3_access_key"] and out["s3_secret_key"] == sub["s3_secret_key"]
    assert "s3_secret_key" not in out["object_storage"]
    # it polled until the fake turned the subscription active (3 GETs), and no more
    assert vultr_api.count("GET", "/v2/object-storage/%s" % sub["id"]) == 3
    assert vultr_api.count("POST", "/v2/object-storage") == 1
    # the cluster list spans several pages (max 2 per page): every page was read to find ewr1's id
    pages = [q for m, p, q, _a in vultr_api.requests if p == "/v2/object-storage/clusters"]
    assert len(pages) >= 1 and all(q.get("per_page") for q in pages)

    again = run_module("vultr_object_storage", base_args(vultr_api))
    assert again.rc == 0, again
    out2 = again.task("Run the module")
    assert out2["changed"] is False
    assert out2["object_storage"]["id"] == sub["id"] and out2["s3_secret_key"] == sub["s3_secret_key"]
    assert vultr_api.count("POST", "/v2/object-storage") == 1
    print("create + wait: %.1f s" % seconds)


def test_pagination_finds_a_cluster_and_subscription_on_later_pages(vultr_api):
    # del1 is the last cluster: with 2 per page it is on page 4
    for i in range(5):
        assert run_module("vultr_object_storage", base_args(vultr_api, label="s%d" % i, cluster="sgp1", wait=False)).rc == 0
    args = base_args(vultr_api, label="target", region="del", wait=False)
    del args["cluster"]
    result = run_module("vultr_object_storage", args)
    assert result.rc == 0, result
    assert result.task("Run the module")["cluster"]["hostname"] == "del1.vultrobjects.com"
    cursors = [q.get("cursor") for m, p, q, _a in vultr_api.requests if p == "/v2/object-storage/clusters"]
    assert any(cursors), "the cluster list was never paged"
    # the subscription is the 6th: found again by label + cluster through the pages, not re-created
    again = run_module("vultr_object_storage", base_args(vultr_api, label="target", cluster="del1", wait=False))
    assert again.task("Run the module")["changed"] is False
    assert len(vultr_api.subscriptions) == 6


def test_same_label_on_another_cluster_is_another_subscription(vultr_api):
    assert run_module("vultr_object_storage", base_args(vultr_api)).rc == 0
    other = run_module("vultr_object_storage", base_args(vultr_api, cluster="sgp1"))
    assert other.task("Run the module")["changed"] is True
    assert sorted(s["cluster_id"] for s in vultr_api.subscriptions.values()) == [2, 5]


def test_check_mode_creates_nothing(vultr_api):
    result = run_module("vultr_object_storage", base_args(vultr_api), check=True, diff=True)
    assert result.rc == 0, result
    out = result.task("Run the module")
    assert out["changed"] is True
    assert out["diff"]["after"]["label"] == "mastodon-media" and out["diff"]["before"] == {}
    assert vultr_api.subscriptions == {}
    assert vultr_api.count("POST", "/v2/object-storage") == 0


def test_tier_by_name_and_unknown_tier(vultr_api):
    result = run_module("vultr_object_storage", base_args(vultr_api, tier="premium"))
    assert result.task("Run the module")["object_storage"]["tier_id"] == 4
    bad = run_module("vultr_object_storage", base_args(vultr_api, label="other", tier="Gold"))
    assert bad.rc != 0
    assert "no tier 'Gold'" in bad.task("Run the module")["msg"]


def test_no_wait_returns_pending(vultr_api):
    result = run_module("vultr_object_storage", base_args(vultr_api, wait=False))
    out = result.task("Run the module")
    assert out["changed"] is True and out["object_storage"]["status"] == "pending"


def test_wait_timeout(vultr_api):
    vultr_api.polls_until_active = 10 ** 6
    result = run_module("vultr_object_storage", base_args(vultr_api, wait_timeout=1))
    assert result.rc != 0
    assert "still 'pending' after 1 seconds" in result.task("Run the module")["msg"]


def test_absent(vultr_api):
    assert run_module("vultr_object_storage", base_args(vultr_api)).rc == 0
    checked = run_module("vultr_object_storage", base_args(vultr_api, state="absent"), check=True)
    assert checked.task("Run the module")["changed"] is True
    assert len(vultr_api.subscriptions) == 1
    gone = run_module("vultr_object_storage", base_args(vultr_api, state="absent"))
    assert gone.task("Run the module")["changed"] is True
    assert vultr_api.subscriptions == {}
    assert run_module("vultr_object_storage", base_args(vultr_api, state="absent")).task("Run the module")["changed"] is False


def test_bad_api_key_is_a_clear_error(vultr_api):
    result = run_module("vultr_object_storage", base_args(vultr_api, api_key="wrong-key"))
    assert result.rc != 0
    out = result.task("Run the module")
    assert "rejected the API key (401 Unauthorized: Invalid API token.)" in out["msg"], out
    assert "Traceback" not in result.stdout and "module_stderr" not in out
    assert vultr_api.subscriptions == {}


def test_api_key_from_environment(vultr_api):
    args = base_args(vultr_api)
    del args["api_key"]
    result = run_module("vultr_object_storage", args, env={"VULTR_API_KEY": API_KEY})
    assert result.rc == 0, result
    assert result.task("Run the module")["changed"] is True


def test_unknown_cluster_lists_the_clusters(vultr_api):
    result = run_module("vultr_object_storage", base_args(vultr_api, cluster="xyz9"))
    msg = result.task("Run the module")["msg"]
    assert result.rc != 0 and "no Object Storage cluster 'xyz9'" in msg and "sgp1.vultrobjects.com" in msg


def test_unreachable_api_is_a_clear_error():
    result = run_module("vultr_object_storage", dict(api_key="k", api_url="http://127.0.0.1:9/v2", label="x", cluster="ewr1"))
    assert result.rc != 0
    assert "cannot reach the Vultr API" in result.task("Run the module")["msg"]


# --- the bucket role, end to end: subscription (fake API) + bucket (real RGW over HTTPS) -------------

def test_bucket_role_with_subscription(rgw, s3):
    host = rgw.https_endpoint.split("://", 1)[1]
    name = "fos-role-" + uuid.uuid4().hex[:10]
    with VultrAPIServer(api_key=API_KEY, polls_until_active=2, s3_hostname=host,
                        s3_access_key=rgw.access_key, s3_secret_key=rgw.secret_key) as api:
        play = yaml.safe_dump([{
            "hosts": "localhost", "gather_facts": False,
            "vars": dict(bucket_name=name, bucket_vultr_api_key=API_KEY, bucket_vultr_api_url=api.url,
                         bucket_vultr_cluster="ewr1", bucket_vultr_wait_interval=0.2,
                         bucket_ca_bundle=rgw.ca_bundle),
            "roles": ["fediverse.object_storage.bucket"],
        }], sort_keys=False)
        try:
            check = run_playbook(play, check=True)
            assert check.rc == 0, check
            assert api.subscriptions == {}
            t0 = time.monotonic()
            first = run_playbook(play)
            seconds = time.monotonic() - t0
            assert first.rc == 0, first
            (sub,) = api.subscriptions.values()
            assert sub["status"] == "active" and sub["label"] == name
            verified = first.task(
                "Assert the bucket model (private objects private, public ones readable, no listing, no writing)")
            assert "GET public 200, GET private 403, LIST 403, PUT 403" in verified["msg"], verified
            s3.head_bucket(Bucket=name)
            # the secret key never appears in the output
            human = run_playbook(play, callback="default")
            assert human.rc == 0, human.stdout
            assert rgw.secret_key not in human.stdout + human.stderr
            assert "changed=0" in human.stdout
            print("role with subscription: %.1f s" % seconds)
        finally:
            try:
                s3.delete_bucket_policy(Bucket=name)
                s3.delete_bucket(Bucket=name)
            except Exception:  # noqa: BLE001 - the bucket may not exist if the role failed early
                pass

        bad = run_playbook(play.replace(API_KEY, "wrong-key"))
        assert bad.rc != 0
        assert any("rejected the API key" in m for m in bad.failure_messages()), bad


def test_create_is_never_retried_and_an_ambiguous_failure_finds_the_subscription():
    # The create succeeds behind a 500: the client must not POST again (a second paid
    # subscription) but find the one that exists, by label and cluster.
    with VultrAPIServer(api_key=API_KEY, polls_until_active=2, create_errors_after_commit=1) as api:
        result = run_module("vultr_object_storage", base_args(api))
        assert result.rc == 0, result
        assert api.count("POST", "/v2/object-storage") == 1
        assert len(api.subscriptions) == 1
        (sub,) = api.subscriptions.values()
        out = result.task("Run the module")
        assert out["object_storage"]["id"] == sub["id"] and out["object_storage"]["status"] == "active"
        assert out["object_storage"]["tier_id"] == 2  # read from tier.OBJSTORETIERID
        assert sub["tier"]["OBJSTORETIERID"] == 2
        posted = [q for m, p, q, _a in api.requests if m == "POST"]
        assert len(posted) == 1


def test_stand_in_shapes_follow_the_api(vultr_api):
    result = run_module("vultr_object_storage", base_args(vultr_api))
    assert result.rc == 0, result
    assert all("name" in c for c in vultr_api.clusters)
    assert all(t["locations"] and all("hostname" in c for c in t["locations"]) for t in vultr_api.tiers)
    (sub,) = vultr_api.subscriptions.values()
    assert "tier_id" not in sub and set(sub["tier"]) >= {"OBJSTORETIERID", "sales_name", "slug", "price"}
