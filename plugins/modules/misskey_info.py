#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: misskey_info
short_description: Tell which Misskey line a server runs (v10 MongoDB or v11+ PostgreSQL)
version_added: 0.1.0
description:
  - Reads the version from C(package.json) in the Misskey directory, or takes O(version), and says
    where its object storage settings live, the C(drive:) section of C(.config/default.yml) for
    v10 (MongoDB, including the meisskey fork C(10.102.x-m544)), the C(meta) table for v11 and later
    (11.x-13.x and CalVer 2023.x or later).
  - Fails with an explanation on a version it cannot place, so that nothing is changed.
options:
  path:
    description:
      - The Misskey directory (holding C(package.json) and C(.config/default.yml)).
      - Required unless O(version) is given.
    type: path
  version:
    description:
      - The version, when C(package.json) is not there or a fork numbers its versions differently.
    type: str
extends_documentation_fragment:
  - fediverse.object_storage.attributes.read_only
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Find the Misskey version
  fediverse.object_storage.misskey_info:
    path: /home/misskey/misskey
  register: misskey
"""

RETURN = r"""
version:
  description: The version string.
  returned: always
  type: str
  sample: 12.117.1
major:
  description: The major version (the year for CalVer versions).
  returned: always
  type: int
  sample: 12
line:
  description: C(v10) (settings in default.yml) or C(postgresql) (settings in the meta table).
  returned: always
  type: str
  sample: postgresql
uses_postgresql:
  description: Whether the storage settings are in PostgreSQL.
  returned: always
  type: bool
  sample: true
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import read_config  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (  # noqa: E402
    MisskeyConfigError,
    detect_version,
    parse_version,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.db import run_module  # noqa: E402


def handle_version(module):
    if module.params["version"]:
        return parse_version(module.params["version"])
    package = os.path.join(module.params["path"], "package.json")
    try:
        text = read_config(package)
    except FileNotFoundError:
        raise MisskeyConfigError("%s does not exist: is Misskey installed in %s? Set the Misskey directory "
                                 "(misskey_dir) or the version (misskey_version)" % (package, module.params["path"])) from None
    except OSError as exc:
        raise MisskeyConfigError("cannot read %s: %s" % (package, exc.strerror or exc)) from None
    return detect_version(text, source=package)


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path"), version=dict(type="str")),
        required_one_of=[("path", "version")],
        supports_check_mode=True,
    )
    run_module(module, lambda module: dict(changed=False, **handle_version(module).as_dict()))


if __name__ == "__main__":
    main()
