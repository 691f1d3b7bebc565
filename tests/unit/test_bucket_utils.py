"""Unit tests of plugins/module_utils/bucket/rules.py and plugins/module_utils/bucket/vultr_api.py (no service)."""

import json

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket import steps as bucket
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import engine as copy_engine
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket import rules as b
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket import vultr_api as v

# --- bucket names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc", "mastodon-media", "a" * 63, "0abc9", "example-social-2024"])
def test_valid_names(name):
    assert b.bucket_name_problems(name) == []
    assert b.validate_bucket_name(name) == name


@pytest.mark.parametrize("name, reason, suggestion", [
    ("media.example.com", "contains dots", "media-example-com"),
    ("Mastodon-Media", "uppercase", "mastodon-media"),
    ("my_bucket", "underscores", "my-bucket"),
    ("a" * 64, "64 characters, at most 63", "a" * 63),
    ("ab", "at least 3", "ab-media"),
    ("192.168.1.10", "IP address", "192-168-1-10"),
    ("-media", "does not start", "media"),
    ("media-", "does not end", "media"),
    ("média", "other than lowercase", "m-dia"),
    ("my bucket!", "other than lowercase", "my-bucket"),
])
def test_invalid_names_say_why_and_suggest(name, reason, suggestion):
    with pytest.raises(b.BucketNameError) as err:
        b.validate_bucket_name(name)
    message = str(err.value)
    assert reason in message
    assert repr(suggestion) in message
    # the suggestion itself is valid
    assert b.bucket_name_problems(suggestion) == []


def test_dotted_name_explains_https():
    with pytest.raises(b.BucketNameError, match="virtual-host style"):
        b.validate_bucket_name("files.example")


def test_suggestion_of_long_dotted_name_is_valid():
    name = "Very.Long_Name." * 10
    suggestion = b.suggest_bucket_name(name)
    assert len(suggestion) <= 63
    assert b.bucket_name_problems(suggestion) == []


# --- policies -------------------------------------------------------------------------------------

def test_public_read_is_getobject_only():
    doc = b.desired_policy("public-read", "media")
    assert doc["Version"] == "2012-10-17"
    (st,) = doc["Statement"]
    assert st["Effect"] == "Allow"
    assert st["Principal"] == "*"
    assert st["Action"] == ["s3:GetObject"]
    assert st["Resource"] == ["arn:aws:s3:::media/*"]
    assert b.desired_policy("public-read", "media") == doc


def test_object_acl_is_the_default_model():
    assert b.desired_policy(None, "media") == b.OBJECT_ACL
    assert b.desired_policy("object-acl", "media") == b.OBJECT_ACL


SEEDS = {"Version": "2012-10-17", "Statement": [{"Sid": "AddPerm", "Effect": "Allow", "Principal": {"AWS": "*"},
                                                 "Action": "s3:GetObject", "Resource": "arn:aws:s3:::media/*"}]}


@pytest.mark.parametrize("principal", ["*", {"AWS": "*"}, {"AWS": ["*"]}, ["*"]])
def test_anonymous_allow_detected(principal):
    st = dict(SEEDS["Statement"][0], Principal=principal)
    assert b.is_anonymous_allow(st)
    assert not b.is_anonymous_allow(dict(st, Effect="Deny"))
    assert not b.is_anonymous_allow(dict(st, Principal={"AWS": "arn:aws:iam::123:user/x"}))


def test_strip_anonymous_allows():
    assert b.strip_anonymous_allows(None) == (None, [])
    assert b.strip_anonymous_allows(SEEDS) == (None, SEEDS["Statement"])
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket", "Resource": "arn:aws:s3:::media"}
    named = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:user/u"}, "Action": "s3:*",
             "Resource": "arn:aws:s3:::media/*"}
    listing = {"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::media"}
    doc = {"Version": "2012-10-17", "Statement": SEEDS["Statement"] + [deny, named, listing]}
    rest, removed = b.strip_anonymous_allows(json.dumps(doc))
    assert rest["Statement"] == [deny, named]
    assert removed == SEEDS["Statement"] + [listing]
    assert b.strip_anonymous_allows(rest) == (rest, [])


