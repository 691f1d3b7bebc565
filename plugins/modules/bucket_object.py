#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

DOCUMENTATION = r"""
---
module: bucket_object
short_description: Put or remove one small object in a bucket (probe objects, markers)
version_added: 0.1.0
description:
  - Uploads a small text object, or removes one. The C(bucket) role uses it for the probe object
    whose anonymous download proves that the bucket policy works.
  - Not meant for media, use the C(media_copy) module for that.
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
options:
  bucket:
    description: The bucket name.
    type: str
    required: true
  key:
    description: The object key.
    type: str
    required: true
  content:
    description: The object's content (text). Required with O(state=present).
    type: str
  acl:
    description:
      - The object's canned ACL. Not given, no ACL is sent (the bucket's default, private).
      - The C(bucket) role puts one V(public-read) and one V(private) probe to prove the bucket model.
    type: str
    choices: [public-read, private]
  content_type:
    description: The Content-Type stored with the object.
    type: str
    default: text/plain
  state:
    description:
      - V(present) uploads the object unless an identical one (same content, type and, when O(acl) is
        given, the same public or private ACL) is there.
      - V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - fediverse.object_storage.s3
attributes:
  check_mode:
    support: full
    description: Reports whether the object would be written or removed.
  diff_mode:
    support: none
    description: No diff.
seealso:
  - module: fediverse.object_storage.bucket
"""

EXAMPLES = r"""
- name: Put a probe object
  fediverse.object_storage.bucket_object:
    bucket: example-social-media
    key: probe.txt
    content: "probe"
    endpoint: ewr1

- name: Remove it
  fediverse.object_storage.bucket_object:
    bucket: example-social-media
    key: probe.txt
    endpoint: ewr1
    state: absent
"""

RETURN = r"""
url:
  description: The path-style URL of the object, as an anonymous client fetches it.
  returned: always
  type: str
  sample: https://ewr1.vultrobjects.com/example-social-media/probe.txt
etag:
  description: The MD5 of the content (the ETag of a single-part object).
  returned: when O(state=present)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.steps import (  # noqa: E402
    bucket_error_message,
    handle_object_absent,
    handle_object_present,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import object_url  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (  # noqa: E402
    BotoCoreError,
    ClientError,
    client_and_endpoint,
    s3_argument_spec,
)


def main():
    argument_spec = s3_argument_spec()
    argument_spec.update(
        bucket=dict(type="str", required=True),
        key=dict(type="str", required=True, no_log=False),
        content=dict(type="str"),
        content_type=dict(type="str", default="text/plain"),
        acl=dict(type="str", choices=["public-read", "private"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                           required_if=[("state", "present", ["content"])])
    params = module.params
    client, endpoint_url = client_and_endpoint(module)
    url = object_url(endpoint_url, params["bucket"], params["key"])
    try:
        if params["state"] == "present":
            changed, result = handle_object_present(client, params["bucket"], params["key"], params["content"],
                                                    params["content_type"], module.check_mode, acl=params["acl"])
        else:
            changed, result = handle_object_absent(client, params["bucket"], params["key"], module.check_mode)
    except (BotoCoreError, ClientError) as exc:
        module.fail_json(msg=bucket_error_message(exc, endpoint_url, params["bucket"], "writing object %s" % params["key"]),
                         url=url)
    module.exit_json(changed=changed, url=url, **result)


if __name__ == "__main__":
    main()
