#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

DOCUMENTATION = r"""
---
module: bucket
short_description: Create or delete an S3 bucket that is not listable or writable anonymously
version_added: 0.1.0
description:
  - Creates a bucket on Vultr Object Storage (or any S3 endpoint served by Ceph RGW) that anonymous
    users can neither list nor write. By default (O(policy=object-acl), Mastodon's model) the bucket
    policy grants nothing to anonymous users and each object is public or private through its own
    ACL, so what Mastodon makes private (suspended accounts' media, backups) stays private.
  - A bucket policy that allows anything to everyone (such as the C(s3:GetObject) policy of the usual
    blog procedures) is detected, explained in a warning, and its anonymous statements are removed
    with O(policy=object-acl), because a policy Allow overrides the objects' ACL (measured on Ceph RGW).
  - A bucket ACL that grants anything to everyone (AllUsers, AuthenticatedUsers) is set back to
    private, with a warning, for the named policies.
  - The bucket name is checked before any request is made.
  - Policies and CORS rules are compared semantically, so a policy that only differs in key or
    statement order, C(Sid), or a string versus a one-element list is not changed.
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
options:
  name:
    description:
      - The bucket name. 3 to 63 characters of lowercase letters, digits and hyphens, starting and
        ending with a letter or a digit, not an IP address, and without dots (a dotted name breaks
        HTTPS in virtual-host style). An invalid name fails with the reason and a suggested name.
    type: str
    required: true
    aliases: [bucket]
  state:
    description:
      - V(present) creates the bucket and sets its policy and CORS rules.
      - V(absent) deletes the bucket. A bucket that still holds objects is refused unless O(force=true).
    type: str
    choices: [present, absent]
    default: present
  force:
    description:
      - With O(state=absent), delete every object (and object version, and unfinished multipart
        upload) of the bucket before deleting it.
    type: bool
    default: false
  policy:
    description:
      - V(object-acl) grants nothing to anonymous users in the bucket policy; objects are readable
        by URL when their own ACL is C(public-read) (Mastodon's C(S3_PERMISSION)), not when it is
        C(private). Anonymous Allow statements of an existing policy are removed (the policy is
        deleted when nothing else is left); Deny statements and statements for named principals stay.
        Use it for Mastodon, whose suspended accounts' media and backups are private objects.
      - V(public-read) gives everyone C(s3:GetObject) on C(arn:aws:s3:::NAME/*) and nothing else.
        Every object is readable by URL whatever its ACL; the bucket cannot be listed or written
        anonymously. For Misskey, which has no private files and uploads without an ACL unless
        C(setPublicRead) is set.
      - V(private) removes any bucket policy.
      - Anything else is a custom policy document, as a JSON string or a dictionary. It is checked
        locally (JSON, Statement, Effect, Action, Resource, Principal) before it is sent.
    type: raw
    default: object-acl
  cors:
    description:
      - V(default) sets one CORS rule allowing C(GET) and C(HEAD) from any origin, as Mastodon's
        documentation asks for media served straight from the bucket.
      - V(none) (or V(false)) removes the CORS configuration; V(keep) leaves it untouched.
      - A list of CORS rules (C(AllowedMethods), C(AllowedOrigins), C(AllowedHeaders),
        C(ExposeHeaders), C(MaxAgeSeconds)) sets exactly those rules.
    type: raw
    default: default
extends_documentation_fragment:
  - fediverse.object_storage.s3
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is created, deleted or written.
  diff_mode:
    support: full
    description: Shows the bucket's state, policy and CORS rules before and after.
notes:
  - The module is in the C(fediverse.object_storage.s3) action group, so C(module_defaults) can set
    the endpoint and keys once.
seealso:
  - module: fediverse.object_storage.bucket_object
  - module: fediverse.object_storage.vultr_object_storage
"""

EXAMPLES = r"""
- name: Create Mastodon's media bucket (objects public through their own ACL, not listable)
  fediverse.object_storage.bucket:
    name: example-social-media
    endpoint: ewr1
    access_key: "{{ vultr_s3_access_key }}"
    secret_key: "{{ vultr_s3_secret_key }}"

- name: A bucket with a custom policy (only one prefix public)
  fediverse.object_storage.bucket:
    name: example-social-media
    endpoint: https://sgp1.vultrobjects.com
    policy:
      Version: "2012-10-17"
      Statement:
        - Effect: Allow
          Principal: "*"
          Action: s3:GetObject
          Resource: arn:aws:s3:::example-social-media/media_attachments/*
    cors: keep

- name: A Misskey bucket (every object readable by URL through the policy)
  fediverse.object_storage.bucket:
    name: example-misskey-media
    endpoint: ewr1
    policy: public-read

- name: Delete a test bucket and everything in it
  fediverse.object_storage.bucket:
    name: example-social-test
    endpoint: ewr1
    state: absent
    force: true
"""

