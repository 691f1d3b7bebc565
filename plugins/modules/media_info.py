#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: media_info
short_description: Read what a Mastodon database says about its media
version_added: 0.1.0
description:
  - Connects to Mastodon's PostgreSQL database (read-only) and returns how many rows own media, per
    kind, and a sample of the objects they reference (key and Content-Type), as
    M(fediverse.object_storage.media_copy) would copy them.
  - Used by C(playbooks/migrate.yml) as a pre-flight check (the database is reachable with the given
    settings) and to pick the media URLs it fetches through the proxy after the switch.
  - Changes nothing.
options:
  scope:
    description: Which media to look at, as in M(fediverse.object_storage.media_copy).
    type: list
    elements: str
    choices: [cache, local]
    default: [cache]
  sample_size:
    description: How many objects to return in RV(sample) (the first ones in id order).
    type: int
    default: 5
  key_prefix:
    description: Mastodon's C(S3_KEY_PREFIX), put in front of the sample's keys.
    type: str
    default: ""
extends_documentation_fragment:
  - fediverse.object_storage.mastodon_db
  - fediverse.object_storage.attributes.read_only
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Check that the Mastodon database is reachable and count its cached media
  fediverse.object_storage.media_info:
    env_file: /home/mastodon/live/.env.production
  register: media
"""

RETURN = r"""
rows:
  description: Rows owning media, per kind (C(media_attachments/files), C(accounts/avatars), ...).
  returned: always
  type: dict
  sample: {"media_attachments/files": 1200, "accounts/avatars": 310}
total_rows:
  description: The sum of RV(rows).
  returned: always
  type: int
sample:
  description: Up to O(sample_size) objects, each with C(key) (with O(key_prefix)), C(content_type) and C(acl).
  returned: always
  type: list
  elements: dict
database:
  description: Where the module connected (C(user@host:port/dbname)), never the password.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import join_key


def main():
    module = AnsibleModule(
        argument_spec=dict(
            db.db_argument_spec(),
            scope=dict(type="list", elements="str", choices=["cache", "local"], default=["cache"]),
            sample_size=dict(type="int", default=5),
            key_prefix=dict(type="str", default="", no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        params = db.connection_params_from(p)
        conn = db.connect(**params)
    except (db.DBError, OSError) as exc:
        module.fail_json(msg=str(exc))
    try:
        rows = db.count_rows(conn, scope=tuple(p["scope"]))
        sample = []
        if p["sample_size"] > 0:
            for row in db.iter_rows_objects(conn, scope=tuple(p["scope"])):
                for obj in row.objects:
                    sample.append(dict(kind=obj.kind, key=join_key(p["key_prefix"], obj.key),
                                       content_type=obj.content_type, acl=obj.acl))
                if len(sample) >= p["sample_size"]:
                    break
    except db.DBError as exc:
        module.fail_json(msg=str(exc))
    finally:
        conn.close()
    module.exit_json(changed=False, rows=rows, total_rows=sum(rows.values()), sample=sample[:p["sample_size"]],
                     database=db.describe_target(params))


if __name__ == "__main__":
    main()
