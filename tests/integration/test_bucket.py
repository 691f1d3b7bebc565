"""The bucket module and the bucket role against a real Ceph RGW, over HTTPS.

Every S3 request goes to rgw.https_endpoint with its CA bundle; the anonymous checks use plain
urllib (no credentials), as a browser or a remote Mastodon server would.
"""

import json
import socket
import ssl
import time
import urllib.error
import urllib.request
import uuid

import pytest
import yaml

from tests.ansible_helpers import run_module, run_playbook



# Long enough not to be masked everywhere in the output as no_log values.
DUMMY_KEYS = dict(access_key="DUMMYACCESSKEY0001", secret_key="dummy-secret-key-0001")


def fresh_name():
    return "fos-bkt-" + uuid.uuid4().hex[:12]


def anonymous(rgw, method, path, data=None):
    """Status of an unauthenticated request to the HTTPS endpoint (path-style)."""
    ctx = ssl.create_default_context(cafile=rgw.ca_bundle)
    req = urllib.request.Request(rgw.https_endpoint + path, data=data, method=method)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def connection(rgw, **over):
    args = dict(endpoint=rgw.https_endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key,
                ca_bundle=rgw.ca_bundle)
    args.update(over)
    return args


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def head_status(s3, name):
    try:
        s3.head_bucket(Bucket=name)
        return 200
    except Exception as exc:  # noqa: BLE001
        return exc.response["ResponseMetadata"]["HTTPStatusCode"]


# --- the role: Mastodon's model, objects public or private by their own ACL ----------------------

def role_play(rgw, name, **extra):
    vars_ = dict(bucket_name=name, bucket_endpoint=rgw.https_endpoint, bucket_access_key=rgw.access_key,
                 bucket_secret_key=rgw.secret_key, bucket_ca_bundle=rgw.ca_bundle)
    vars_.update(extra)
    return yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "vars": vars_,
                            "roles": ["fediverse.object_storage.bucket"]}], sort_keys=False)


def seeds_policy(bucket):
    """The allow-all GetObject policy of the admins' blog procedures (seeds 000/001), verbatim shape."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "AddPerm", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::%s/*" % bucket}]})


PUBLIC_KEY = "media_attachments/files/000/000/001/original/a.png"
PRIVATE_KEY = "media_attachments/files/000/000/002/original/suspended.png"


def test_role_replaces_the_seeds_allow_all_policy_private_stays_private(rgw, s3, bucket):
    s3.put_object(Bucket=bucket, Key=PUBLIC_KEY, Body=b"png", ACL="public-read")
    s3.put_object(Bucket=bucket, Key=PRIVATE_KEY, Body=b"secret", ACL="private")
    s3.put_bucket_policy(Bucket=bucket, Policy=seeds_policy(bucket))
    # The defect: with the seeds' policy a private object is readable by anyone.
    assert anonymous(rgw, "GET", "/%s/%s" % (bucket, PRIVATE_KEY)) == 200

    t0 = time.monotonic()
    first = run_playbook(role_play(rgw, bucket))
    first_seconds = time.monotonic() - t0
    assert first.rc == 0, first
    created = first.task("Create the bucket and set its policy")
    assert created["changed"] is True and created["policy"] is None
    assert created["removed_statements"][0]["Sid"] == "AddPerm"
    warning = " ".join(created.get("warnings", []))
    assert "granting anonymous users s3:GetObject" in warning and "overrides the objects' own ACL" in warning, created
    with pytest.raises(Exception, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)
    verified = first.task("Assert the bucket model")
    assert not verified.get("failed") and not verified.get("skipped"), verified
    assert "GET public 200, GET private 403, LIST 403, PUT 403" in verified["msg"]

    assert anonymous(rgw, "GET", "/%s/%s" % (bucket, PUBLIC_KEY)) == 200
    assert anonymous(rgw, "GET", "/%s/%s" % (bucket, PRIVATE_KEY)) == 403
    assert anonymous(rgw, "GET", "/%s/" % bucket) == 403
    assert anonymous(rgw, "GET", "/%s?list-type=2" % bucket) == 403
    assert anonymous(rgw, "PUT", "/%s/evil.txt" % bucket, data=b"x") == 403
    # the probe objects are gone, ours are still there
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    assert keys == sorted([PUBLIC_KEY, PRIVATE_KEY])

    second = run_playbook(role_play(rgw, bucket))
    assert second.rc == 0, second
    assert second.changed == 0, second.stats
    print("role: first run %.1f s" % first_seconds)


def test_role_object_acl_keeps_deny_and_named_statements(rgw, s3, bucket):
    """Only the anonymous Allow goes: an admin's Deny statement stays."""
    policy = json.loads(seeds_policy(bucket))
    deny = {"Sid": "NoSecrets", "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::%s/secret/*" % bucket}
    policy["Statement"].append(deny)
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    res = run_playbook(role_play(rgw, bucket))
    assert res.rc == 0, res
    stored = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert [st["Effect"] for st in stored["Statement"]] == ["Deny"]