def test_public_bucket_grants():
    acl = {"Grants": [
        {"Grantee": {"Type": "CanonicalUser", "ID": "owner"}, "Permission": "FULL_CONTROL"},
        {"Grantee": {"Type": "Group", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"}, "Permission": "READ"},
    ]}
    assert b.public_grants(acl["Grants"]) == ["READ"]
    assert b.public_grants(acl["Grants"][:1]) == []


def test_one_definition_of_a_public_grant_for_buckets_and_objects():
    """A group grantee URI without a Type is public for a bucket ACL too (the safe reading), and the
    bucket steps and the copy engine's object check both use bucket_rules.public_grants."""
    untyped = [{"Grantee": {"URI": "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"}, "Permission": "WRITE"},
               {"Grantee": {"Type": "CanonicalUser", "URI": "http://acs.amazonaws.com/groups/global/AllUsers"},
                "Permission": "READ"}]
    assert b.public_grants(untyped) == ["WRITE"]
    assert b.public_grants(untyped[1:]) == []  # a user grantee is not a group, whatever its URI
    # the bucket ACL step, the object check and the copy engine's privatising read the same function
    assert bucket.public_grants is b.public_grants
    assert copy_engine.public_grants is b.public_grants


def test_private_means_no_policy():
    assert b.desired_policy("private", "media") is None


def test_semantic_equality_ignores_form():
    ours = b.public_read_policy("media")
    theirs = {
        "Statement": {
            "Resource": "arn:aws:s3:::media/*",
            "Action": "S3:getobject",
            "Principal": {"AWS": ["*"]},
            "Effect": "Allow",
            "Sid": "something-else",
        },
    }
    assert b.policies_equal(ours, theirs)
    assert b.policies_equal(json.dumps(ours), ours)


def test_statement_order_and_duplicates_do_not_matter():
    s1 = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::m/a/*"}
    s2 = {"Effect": "Deny", "Principal": "*", "Action": ["s3:PutObject", "s3:DeleteObject"],
          "Resource": "arn:aws:s3:::m/*", "Condition": {"Bool": {"aws:SecureTransport": False}}}
    s2_reordered = dict(s2, Action=["s3:DeleteObject", "s3:PutObject"],
                        Condition={"Bool": {"aws:SecureTransport": "false"}})
    a = {"Version": "2012-10-17", "Statement": [s1, s2]}
    c = {"Version": "2012-10-17", "Statement": [s2_reordered, s1, s1]}
    assert b.policies_equal(a, c)


@pytest.mark.parametrize("change", [
    {"Action": ["s3:GetObject", "s3:ListBucket"]},
    {"Resource": "arn:aws:s3:::other/*"},
    {"Effect": "Deny"},
    {"Principal": {"AWS": "arn:aws:iam::123:user/x"}},
])
def test_real_differences_are_seen(change):
    base = b.public_read_policy("media")
    other = json.loads(json.dumps(base))
    other["Statement"][0].update(change)
    assert not b.policies_equal(base, other)


def test_none_versus_policy():
    assert b.policies_equal(None, None)
    assert not b.policies_equal(None, b.public_read_policy("m"))


@pytest.mark.parametrize("policy, message", [
    ("{not json", "not valid JSON"),
    ("[]", "JSON object"),
    ({"Version": "2012-10-17"}, "no Statement"),
    ({"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject", "Resource": "*"}]}, "Effect"),
    ({"Statement": [{"Effect": "Allow", "Principal": "*", "Resource": "*"}]}, "no Action"),
    ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject"}]}, "no Resource"),
    ({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}, "no Principal"),
    ({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "ec2:Run", "Resource": "*"}]}, "not an S3 action"),
    ({"Version": "2020-01-01", "Statement": [{}]}, "Version"),
    (42, "must be"),
])
def test_malformed_policies_are_refused_locally(policy, message):
    with pytest.raises(b.PolicyError, match=message):
        b.desired_policy(policy, "media")


def test_custom_policy_outside_bucket_warns():
    doc = {"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
                          "Resource": "arn:aws:s3:::other/*"}]}
    assert b.check_policy(doc, "media") == ["Statement 1: resource arn:aws:s3:::other/* is not in bucket media"]


# --- CORS -----------------------------------------------------------------------------------------

def test_cors_values():
    assert b.desired_cors("default") == (True, b.DEFAULT_CORS_RULES)
    assert b.desired_cors(None)[1] == b.DEFAULT_CORS_RULES
    assert b.desired_cors(False) == (True, None)
    assert b.desired_cors("none") == (True, None)
    assert b.desired_cors("keep") == (False, None)
    rule = {"AllowedMethods": ["GET"], "AllowedOrigins": ["https://example.com"]}
    assert b.desired_cors([rule]) == (True, [rule])
    with pytest.raises(b.CorsError):
        b.desired_cors("everything")
    with pytest.raises(b.CorsError):
        b.desired_cors([{"AllowedMethods": ["GET"]}])


def test_cors_comparison():
    assert b.cors_equal([{"AllowedMethods": ["head", "GET"], "AllowedOrigins": "*"}],
                        [{"AllowedMethods": ["GET", "HEAD"], "AllowedOrigins": ["*"]}])
    assert not b.cors_equal(b.DEFAULT_CORS_RULES, None)
    assert b.cors_equal(None, [])


def test_cors_text_is_one_line_per_side_of_a_diff():
    assert b.cors_text(b.DEFAULT_CORS_RULES) == "GET, HEAD from * (headers *, max age 3000 s)"
    assert b.cors_text(None) is None and b.cors_text([]) is None
    two = [{"AllowedMethods": ["get"], "AllowedOrigins": ["https://a.example"], "ExposeHeaders": ["ETag"]},
           {"AllowedMethods": ["PUT"], "AllowedOrigins": "*"}]
    assert b.cors_text(two) == "GET from https://a.example (exposed headers ETag); PUT from *"


def test_object_url_quotes_keys():
    assert b.object_url("https://h:1/", "bk", "a b/c+d.txt") == "https://h:1/bk/a%20b/c%2Bd.txt"


# --- Vultr API helpers (pure functions over the API's data) ---------------------------------------

CLUSTERS = [
    {"id": 2, "region": "ewr", "hostname": "ewr1.vultrobjects.com", "deploy": "yes"},
    {"id": 6, "region": "ewr", "hostname": "nj1.vultrobjects.com", "deploy": "no"},
    {"id": 5, "region": "sgp", "hostname": "sgp1.vultrobjects.com", "deploy": "yes"},
]
TIERS = [
    {"id": 1, "sales_name": "Legacy", "slug": "tier_legacy", "is_default": "no"},
    {"id": 2, "sales_name": "Standard", "slug": "tier_010k_5000m", "is_default": "yes"},
]


@pytest.mark.parametrize("cluster, region, expected", [
    ("ewr1.vultrobjects.com", None, 2), ("EWR1", None, 2), ("https://ewr1.vultrobjects.com/", None, 2),
    ("5", None, 5), ("nj1", None, 6),
    (None, "ewr", 2), (None, "sgp", 5),
])
def test_find_cluster(cluster, region, expected):
    assert v.find_cluster(CLUSTERS, cluster, region)["id"] == expected


def test_find_cluster_errors_list_the_choices():
    with pytest.raises(v.VultrAPIError, match="sgp1.vultrobjects.com"):
        v.find_cluster(CLUSTERS, "xyz1")
    with pytest.raises(v.VultrAPIError, match="no Object Storage cluster in region"):
        v.find_cluster(CLUSTERS, region="fra")
    with pytest.raises(v.VultrAPIError, match="either cluster"):
        v.find_cluster(CLUSTERS)


def test_pick_tier():
    assert v.pick_tier(TIERS)["id"] == 2
    assert v.pick_tier(TIERS, "legacy")["id"] == 1
    assert v.pick_tier(TIERS, "tier_010k_5000m")["id"] == 2
    with pytest.raises(v.VultrAPIError, match="Standard"):
        v.pick_tier(TIERS, "Gold")


def test_find_subscription_by_label_and_cluster():
    subs = [{"id": "a", "label": "m", "cluster_id": 2}, {"id": "b", "label": "m", "cluster_id": 5}]
    assert v.find_subscription(subs, "m", 5)["id"] == "b"
    assert v.find_subscription(subs, "x", 5) is None
    with pytest.raises(v.VultrAPIError, match="labels must be unique"):
        v.find_subscription(subs + [{"id": "c", "label": "m", "cluster_id": 5}], "m", 5)


class FakeOpener:
    """Records requests and answers from a list of (status, body) pairs."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def __call__(self, url, method, data, headers, timeout, validate_certs):
        self.calls.append((method, url, headers.get("Authorization")))
        status, body = self.answers.pop(0)
        return status, json.dumps(body).encode()


def test_list_follows_cursor_pagination():
    opener = FakeOpener([
        (200, {"clusters": [{"id": 1}], "meta": {"total": 2, "links": {"next": "abc", "prev": ""}}}),
        (200, {"clusters": [{"id": 2}], "meta": {"total": 2, "links": {"next": "", "prev": "xyz"}}}),
    ])
    api = v.VultrAPI("k", api_url="http://x/v2", opener=opener)
    assert [c["id"] for c in api.clusters()] == [1, 2]
    assert opener.calls[1][1] == "http://x/v2/object-storage/clusters?cursor=abc&per_page=100"
    assert opener.calls[0][2] == "Bearer k"


def test_rate_limit_is_retried():
    sleeps = []
    opener = FakeOpener([(429, {"error": "slow down", "status": 429}), (200, {"tiers": TIERS})])
    api = v.VultrAPI("k", opener=opener, sleep=sleeps.append)
    assert api.cluster_tiers(2) == TIERS
    assert sleeps == [1]


def test_wait_active_times_out():
    class API:
        def get(self, _id):
            return {"id": "a", "label": "m", "status": "pending"}

    clock = iter(range(0, 1000, 10))
    with pytest.raises(v.VultrAPIError, match="still 'pending' after 30 seconds"):
        v.wait_active(API(), {"id": "a", "label": "m", "status": "pending"}, timeout=30, interval=1,
                      clock=lambda: next(clock), sleep=lambda s: None)


def test_one_comparison_of_local_bytes_with_an_object():
    from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import content_mismatch

    md5 = "5d41402abc4b2a76b9719d911017c592"
    assert content_mismatch(5, md5, 5, '"%s"' % md5) is None
    assert content_mismatch(5, md5, 5, '"%s"' % md5.upper()) is None
    assert content_mismatch(5, md5, 5, '"abc-2"') is None  # multipart: the size decides
    assert "5 bytes, the object has 6" in content_mismatch(5, md5, 6, '"%s"' % md5)
    assert "ETag" in content_mismatch(5, md5, 5, '"0000"')  # not multipart, not this MD5
    assert content_mismatch(5, md5, None, None) is None
