#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

DOCUMENTATION = r"""
---
module: media_cache
short_description: Retire, check, delete or bring back Mastodon's public/system/cache
version_added: 0.1.0
description:
  - V(retire) renames C(cache) to C(cache.old) (one rename, nothing copied or deleted) and writes a
    marker file in O(marker_dir) recording the directory it moved (path, device, inode); only a
    C(cache.old) with that marker counts as created by this migration. The marker is outside the
    app's tree, so the app user cannot forge it and the retired tree stays identical to the cache.
  - V(delete) removes C(cache.old) only when it carries that marker and every file below it is in
    the bucket (key C([key_prefix/]cache/PATH)) with the same size. The tree is walked without
    following links; a link, a special file or an unreadable directory refuses the deletion.
  - V(restore) renames C(cache.old) back to C(cache) (rollback).
  - The directory holding C(cache) is opened once (a symbolic link on its path is followed only when
    root alone can change it) and every step works through that descriptor, never by path again; a
    C(cache.old) made meanwhile is never overwritten, and a directory swapped for a link in between
    never makes it delete anything but the inode its marker names.
  - V(inspect) changes nothing and reports which of C(cache) and C(cache.old) exist and whether
    C(cache) holds files.
  - It never retires the cache by itself after a copy - the caller (the C(media_copy) role's
    C(retire_cache) entry point) runs a full, unsharded verify first.
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
options:
  cache_dir:
    description: Mastodon's C(public/system/cache) directory.
    type: path
    required: true
  marker_dir:
    description:
      - A directory of the user running the module (created 0700), where the markers of retired
        caches are kept. It must not be writable by others.
    type: path
    default: /var/lib/fediverse-object-storage
  action:
    description: What to do (see the description).
    type: str
    choices: [inspect, retire, delete, restore]
    default: inspect
  bucket:
    description: The bucket the media were copied to. Required with O(action=delete).
    type: str
  key_prefix:
    description: Mastodon's C(S3_KEY_PREFIX), when set.
    type: str
    default: ""
  endpoint:
    description:
      - The S3 endpoint (URL, host name or Vultr cluster name). Required with O(action=delete).
    type: str
  region:
    description: The signing region.
    type: str
  access_key:
    description: The S3 access key (else E(AWS_ACCESS_KEY_ID)).
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description: The S3 secret key (else E(AWS_SECRET_ACCESS_KEY)).
    type: str
    aliases: [aws_secret_access_key]
  addressing_style:
    description: V(path) or V(virtual) S3 addressing.
    type: str
    default: path
    choices: [path, virtual, auto]
  ca_bundle:
    description: A PEM file of CA certificates for the endpoint.
    type: path
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Says what would be moved or deleted (the bucket is still checked); changes nothing.
  diff_mode:
    support: none
    description: No diff.
requirements:
  - boto3 (for O(action=delete))
seealso:
  - module: fediverse.object_storage.media_copy
"""

EXAMPLES = r"""
- name: Retire the cache (after a full verify)
  fediverse.object_storage.media_cache:
    cache_dir: /home/mastodon/live/public/system/cache
    action: retire

- name: Delete the retired cache, only if every file is in the bucket
  fediverse.object_storage.media_cache:
    cache_dir: /home/mastodon/live/public/system/cache
    action: delete
    endpoint: ewr1
    bucket: mastodon-media
"""

RETURN = r"""
state:
  description: Which directories exist after the run - V(cache), V(old), V(both) or V(none).
  returned: always
  type: str
  sample: old
cache_has_files:
  description: Whether C(cache) holds at least one file.
  returned: always
  type: bool
files:
  description: With O(action=delete), the number of files of C(cache.old) checked against the bucket.
  returned: when O(action=delete) and cache.old existed
  type: int
missing:
  description: With O(action=delete), files of C(cache.old) not in the bucket (the deletion is refused when > 0).
  returned: when O(action=delete) and cache.old existed
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import cache_retirement as cr  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (  # noqa: E402
    describe_error,
    client_from_module,
    s3_argument_spec,
)


def bucket_size_lookup(module):
    """size_of(key) for the bucket: one listing of [key_prefix/]cache/ (BucketIndex, 16 bytes per object)."""
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import (
        BucketIndex,
        join_key,
        listing_prefix,
    )

    p = module.params
    client = client_from_module(module)
    try:
        index = BucketIndex.from_listing(client, p["bucket"], listing_prefix(join_key(p["key_prefix"], "cache")))
    except Exception as exc:  # noqa: BLE001 - every S3 failure is reported with describe_error
        if hasattr(exc, "response"):
            module.fail_json(msg="listing bucket %s: %s" % (p["bucket"], describe_error(exc, p["endpoint"], p["bucket"])))
        raise
    return index.size_of


def main():
    module = AnsibleModule(
        argument_spec=dict(
            cache_dir=dict(type="path", required=True),
            marker_dir=dict(type="path", default="/var/lib/fediverse-object-storage"),
            action=dict(type="str", default="inspect", choices=["inspect", "retire", "delete", "restore"]),
            bucket=dict(type="str"),
            key_prefix=dict(type="str", default="", no_log=False),
            # The S3 connection options of every S3 module; the endpoint only for action=delete.
            **dict(s3_argument_spec(), endpoint=dict(type="str")),
        ),
        required_if=[("action", "delete", ["bucket", "endpoint"])],
        supports_check_mode=True,
    )
    p = module.params
    cache_dir = p["cache_dir"].rstrip("/")
    result = {}
    try:
        # public/system is anchored once: every step below works through that one descriptor.
        with cr.Retirement(cache_dir, p["marker_dir"]) as retirement:
            if p["action"] == "retire":
                changed, msg = retirement.retire(module.check_mode)
            elif p["action"] == "restore":
                changed, msg = retirement.restore(module.check_mode)
            elif p["action"] == "delete":
                if retirement.state() in ("old", "both"):
                    problem = retirement.marker_problem()
                    if problem:  # before any request
                        raise cr.RetirementError("not deleting %s: %s." % (retirement.old, problem))
                    changed, result = retirement.delete_old(bucket_size_lookup(module), p["key_prefix"],
                                                            module.check_mode)
                    msg = result.pop("msg")
                else:
                    changed, msg = False, "%s does not exist: nothing to delete" % retirement.old
            else:
                changed, msg = False, "inspected"
            current = retirement.state()
            cache_has_files = retirement.has_files()
    except cr.RetirementError as exc:
        module.fail_json(msg=str(exc), cache_dir=cache_dir)
    except OSError as exc:
        module.fail_json(msg="%s: %s" % (getattr(exc, "filename", None) or cache_dir, exc.strerror or exc),
                         cache_dir=cache_dir)
    module.exit_json(changed=changed, msg=msg, state=current, cache_has_files=cache_has_files,
                     cache_dir=cache_dir, **result)


if __name__ == "__main__":
    main()