def test_role_makes_a_public_bucket_acl_private(rgw, s3, bucket):
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    assert anonymous(rgw, "GET", "/%s/" % bucket) == 200  # listable: every file exposed
    res = run_playbook(role_play(rgw, bucket))
    assert res.rc == 0, res
    out = res.task("Create the bucket and set its policy")
    assert out["changed"] is True and out["bucket_acl_public_grants"] == ["READ"]
    assert any("anyone could list" in w for w in out.get("warnings", [])), out
    assert anonymous(rgw, "GET", "/%s/" % bucket) == 403


def test_role_public_read_model_for_misskey(rgw, s3, bucket):
    """Misskey's model: no private files, uploads without an ACL, a GetObject policy for everyone."""
    s3.put_object(Bucket=bucket, Key="files/webpublic-x.png", Body=b"png")  # no ACL, like Misskey
    res = run_playbook(role_play(rgw, bucket, bucket_policy="public-read"))
    assert res.rc == 0, res
    assert "GET public 200, GET private 200, LIST 403, PUT 403" in res.task("Assert the bucket model")["msg"]
    assert anonymous(rgw, "GET", "/%s/files/webpublic-x.png" % bucket) == 200
    assert anonymous(rgw, "GET", "/%s/" % bucket) == 403


def test_role_check_mode_on_fresh_name_creates_nothing(rgw, s3):
    name = fresh_name()
    result = run_playbook(role_play(rgw, name), check=True)
    assert result.rc == 0, result
    assert result.task("Create the bucket and set its policy")["changed"] is True
    assert head_status(s3, name) == 404


def test_role_reports_a_bad_name_before_any_request(rgw):
    result = run_playbook(role_play(rgw, "Media.Example", bucket_endpoint="https://127.0.0.1:%d" % closed_port()))
    assert result.rc != 0
    (msg,) = result.failure_messages()
    assert "contains dots" in msg and "'media-example'" in msg


# --- the module ----------------------------------------------------------------------------------

def test_module_check_mode_creates_nothing_and_second_run_is_unchanged(rgw, s3):
    name = fresh_name()
    checked = run_module("bucket", dict(connection(rgw), name=name), check=True)
    assert checked.rc == 0, checked
    assert checked.task("Run the module")["changed"] is True
    assert head_status(s3, name) == 404

    try:
        created = run_module("bucket", dict(connection(rgw), name=name))
        assert created.rc == 0, created
        out = created.task("Run the module")
        assert out["changed"] is True and out["existed"] is False
        assert out["endpoint_url"] == rgw.https_endpoint
        assert head_status(s3, name) == 200
        again = run_module("bucket", dict(connection(rgw), name=name))
        assert again.task("Run the module")["changed"] is False, again
        # check mode on an existing, correct bucket: nothing to do
        assert run_module("bucket", dict(connection(rgw), name=name), check=True).task("Run the module")["changed"] is False
        assert out["policy"] is None  # object-acl: no policy at all
        with pytest.raises(Exception, match="NoSuchBucketPolicy"):
            s3.get_bucket_policy(Bucket=name)
    finally:
        s3.delete_bucket(Bucket=name)


def test_diff_shows_the_policy(rgw, s3, bucket):
    result = run_module("bucket", dict(connection(rgw), name=bucket, policy="public-read"), diff=True, check=True)
    assert result.rc == 0, result
    diff = result.task("Run the module")["diff"]
    assert diff["before"]["policy"] is None
    assert diff["after"]["policy"]["Statement"][0]["Action"] == ["s3:GetObject"]
    assert diff["after"]["policy"]["Statement"][0]["Resource"] == ["arn:aws:s3:::%s/*" % bucket]
    with pytest.raises(Exception) as err:  # check mode wrote nothing
        s3.get_bucket_policy(Bucket=bucket)
    assert "NoSuchBucketPolicy" in str(err.value)
    # the human diff output shows it too
    text = run_module("bucket", dict(connection(rgw), name=bucket, policy="public-read"), diff=True, check=True,
                      callback="default")
    assert "s3:GetObject" in text.stdout and "arn:aws:s3:::%s/*" % bucket in text.stdout


