#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: misskey_storage_check
short_description: Prove that Misskey's stored object storage settings work end to end
version_added: 0.1.0
description:
  - Reads the object storage settings back from where Misskey reads them (the C(meta) row for v11
    and later, the C(drive:) section of C(default.yml) for v10), writes a small PNG with exactly
    those settings (endpoint, SSL, port, path style, region, keys, prefix, the headers and ACL
    Misskey's uploads carry), fetches it through C(baseUrl) and removes it.
  - Fails unless the answer is 200 with C(Content-Type image/png) and the same bytes. A NULL
    C(objectStorageRegion) fails too (Misskey 13.10 and later cannot upload without a region).
  - Misskey's S3 client (v11 to current) builds its endpoint from C(objectStorageEndpoint) alone;
    a port stored only in C(objectStoragePort) is not used, and this check shows it.
extends_documentation_fragment:
  - fediverse.object_storage.misskey_db
options:
  line:
    description:
      - V(postgresql) (v11 and later, settings in the C(meta) row) or V(v10) (settings in the C(drive:)
        section of O(config_file)), as RV(fediverse.object_storage.misskey_info#module:line) tells.
    type: str
    choices: [postgresql, v10]
    default: postgresql
  ca_bundle:
    description: CA certificates for the endpoint's and baseUrl's TLS (private endpoints and tests).
    type: path
  fetch_ca_bundle:
    description: CA certificates for baseUrl's TLS when they differ from O(ca_bundle) (e.g. a test proxy).
    type: path
  validate_certs:
    description: Check TLS certificates (when O(ca_bundle) is not given).
    type: bool
    default: true
  connect_to:
    description:
      - C(HOST:PORT) to connect to for the fetch instead of the address baseUrl's host resolves to;
        the Host header and TLS (SNI, certificate) still use baseUrl's host, like curl's C(--connect-to).
    type: str
attributes:
  check_mode:
    support: full
    description: In check mode nothing is written; RV(checked) is false.
  diff_mode:
    support: none
    description: Nothing to show; the module leaves nothing behind.
requirements:
  - boto3
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Write and fetch an object with Misskey's stored settings
  fediverse.object_storage.misskey_storage_check:
    config_file: /home/misskey/misskey/.config/default.yml
"""

RETURN = r"""
checked:
  description: Whether the check ran (false in check mode).
  returned: always
  type: bool
url:
  description: The URL fetched (baseUrl and the check object's key).
  returned: when checked
  type: str
  sample: https://s3.example.com/misskey/fediverse-object-storage-check-0c1d.png
key:
  description: The check object's key (removed again).
  returned: when checked
  type: str
status:
  description: The HTTP status of the fetch.
  returned: when checked
  type: int
  sample: 200
content_type:
  description: The Content-Type answered.
  returned: when checked
  type: str
  sample: image/png
endpoint:
  description: The endpoint URL Misskey's client uses.
  returned: when checked
  type: str
  sample: https://ewr1.vultrobjects.com
region:
  description: The region Misskey signs with.
  returned: when checked
  type: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import db as misskey_db  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import storage as misskey_storage  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (  # noqa: E402
    MisskeyConfigError,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import HAS_BOTO3  # noqa: E402


def read_settings(params):
    if params["line"] == "v10":
        if not params["config_file"]:
            raise MisskeyConfigError("config_file (default.yml) is required for Misskey v10")
        return misskey_storage.settings_from_drive(misskey_storage.read_drive(params["config_file"]))
    conn = misskey_db.connect(misskey_db.connection_params_from(params))
    try:
        _meta_id, stored = misskey_db.read_storage(conn)
    finally:
        conn.close()
    return misskey_storage.settings_from_meta(stored)


def check(module):
    settings = read_settings(module.params)
    if module.check_mode:
        misskey_storage.validate(settings)
        return dict(changed=False, checked=False)
    result = misskey_storage.run_check(settings, ca_bundle=module.params["ca_bundle"],
                                       validate_certs=module.params["validate_certs"],
                                       connect_to=module.params["connect_to"],
                                       fetch_ca_bundle=module.params["fetch_ca_bundle"])
    ok = result.pop("ok")
    message = result.pop("message", "")
    if not ok:
        module.fail_json(msg=message, checked=True, **result)
    return dict(changed=False, checked=True, msg=message, **result)


def main():
    argument_spec = misskey_db.db_argument_spec()
    argument_spec.update(
        line=dict(type="str", default="postgresql", choices=["postgresql", "v10"]),
        ca_bundle=dict(type="path"),
        fetch_ca_bundle=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        connect_to=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    misskey_db.run_module(module, check, needs=[("boto3", HAS_BOTO3)], checked=False)


if __name__ == "__main__":
    main()
