# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The S3 steps of the ``bucket`` and ``bucket_object`` modules (the ``handle_*`` functions).

Plain Python (no Ansible import): the modules are thin wrappers around the ``handle_*`` functions,
which take a boto3 client and return ``(changed, result)`` like amazon.aws does. What needs no S3
request (name rules, policy documents, CORS rules and their comparison) is in bucket/rules.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

import hashlib
import json

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import (
    OBJECT_ACL,
    PUBLIC_READ,
    actions_text,
    cors_equal,
    policies_equal,
    public_grants,
    strip_anonymous_allows,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    ClientError,
    describe_error,
    error_code,
    is_not_found,
    probe_bucket,
)

ANONYMOUS_POLICY_WARNING = (
    "bucket %s had a policy granting anonymous users %s (%d statement(s), like the public-read policy "
    "of the usual blog procedures). A bucket policy Allow overrides the objects' own ACL: every object "
    "made private (suspended accounts' media, users' backups) was readable by anyone. %s")
PUBLIC_BUCKET_ACL_WARNING = (
    "bucket %s had an ACL granting %s to everyone (%s): anyone could list%s the bucket. The bucket ACL "
    "was set to private (objects keep their own ACL).")


class BucketError(Exception):
    """A failure of an S3 step, with a message an admin can act on."""


# --- errors -------------------------------------------------------------------------------------

def bucket_error_message(exc, endpoint=None, bucket=None, action=None):
    """describe_error() plus the bucket-specific cases."""
    code = error_code(exc)
    what = " while %s" % action if action else ""
    if code in ("MalformedPolicy", "InvalidArgument", "InvalidPolicyDocument") and action and "policy" in action:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        return ("the endpoint rejected the bucket policy of %s (%s%s): check the policy document"
                % (bucket, code, ": " + message if message else ""))
    return describe_error(exc, endpoint, bucket) + what


# --- S3 steps (each returns (changed, result)) --------------------------------------------------

def bucket_exists(client, name):
    """True/False; raises ClientError with a meaningful code when the keys or the owner are the problem."""
    try:
        probe_bucket(client, name)
    except ClientError as exc:
        if is_not_found(exc):
            return False
        if error_code(exc) == "AccessDenied":
            raise BucketError(
                "bucket %s exists but these keys may not use it (AccessDenied): bucket names are unique across "
                "the whole service, so it probably belongs to another account; choose another name" % name) from None
        raise
    return True


def get_policy(client, name):
    """The bucket's policy as a dict, or None."""
    try:
        text = client.get_bucket_policy(Bucket=name)["Policy"]
    except ClientError as exc:
        if is_not_found(exc) or error_code(exc) == "NoSuchBucketPolicy":
            return None
        raise
    if hasattr(text, "read"):
        text = text.read()
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text) if text else None


def get_cors(client, name):
    try:
        return client.get_bucket_cors(Bucket=name).get("CORSRules") or None
    except ClientError as exc:
        if is_not_found(exc) or error_code(exc) == "NoSuchCORSConfiguration":
            return None
        raise


def handle_bucket_present(client, name, check_mode=False):
    """Create the bucket unless it exists. Result: {'existed': bool}."""
    if bucket_exists(client, name):
        return False, {"existed": True}
    if check_mode:
        return True, {"existed": False}
    try:
        client.create_bucket(Bucket=name)
    except ClientError as exc:
        if error_code(exc) == "BucketAlreadyOwnedByYou":
            return False, {"existed": True}
        raise
    return True, {"existed": False}


def handle_policy(client, name, policy, check_mode=False, exists=True):
    """Make the bucket's policy semantically equal to ``policy`` (None: no policy).

    ``policy`` ``object-acl``: the current policy without its anonymous Allow statements (a
    policy left empty is deleted); ``result['warnings']`` explains what was removed and why.
    """
    before = get_policy(client, name) if exists else None
    warnings = []
    if policy == OBJECT_ACL:
        after, removed = strip_anonymous_allows(before)
        if removed:
            warnings.append(ANONYMOUS_POLICY_WARNING % (
                name, actions_text(removed), len(removed),
                "Those statements were %s: objects are now public or private through their own ACL "
                "(S3_PERMISSION=public-read), the way Mastodon expects."
                % ("removed (the policy had nothing else, so it was deleted)" if after is None else "removed")))
    else:
        after = policy
    if policies_equal(before, after):
        return False, {"before": before, "after": before, "warnings": warnings}
    if not check_mode:
        if after is None:
            client.delete_bucket_policy(Bucket=name)
        else:
            client.put_bucket_policy(Bucket=name, Policy=json.dumps(after))
    return True, {"before": before, "after": after, "warnings": warnings}


