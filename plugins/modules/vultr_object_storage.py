#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

DOCUMENTATION = r"""
---
module: vultr_object_storage
short_description: Create or find a Vultr Object Storage subscription and return its S3 keys
version_added: 0.1.0
description:
  - Finds the Vultr Object Storage subscription with the given O(label) on a cluster, or creates it
    through the Vultr API v2, waits until it is C(active), and returns its S3 host name and keys for
    the next tasks (the C(bucket) module, the application's storage settings).
  - Idempotent by label and cluster. An existing subscription is never modified (its tier is not
    changed; a warning says so when it differs from O(tier)).
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
options:
  api_key:
    description:
      - A Vultr API key (Account, API). If not set, the environment variable E(VULTR_API_KEY) is used.
    type: str
    required: true
  api_url:
    description:
      - The API's base URL. Only change it for a test server.
    type: str
    default: https://api.vultr.com/v2
  label:
    description:
      - The subscription's label. It identifies the subscription, together with the cluster.
    type: str
    required: true
    aliases: [name]
  cluster:
    description:
      - The cluster, by host name (V(ewr1.vultrobjects.com)), short name (V(ewr1)) or numeric id.
      - Exactly one of O(cluster) and O(region) is required.
    type: str
  region:
    description:
      - The Vultr region of the cluster (V(ewr), V(sjc), V(ams), V(blr), V(del), V(sgp)...). It must
        have exactly one cluster open to new deployments.
    type: str
  tier:
    description:
      - The tier, by sales name (V(Standard), V(Premium)...), slug or id. Defaults to the cluster's
        default tier.
    type: str
  state:
    description:
      - V(present) finds or creates the subscription; V(absent) deletes it (and every bucket in it).
    type: str
    choices: [present, absent]
    default: present
  wait:
    description:
      - Wait until the subscription is C(active) (its keys work only then).
    type: bool
    default: true
  wait_timeout:
    description: How many seconds to wait for C(active).
    type: int
    default: 600
  wait_interval:
    description: Seconds between two status polls while waiting.
    type: float
    default: 5
  validate_certs:
    description: Verify the API's TLS certificate.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Reports whether the subscription would be created or deleted; nothing is created.
  diff_mode:
    support: full
    description: Shows the subscription before and after.
notes:
  - The result holds the S3 secret key. Ansible cannot hide one field of a module's result, so
    register the result and set C(no_log) to V(true) on the task (the C(bucket) role does), or
    anyone reading the output (C(-v), callbacks, AWX job logs) sees the key.
  - Creating a subscription starts billing on the Vultr account.
seealso:
  - module: fediverse.object_storage.bucket
  - name: Vultr API v2, Object Storage
    description: The API endpoints this module uses.
    link: https://www.vultr.com/api/#tag/s3
"""

EXAMPLES = r"""
- name: Create (or find) the Object Storage subscription in New Jersey
  fediverse.object_storage.vultr_object_storage:
    label: mastodon-media
    cluster: ewr1.vultrobjects.com
  register: vultr_storage
  no_log: true

- name: Create the bucket with the subscription's keys
  fediverse.object_storage.bucket:
    name: example-social-media
    endpoint: "{{ vultr_storage.s3_hostname }}"
    access_key: "{{ vultr_storage.s3_access_key }}"
    secret_key: "{{ vultr_storage.s3_secret_key }}"
"""

RETURN = r"""
s3_hostname:
  description: The S3 endpoint host name of the subscription (empty in check mode before creation).
  returned: when O(state=present)
  type: str
  sample: ewr1.vultrobjects.com
s3_access_key:
  description: The subscription's S3 access key.
  returned: when O(state=present)
  type: str
s3_secret_key:
  description: The subscription's S3 secret key. Set C(no_log) on the task.
  returned: when O(state=present)
  type: str
object_storage:
  description: The subscription, without its keys.
  returned: always
  type: dict
  sample: {"id": "9d3a0a5c-...", "label": "mastodon-media", "status": "active", "region": "ewr",
           "cluster_id": 2, "s3_hostname": "ewr1.vultrobjects.com"}
cluster:
  description: The cluster the subscription is (or would be) on.
  returned: always
  type: dict
  sample: {"id": 2, "region": "ewr", "hostname": "ewr1.vultrobjects.com", "deploy": "yes"}
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.vultr_api import (  # noqa: E402
    DEFAULT_API_URL,
    VultrAPI,
    VultrAPIError,
    handle_absent,
    handle_present,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            api_key=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["VULTR_API_KEY"])),
            api_url=dict(type="str", default=DEFAULT_API_URL),
            label=dict(type="str", required=True, aliases=["name"]),
            cluster=dict(type="str"),
            region=dict(type="str"),
            tier=dict(type="str"),
            state=dict(type="str", default="present", choices=["present", "absent"]),
            wait=dict(type="bool", default=True),
            wait_timeout=dict(type="int", default=600),
            wait_interval=dict(type="float", default=5),
            validate_certs=dict(type="bool", default=True),
        ),
        required_one_of=[("cluster", "region")],
        mutually_exclusive=[("cluster", "region")],
        supports_check_mode=True,
    )
    p = module.params
    try:
        api = VultrAPI(p["api_key"], api_url=p["api_url"], validate_certs=p["validate_certs"])
        if p["state"] == "present":
            changed, result = handle_present(api, p["label"], p["cluster"], p["region"], p["tier"], p["wait"],
                                             p["wait_timeout"], p["wait_interval"], module.check_mode)
        else:
            changed, result = handle_absent(api, p["label"], p["cluster"], p["region"], module.check_mode)
    except VultrAPIError as exc:
        module.fail_json(msg=str(exc), status=exc.status)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