RETURN = r"""
name:
  description: The bucket name.
  returned: always
  type: str
  sample: example-social-media
endpoint_url:
  description: The endpoint URL the module talked to (a Vultr cluster name resolved to its URL).
  returned: always
  type: str
  sample: https://ewr1.vultrobjects.com
existed:
  description: Whether the bucket existed before the module ran.
  returned: always
  type: bool
policy:
  description: The bucket policy after the module ran (null when there is none).
  returned: when O(state=present)
  type: dict
  sample: {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*",
           "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::example-social-media/*"]}]}
removed_statements:
  description: With O(policy=object-acl), the anonymous Allow statements removed from the bucket policy.
  returned: when O(state=present)
  type: list
  elements: dict
bucket_acl_public_grants:
  description: The permissions the bucket's ACL granted to everyone before the module set it to private.
  returned: when O(state=present)
  type: list
  elements: str
cors_rules:
  description: The CORS rules after the module ran (null when there are none or O(cors=keep)).
  returned: when O(state=present)
  type: list
  elements: dict
deleted_objects:
  description: How many objects and object versions O(force=true) deleted.
  returned: when O(state=absent)
  type: int
  sample: 0
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.steps import (  # noqa: E402
    BucketError,
    bucket_error_message,
    handle_bucket_absent,
    handle_bucket_acl,
    handle_bucket_present,
    handle_cors,
    handle_policy,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import (  # noqa: E402
    NAMED_POLICIES,
    OBJECT_ACL,
    BucketNameError,
    CorsError,
    PolicyError,
    check_policy,
    cors_text,
    desired_cors,
    desired_policy,
    strip_anonymous_allows,
    validate_bucket_name,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (  # noqa: E402
    BotoCoreError,
    ClientError,
    client_and_endpoint,
    s3_argument_spec,
)


def run_present(module, client, name, policy, cors):
    changed, created = handle_bucket_present(client, name, module.check_mode)
    exists = created["existed"]
    result = dict(existed=exists)
    p_changed, p_result = handle_policy(client, name, policy, module.check_mode, exists=exists)
    a_changed, a_result = False, {"public_grants": [], "warnings": []}
    if module.params["policy"] in NAMED_POLICIES:
        a_changed, a_result = handle_bucket_acl(client, name, module.check_mode, exists=exists)
    for warning in p_result["warnings"] + a_result["warnings"]:
        module.warn(warning)
    removed = strip_anonymous_allows(p_result["before"])[1] if policy == OBJECT_ACL else []
    manage_cors, cors_rules = cors
    c_result = {"before": None, "after": None}
    c_changed = False
    if manage_cors:
        c_changed, c_result = handle_cors(client, name, cors_rules, module.check_mode, exists=exists)
    result.update(
        changed=changed or p_changed or a_changed or c_changed,
        policy=p_result["after"],
        removed_statements=removed,
        bucket_acl_public_grants=a_result["public_grants"],
        cors_rules=c_result["after"],
        diff=dict(
            # CORS rules in one line each side (cors_rules has them in full).
            before=dict(state="present" if exists else "absent", policy=p_result["before"],
                        cors=cors_text(c_result["before"]), public_acl_grants=a_result["public_grants"]),
            after=dict(state="present", policy=p_result["after"], cors=cors_text(c_result["after"]), public_acl_grants=[]),
        ),
    )
    return result


def run_absent(module, client, name):
    changed, info = handle_bucket_absent(client, name, module.params["force"], module.check_mode)
    return dict(
        changed=changed,
        existed=info["existed"],
        deleted_objects=info["deleted_objects"],
        diff=dict(before=dict(state="present" if info["existed"] else "absent"), after=dict(state="absent")),
    )


def main():
    argument_spec = s3_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True, aliases=["bucket"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        force=dict(type="bool", default=False),
        policy=dict(type="raw", default=OBJECT_ACL),
        cors=dict(type="raw", default="default"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    name = module.params["name"]

    # Everything that needs no request is checked first: a bad name never reaches the endpoint.
    try:
        validate_bucket_name(name)
        policy = desired_policy(module.params["policy"], name) if module.params["state"] == "present" else None
        cors = desired_cors(module.params["cors"])
    except BucketNameError as exc:
        module.fail_json(msg=str(exc), name=name)
    except PolicyError as exc:
        module.fail_json(msg="invalid policy for bucket %s: %s" % (name, exc), name=name)
    except CorsError as exc:
        module.fail_json(msg=str(exc), name=name)

    if module.params["policy"] not in (None,) + NAMED_POLICIES:
        for warning in check_policy(policy, name):
            module.warn(warning)

    client, endpoint_url = client_and_endpoint(module, name=name)
    action = "creating or checking the bucket" if module.params["state"] == "present" else "deleting the bucket"
    try:
        if module.params["state"] == "present":
            result = run_present(module, client, name, policy, cors)
        else:
            result = run_absent(module, client, name)
    except BucketError as exc:
        module.fail_json(msg=str(exc), name=name, endpoint_url=endpoint_url)
    except (BotoCoreError, ClientError) as exc:
        module.fail_json(msg=bucket_error_message(exc, endpoint_url, name, _failed_step(exc, action)),
                         name=name, endpoint_url=endpoint_url)
    module.exit_json(name=name, endpoint_url=endpoint_url, **result)


def _failed_step(exc, default):
    """Which S3 operation failed, in words (botocore puts the operation name on ClientError)."""
    operation = getattr(exc, "operation_name", "") or ""
    if "Acl" in operation:
        return "setting the bucket ACL"
    if "Policy" in operation:
        return "setting the bucket policy"
    if "Cors" in operation:
        return "setting the CORS rules"
    return default


if __name__ == "__main__":
    main()