def handle_bucket_acl(client, name, check_mode=False, exists=True):
    """Make sure the bucket's own ACL grants nothing to everyone (a public-read bucket ACL is a listable bucket)."""
    if not exists:
        return False, {"public_grants": [], "warnings": []}
    grants = public_grants(client.get_bucket_acl(Bucket=name).get("Grants"))
    if not grants:
        return False, {"public_grants": [], "warnings": []}
    writable = any(g in ("WRITE", "FULL_CONTROL") for g in grants)
    warning = PUBLIC_BUCKET_ACL_WARNING % (name, ", ".join(sorted(set(grants))), "AllUsers/AuthenticatedUsers",
                                           " and write to" if writable else "")
    if not check_mode:
        client.put_bucket_acl(Bucket=name, ACL="private")
    return True, {"public_grants": grants, "warnings": [warning]}


def handle_cors(client, name, rules, check_mode=False, exists=True):
    """Make the bucket's CORS rules equal to ``rules`` (None: no CORS configuration)."""
    before = get_cors(client, name) if exists else None
    if cors_equal(before, rules):
        return False, {"before": before, "after": before}
    if not check_mode:
        if rules is None:
            client.delete_bucket_cors(Bucket=name)
        else:
            client.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": rules})
    return True, {"before": before, "after": rules}


def _batches(items, size=1000):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def empty_bucket(client, name):
    """Delete every object, object version and unfinished multipart upload; return the count."""
    deleted = 0
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys.extend({"Key": o["Key"]} for o in page.get("Contents", []))
    for batch in _batches(keys):
        client.delete_objects(Bucket=name, Delete={"Objects": batch, "Quiet": True})
        deleted += len(batch)
    try:
        versions = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
                versions.append({"Key": item["Key"], "VersionId": item["VersionId"]})
        for batch in _batches(versions):
            client.delete_objects(Bucket=name, Delete={"Objects": batch, "Quiet": True})
            deleted += len(batch)
    except ClientError as exc:  # an endpoint without versioning support
        if error_code(exc) not in ("NotImplemented", "MethodNotAllowed"):
            raise
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
        for upload in page.get("Uploads", []):
            client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    return deleted


def bucket_is_empty(client, name):
    page = client.list_objects_v2(Bucket=name, MaxKeys=1)
    return not page.get("KeyCount") and not page.get("Contents")


def handle_bucket_absent(client, name, force=False, check_mode=False):
    """Delete the bucket; refuse a non-empty one unless ``force`` (which empties it first)."""
    if not bucket_exists(client, name):
        return False, {"existed": False, "deleted_objects": 0}
    if not bucket_is_empty(client, name) and not force:
        raise BucketError("bucket %s is not empty: refusing to delete it (set force: true to delete its objects "
                          "and the bucket)" % name)
    if check_mode:
        return True, {"existed": True, "deleted_objects": 0}
    deleted = empty_bucket(client, name) if force else 0
    client.delete_bucket(Bucket=name)
    return True, {"existed": True, "deleted_objects": deleted}


def object_is_public(client, bucket, key):
    """True when the object's own ACL lets everyone read it."""
    grants = public_grants(client.get_object_acl(Bucket=bucket, Key=key).get("Grants"))
    return "READ" in grants or "FULL_CONTROL" in grants


def handle_object_present(client, bucket, key, content, content_type="text/plain", check_mode=False, acl=None):
    """Upload a small object unless an identical one (same MD5/ETag, type, and ACL when given) is there.

    ``acl``: None sends no ACL (the bucket's default, private); ``public-read`` or ``private``.
    """
    body = content.encode("utf-8") if not isinstance(content, bytes) else content
    md5 = hashlib.md5(body).hexdigest()  # noqa: S324 - the S3 ETag of a single-part object
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        if head.get("ETag", "").strip('"') == md5 and head.get("ContentType") == content_type and (
                acl is None or object_is_public(client, bucket, key) == (acl == PUBLIC_READ)):
            return False, {"etag": md5}
    except ClientError as exc:
        if not is_not_found(exc):
            raise
    if not check_mode:
        extra = {"ACL": acl} if acl else {}
        client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type, **extra)
    return True, {"etag": md5}


def handle_object_absent(client, bucket, key, check_mode=False):
    try:
        client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_not_found(exc):
            return False, {}
        raise
    if not check_mode:
        client.delete_object(Bucket=bucket, Key=key)
    return True, {}