@pytest.mark.parametrize("name, reason", [
    ("media.example.com", "contains dots"),
    ("MastodonMedia", "uppercase"),
    ("m" * 64, "at most 63"),
    ("10.0.0.1", "IP address"),
])
def test_bad_names_fail_before_any_request(name, reason):
    # The endpoint is a closed port: reaching it would fail with a connection error instead.
    endpoint = "https://127.0.0.1:%d" % closed_port()
    result = run_module("bucket", dict(endpoint=endpoint, **DUMMY_KEYS, name=name))
    assert result.rc != 0
    out = result.task("Run the module")
    assert reason in out["msg"]
    assert "Try '" in out["msg"]
    assert "reach" not in out["msg"] and "Connect" not in out["msg"]


def test_unreachable_endpoint_is_a_clear_error():
    endpoint = "https://127.0.0.1:%d" % closed_port()
    t0 = time.monotonic()
    result = run_module("bucket", dict(endpoint=endpoint, **DUMMY_KEYS, name=fresh_name()))
    seconds = time.monotonic() - t0
    out = result.task("Run the module")
    assert result.rc != 0
    assert "cannot reach the S3 endpoint" in out["msg"], out
    assert "module_stderr" not in out and "Traceback" not in result.stdout
    print("unreachable endpoint: failed after %.1f s" % seconds)


def test_wrong_secret_key_names_the_credential_problem(rgw, bucket):
    result = run_module("bucket", dict(connection(rgw, secret_key="wrong-" + rgw.secret_key), name=bucket))
    assert result.rc != 0
    out = result.task("Run the module")
    assert "secret key does not match" in out["msg"] and "SignatureDoesNotMatch" in out["msg"], out
    assert "Traceback" not in result.stdout + result.stderr and "module_stderr" not in out
    assert rgw.secret_key not in result.stdout


def test_wrong_access_key_names_the_credential_problem(rgw, bucket):
    result = run_module("bucket", dict(connection(rgw, access_key="NOSUCHKEY0000000"), name=bucket))
    out = result.task("Run the module")
    assert result.rc != 0
    assert "access key is not known" in out["msg"] and "InvalidAccessKeyId" in out["msg"], out


def test_bucket_of_another_account(rgw, s3):
    uid = "fos-other-" + uuid.uuid4().hex[:6]
    access, secret = uuid.uuid4().hex[:20].upper(), uuid.uuid4().hex
    rgw.admin("user", "create", "--uid", uid, "--display-name", "other", "--access-key", access, "--secret-key", secret)
    other = __import__("ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client",
                       fromlist=["s3_client"]).s3_client(rgw.https_endpoint, access, secret, ca_bundle=rgw.ca_bundle)
    name = fresh_name()
    other.create_bucket(Bucket=name)
    try:
        result = run_module("bucket", dict(connection(rgw), name=name))
        out = result.task("Run the module")
        assert result.rc != 0
        assert "another account" in out["msg"], out
        assert "choose another" in out["msg"]
        # and nothing was changed on their bucket
        assert "Policy" not in str(other.list_objects_v2(Bucket=name))
    finally:
        other.delete_bucket(Bucket=name)
        rgw.admin("user", "rm", "--uid", uid)


def test_absent_refuses_non_empty_and_force_empties(rgw, s3, bucket):
    for i in range(3):
        s3.put_object(Bucket=bucket, Key="k/%d" % i, Body=b"x")
    refused = run_module("bucket", dict(connection(rgw), name=bucket, state="absent"))
    assert refused.rc != 0
    assert "not empty" in refused.task("Run the module")["msg"]
    assert head_status(s3, bucket) == 200

    checked = run_module("bucket", dict(connection(rgw), name=bucket, state="absent", force=True), check=True)
    assert checked.task("Run the module")["changed"] is True
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 3

    forced = run_module("bucket", dict(connection(rgw), name=bucket, state="absent", force=True))
    assert forced.rc == 0, forced
    out = forced.task("Run the module")
    assert out["changed"] is True and out["deleted_objects"] == 3
    assert head_status(s3, bucket) == 404
    again = run_module("bucket", dict(connection(rgw), name=bucket, state="absent"))
    assert again.task("Run the module")["changed"] is False


def test_absent_deletes_an_empty_bucket(rgw, s3, bucket):
    result = run_module("bucket", dict(connection(rgw), name=bucket, state="absent"))
    assert result.task("Run the module")["changed"] is True
    assert head_status(s3, bucket) == 404


