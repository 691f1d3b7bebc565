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
  - Reads the package name too and tells Misskey from its forks (Sharkey, CherryPick with its
    C(basedMisskeyVersion), meisskey); refuses with an explanation the forks whose version numbering or
    tables are not Misskey's (Firefish, Calckey, Iceshrimp, FoundKey) and unknown package names.
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
fork:
  description: What C(package.json) names - C(Misskey), C(Sharkey), C(CherryPick), C(meisskey), or
    C(Misskey (version given)) with O(version).
  returned: always
  type: str
  sample: Sharkey
  version_added: 0.2.0
fork_version:
  description: The fork's own version as C(package.json) says it.
  returned: always
  type: str
  sample: 2024.3.1
  version_added: 0.2.0
upstream_version:
  description: The Misskey version the fork is based on (Misskey itself - its version; CherryPick - its
    C(basedMisskeyVersion)); null for Sharkey, whose CalVer is its own (its tables and uploads are read from
    its own code).
  returned: always
  type: str
  version_added: 0.2.0
upload_headers:
  description: The generation of upload headers of the version (option
    O(fediverse.object_storage.misskey_drive_move#module:upload_headers)); null for v10.
  returned: always
  type: str
  sample: named
  version_added: 0.2.0
upload_headers_source:
  description: Which upstream code the upload headers were read from.
  returned: always
  type: str
  version_added: 0.2.0
fork_note:
  description: What is special about the fork (empty for Misskey).
  returned: always
  type: str
  version_added: 0.2.0
uses_postgresql:
  description: Whether the storage settings are in PostgreSQL.
  returned: always
  type: bool
  sample: true
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import read_config  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import MisskeyConfigError  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.fork import detect, from_version  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.db import run_module  # noqa: E402


def handle_version(module):
    if module.params["version"]:
        return from_version(module.params["version"])
    package = os.path.join(module.params["path"], "package.json")
    try:
        text = read_config(package)
    except FileNotFoundError:
        raise MisskeyConfigError("%s does not exist: is Misskey installed in %s? Set the Misskey directory "
                                 "(misskey_dir) or the version (misskey_version)" % (package, module.params["path"])) from None
    except OSError as exc:
        raise MisskeyConfigError("cannot read %s: %s" % (package, exc.strerror or exc)) from None
    return detect(text, source=package)


def main():
    module = AnsibleModule(
        argument_spec=dict(path=dict(type="path"), version=dict(type="str")),
        required_one_of=[("path", "version")],
        supports_check_mode=True,
    )
    run_module(module, lambda module: dict(changed=False, **handle_version(module).as_dict()))


if __name__ == "__main__":
    main()
