#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: misskey_meta
short_description: Set the object storage settings in the meta row of Misskey v11 and later
version_added: 0.1.0
description:
  - Misskey v11 and later (PostgreSQL) keep their object storage settings (what the admin UI sets)
    in the single row of the C(meta) table. This module sets them.
  - The columns differ between versions; the module reads C(information_schema) and sets only the
    columns that exist, reporting the others in RV(skipped_columns).
  - Misskey caches the meta row in memory, so restart it after a change.
  - Before the first change of a switch (O(state=present)), the values every object storage column had
    are saved in table C(fediverse_object_storage_meta_backup) of the same database; O(state=restored)
    puts them back exactly (rollback). The saved values are kept while the switch is in effect, so a
    second run does not overwrite them with the bucket's settings.
  - The region is never stored as NULL (Misskey 13.10 and later, with aws-sdk v3, then fail every
    upload with "Region is missing"); a port other than the scheme's default is stored in
    C(objectStorageEndpoint) as C(host:port), which is where Misskey's S3 client reads it.
extends_documentation_fragment:
  - fediverse.object_storage.misskey_db
  - fediverse.object_storage.attributes
options:
  state:
    description:
      - V(present) sets the object storage columns (saving the previous values first).
      - V(restored) puts back the values saved before the switch; when nothing was saved it only sets
        C(useObjectStorage) to false (with a warning). The other options are ignored.
    type: str
    choices: [present, restored]
    default: present
  use_object_storage:
    description: C(useObjectStorage).
    type: bool
    default: true
  bucket:
    description: C(objectStorageBucket). Required with O(state=present).
    type: str
  prefix:
    description: C(objectStoragePrefix).
    type: str
  base_url:
    description: C(objectStorageBaseUrl), the URL files are served from. Required with O(state=present).
    type: str
  endpoint:
    description:
      - The S3 endpoint as a Vultr cluster (C(ewr1)), a host or a URL. Misskey stores the host in
        C(objectStorageEndpoint); the scheme gives C(objectStorageUseSSL) unless O(use_ssl) is set,
        and a port in the URL gives C(objectStoragePort). Required with O(state=present).
    type: str
  region:
    description:
      - C(objectStorageRegion). When not given or empty, the Vultr cluster name of O(endpoint)
        (C(ewr1.vultrobjects.com) gives C(ewr1)), else C(us-east-1). Never NULL.
    type: str
  port:
    description: C(objectStoragePort); C(0) stores NULL (the scheme's default port). Left alone when not given.
    type: int
  use_ssl:
    description: C(objectStorageUseSSL), overriding the one derived from O(endpoint).
    type: bool
  use_proxy:
    description: C(objectStorageUseProxy) (when the column exists). Left alone when not given.
    type: bool
  set_public_read:
    description: C(objectStorageSetPublicRead) (when the column exists). Left alone when not given.
    type: bool
  s3_force_path_style:
    description: C(objectStorageS3ForcePathStyle) (when the column exists). Left alone when not given.
    type: bool
  access_key:
    description: C(objectStorageAccessKey). Required with O(state=present).
    type: str
  secret_key:
    description: C(objectStorageSecretKey). Required with O(state=present).
    type: str
requirements:
  - psycopg2
  - PyYAML (with O(config_file))
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Store Misskey drive files in the bucket
  fediverse.object_storage.misskey_meta:
    config_file: /home/misskey/misskey/.config/default.yml
    bucket: example-media
    prefix: misskey
    base_url: https://s3.example.com
    endpoint: ewr1
    port: 0
    set_public_read: false
    s3_force_path_style: true
    access_key: "{{ vultr_access_key }}"
    secret_key: "{{ vultr_secret_key }}"

- name: Put back the settings Misskey had before the switch
  fediverse.object_storage.misskey_meta:
    config_file: /home/misskey/misskey/.config/default.yml
    state: restored
"""

RETURN = r"""
changed_columns:
  description: The meta columns that were (or in check mode would be) updated; names only.
  returned: always
  type: list
  elements: str
  sample: [useObjectStorage, objectStorageBucket, objectStorageSecretKey]
skipped_columns:
  description: Wanted columns this Misskey version does not have.
  returned: always
  type: list
  elements: str
  sample: [objectStorageSetPublicRead]
backup:
  description:
    - V(saved) (the previous values were, or in check mode would be, saved before this change),
      V(kept) (a backup from before the switch exists and was kept), V(used) (O(state=restored)
      put it back) or V(none).
  returned: always
  type: str
  sample: saved
restored:
  description: With O(state=restored), whether saved values were put back.
  returned: when O(state=restored)
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import db as misskey_db  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.db import postgres  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import META_COLUMNS  # noqa: E402

REQUIRED_FOR_PRESENT = ("bucket", "base_url", "endpoint", "access_key", "secret_key")


def handle_meta(module):
    params = module.params
    conn = misskey_db.connect(misskey_db.connection_params_from(params))
    try:
        if params["state"] == "restored":
            result = misskey_db.restore_meta(conn, check_mode=module.check_mode)
        else:
            wanted = misskey_db.wanted_meta(**dict((option, params[option]) for _column, option in META_COLUMNS))
            result = misskey_db.apply_meta(conn, wanted, check_mode=module.check_mode)
    finally:
        conn.close()
    for warning in result.pop("warnings", []):
        module.warn(warning)
    diff = result.pop("diff")
    if module._diff:
        result["diff"] = diff
    return result


def main():
    argument_spec = misskey_db.db_argument_spec()
    argument_spec.update(misskey_db.drive_argument_spec())
    argument_spec.update(
        state=dict(type="str", default="present", choices=["present", "restored"]),
        use_object_storage=dict(type="bool", default=True),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_if=[("state", "present", REQUIRED_FOR_PRESENT)],
        supports_check_mode=True,
    )
    misskey_db.run_module(module, handle_meta,
                          needs=[("psycopg2", postgres.HAS_PSYCOPG2, postgres.PSYCOPG2_IMPORT_ERROR)])


if __name__ == "__main__":
    main()