def test_custom_policy_is_compared_semantically(rgw, s3, bucket):
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "a", "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
             "Resource": "arn:aws:s3:::%s/media_attachments/*" % bucket},
            {"Sid": "b", "Effect": "Allow", "Principal": {"AWS": ["*"]}, "Action": ["s3:GetObject"],
             "Resource": ["arn:aws:s3:::%s/accounts/*" % bucket]},
        ],
    }
    first = run_module("bucket", dict(connection(rgw), name=bucket, policy=json.dumps(policy)))
    assert first.task("Run the module")["changed"] is True, first
    stored = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    assert len(stored["Statement"]) == 2

    reordered = {
        "Statement": [
            {"Resource": "arn:aws:s3:::%s/accounts/*" % bucket, "Action": "s3:GetObject",
             "Principal": "*", "Effect": "Allow"},
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["s3:getobject"],
             "Resource": ["arn:aws:s3:::%s/media_attachments/*" % bucket]},
        ],
        "Version": "2012-10-17",
    }
    same = run_module("bucket", dict(connection(rgw), name=bucket, policy=reordered))
    assert same.rc == 0, same
    assert same.task("Run the module")["changed"] is False

    # a real difference is a change; back to public-read
    public = run_module("bucket", dict(connection(rgw), name=bucket, policy="public-read"))
    assert public.task("Run the module")["changed"] is True
    # private removes the policy
    private = run_module("bucket", dict(connection(rgw), name=bucket, policy="private"))
    assert private.task("Run the module")["changed"] is True
    assert anonymous(rgw, "GET", "/%s/x" % bucket) in (403, 404)
    with pytest.raises(Exception, match="NoSuchBucketPolicy"):
        s3.get_bucket_policy(Bucket=bucket)


def test_malformed_policy_is_a_clear_error(rgw, s3, bucket):
    local = run_module("bucket", dict(connection(rgw), name=bucket, policy='{"Statement": [ {"Effect": "Allow",'))
    assert local.rc != 0
    assert "not valid JSON" in local.task("Run the module")["msg"]

    # Passes the local checks, refused by Ceph RGW (unknown condition operator).
    bad = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/*" % bucket,
        "Condition": {"NoSuchOperator": {"aws:SourceIp": "127.0.0.1"}}}]}
    remote = run_module("bucket", dict(connection(rgw), name=bucket, policy=bad))
    assert remote.rc != 0
    msg = remote.task("Run the module")["msg"]
    assert "rejected the bucket policy" in msg, msg
    assert "Traceback" not in remote.stdout


def test_cors_default_none_and_keep(rgw, s3, bucket):
    run_module("bucket", dict(connection(rgw), name=bucket))
    rules = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert sorted(rules[0]["AllowedMethods"]) == ["GET", "HEAD"] and rules[0]["AllowedOrigins"] == ["*"]
    assert run_module("bucket", dict(connection(rgw), name=bucket, cors="keep", policy="object-acl")) \
        .task("Run the module")["changed"] is False
    removed = run_module("bucket", dict(connection(rgw), name=bucket, cors="none"))
    assert removed.task("Run the module")["changed"] is True
    with pytest.raises(Exception, match="NoSuchCORSConfiguration"):
        s3.get_bucket_cors(Bucket=bucket)


def test_bucket_object_module(rgw, s3, bucket):
    args = dict(connection(rgw), bucket=bucket, key="probe dir/p.txt", content="hello\n")
    put = run_module("bucket_object", args)
    assert put.rc == 0, put
    out = put.task("Run the module")
    assert out["changed"] is True
    assert out["url"] == "%s/%s/probe%%20dir/p.txt" % (rgw.https_endpoint, bucket)
    assert s3.get_object(Bucket=bucket, Key="probe dir/p.txt")["Body"].read() == b"hello\n"
    assert run_module("bucket_object", args).task("Run the module")["changed"] is False
    gone = run_module("bucket_object", dict(args, state="absent", content=None))
    assert gone.task("Run the module")["changed"] is True
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_bucket_object_acl(rgw, s3, bucket):
    args = dict(connection(rgw), bucket=bucket, key="p.txt", content="x\n", acl="public-read")
    assert run_module("bucket_object", args).task("Run the module")["changed"] is True
    assert anonymous(rgw, "GET", "/%s/p.txt" % bucket) == 200
    assert run_module("bucket_object", args).task("Run the module")["changed"] is False
    # same content, other ACL: rewritten
    assert run_module("bucket_object", dict(args, acl="private")).task("Run the module")["changed"] is True
    assert anonymous(rgw, "GET", "/%s/p.txt" % bucket) == 403
