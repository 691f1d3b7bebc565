#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: misskey_config
short_description: Point a Misskey v10 server's drive at an S3 bucket in .config/default.yml
version_added: 0.1.0
description:
  - Sets the top-level C(drive:) section of a Misskey v10 (MongoDB, also meisskey) C(.config/default.yml)
    to storage C(minio) with C(bucket), C(prefix), C(baseUrl) and C(config:) (C(endPoint),
    C(useSSL), C(accessKey), C(secretKey), C(setPublicRead), C(s3ForcePathStyle), optionally
    C(region), C(port), C(useProxy)).
  - Only the lines of the C(drive:) block change; every other line and comment is kept. The
    result is checked by loading it back before it is written.
  - For Misskey v11 and later use M(fediverse.object_storage.misskey_meta).
options:
  path:
    description:
      - The v10 C(.config/default.yml). It must be a regular file, not a symbolic link (never
        followed); it is replaced atomically through a temporary file with an unpredictable
        name created exclusively next to it.
    type: path
    required: true
  bucket:
    description: The bucket.
    type: str
    required: true
  prefix:
    description: The key prefix (Misskey v10 needs one).
    type: str
    required: true
  base_url:
    description: The URL files are served from, e.g. C(https://s3.example.com) or C(https://example.com).
    type: str
    required: true
  endpoint:
    description:
      - The S3 endpoint as a Vultr cluster (C(ewr1)), a host or a URL. The host becomes C(endPoint),
        the scheme C(useSSL), an explicit port C(port).
    type: str
    required: true
  region:
    description: The region, written only when given.
    type: str
  port:
    description: The port, written only when given (or when O(endpoint) has one).
    type: int
  use_ssl:
    description: Overrides the C(useSSL) derived from O(endpoint).
    type: bool
  use_proxy:
    description: C(useProxy), written only when given.
    type: bool
  set_public_read:
    description: C(setPublicRead) (upload objects with a public-read ACL).
    type: bool
    default: false
  s3_force_path_style:
    description: C(s3ForcePathStyle).
    type: bool
    default: true
  access_key:
    description: The access key.
    type: str
    required: true
  secret_key:
    description: The secret key.
    type: str
    required: true
  backup:
    description: Copy the file to a timestamped backup next to it before changing it.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.files
  - fediverse.object_storage.attributes
requirements:
  - PyYAML (to check the result)
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Store Misskey v10 drive files in the bucket
  fediverse.object_storage.misskey_config:
    path: /home/misskey/misskey/.config/default.yml
    bucket: example-media
    prefix: storage
    base_url: https://example.com
    endpoint: ewr1
    access_key: "{{ vultr_access_key }}"
    secret_key: "{{ vultr_secret_key }}"
"""

RETURN = r"""
backup_file:
  description: The backup made before the change.
  returned: when a backup was made
  type: str
  sample: /home/misskey/misskey/.config/default.yml.2345.2026-11-22@14:50:01~
drive:
  description: The drive settings written, secrets masked.
  returned: always
  type: dict
  sample: {storage: minio, bucket: example-media, prefix: storage, baseUrl: "https://example.com"}
"""

import copy  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import finish_edit, read_for_edit  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (  # noqa: E402
    HAS_YAML,
    MASK,
    drive_settings,
    mask_yaml_secrets,
    replace_drive,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.db import (  # noqa: E402
    drive_argument_spec,
    run_module,
)

REQUIRED = ("bucket", "prefix", "base_url", "endpoint", "access_key", "secret_key")


def masked_drive(drive):
    shown = copy.deepcopy(drive)
    for key in ("accessKey", "secretKey"):
        shown["config"][key] = MASK
    return shown


def handle_drive(module):
    params = module.params
    path = params["path"]
    before = read_for_edit(module, path, "Is Misskey installed there?")
    drive = drive_settings(
        bucket=params["bucket"], prefix=params["prefix"], base_url=params["base_url"], endpoint=params["endpoint"],
        access_key=params["access_key"], secret_key=params["secret_key"], region=params["region"],
        port=params["port"], use_ssl=params["use_ssl"], use_proxy=params["use_proxy"],
        set_public_read=params["set_public_read"], s3_force_path_style=params["s3_force_path_style"])
    after, changed = replace_drive(before, drive, source=path)
    result = dict(changed=changed, drive=masked_drive(drive), path=path)
    if module._diff:
        result["diff"] = dict(before_header=path, after_header=path,
                              before=mask_yaml_secrets(before), after=mask_yaml_secrets(after))
    return finish_edit(module, path, before, after, result)


def main():
    argument_spec = drive_argument_spec(required=REQUIRED, set_public_read=False, s3_force_path_style=True)
    argument_spec.update(
        path=dict(type="path", required=True),
        backup=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, add_file_common_args=True, supports_check_mode=True)
    run_module(module, handle_drive, needs=[("PyYAML", HAS_YAML)])


if __name__ == "__main__":
    main()
