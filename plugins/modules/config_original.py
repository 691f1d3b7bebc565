#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: config_original
short_description: Keep the pre-switch original of an app's config file, and put it back
version_added: 0.1.0
description:
  - With O(state=kept), copies the app's config file (Mastodon's C(.env.production), Misskey v10's
    C(.config/default.yml)) to its original next to it, with the file's owner, group and mode.
  - With O(state=restored), writes the content of the original back over the config file (the
    rollback of the migrate role).
  - The directory belongs to the app's user, who can plant links and swap names between two steps.
    Every file is opened once, relative to a descriptor of the directory, without following a link;
    a link or anything but a regular file (a FIFO, a directory) at the config file's or the
    original's name is refused and nothing is written. Writes go to an exclusive temporary file
    renamed over the target (module_utils/fs/safe_fs.py).
  - The restored file keeps the owner, group and mode of the file it replaces, so the app can still
    read it. When the config file is absent, it gets the owner and group of the directory (the app's
    user) and the mode of the original.
options:
  path:
    description:
      - The config file.
    type: path
    required: true
  original:
    description:
      - The base name of the original, in the directory of O(path).
      - Default the name of O(path) followed by C(.fediverse-object-storage.orig).
    type: str
  state:
    description:
      - V(kept) copies O(path) to the original; V(restored) copies the original back over O(path).
      - With V(restored) and no original, nothing is done (RV(found) is false).
    type: str
    choices: [kept, restored]
    required: true
  force:
    description:
      - With O(state=kept), whether an existing original is replaced (false keeps the first one).
    type: bool
    default: true
  unless_set:
    description:
      - With O(state=restored) ignored. With O(state=kept) and O(format=dotenv), nothing is kept when
        the config file already sets every one of these variables to these values (read with
        dotenv's rules, as Mastodon reads them). Such a file already points at the bucket, so it is
        not the original (a re-run).
    type: dict
  backup:
    description:
      - With O(state=restored), whether the current config file is backed up first (Ansible's
        C(<path>.<pid>.<date>~) name, owner, group and mode kept).
    type: bool
    default: true
  format:
    description:
      - How the file is read to mask secrets in the diff; V(dotenv) for C(.env.production)
        (as M(fediverse.object_storage.mastodon_env) masks it), V(yaml) for C(default.yml) (as
        M(fediverse.object_storage.misskey_config)).
    type: str
    choices: [dotenv, yaml]
    default: dotenv
extends_documentation_fragment:
  - fediverse.object_storage.attributes
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Keep the pre-switch .env.production
  fediverse.object_storage.config_original:
    path: /home/mastodon/live/.env.production
    state: kept

- name: Put it back (rollback)
  fediverse.object_storage.config_original:
    path: /home/mastodon/live/.env.production
    state: restored
"""

RETURN = r"""
path:
  description: The config file.
  returned: always
  type: str
  sample: /home/mastodon/live/.env.production
original:
  description: The original's path.
  returned: always
  type: str
  sample: /home/mastodon/live/.env.production.fediverse-object-storage.orig
found:
  description: With O(state=restored), whether there was an original to restore.
  returned: always
  type: bool
  sample: true
backup_file:
  description: The backup of the config file made before it was restored.
  returned: when a backup was made
  type: str
  sample: /home/mastodon/live/.env.production.2345.2026-11-22@14:50:01~
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import (  # noqa: E402
    AtomicWriteError,
    keep_original,
    restore_original,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.envfile import (  # noqa: E402
    EnvFileError,
    mask_secrets,
    read_env,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import mask_yaml_secrets  # noqa: E402


def _text(data):
    return "" if data is None else data.decode("utf-8", "replace")


def _already_set(params):
    """The ``unless`` test of keep_original for O(unless_set): every variable already has its value."""
    wanted = params["unless_set"]
    if not wanted or params["format"] != "dotenv":
        return None

    def test(data):
        try:
            current = read_env(_text(data))
        except EnvFileError:
            return False
        return all(current.get(key) == ("" if value is None else str(value)) for key, value in wanted.items())

    return test


def handle(module):
    params = module.params
    path = params["path"]
    if params["state"] == "kept":
        changed, original = keep_original(path, params["original"], force=params["force"],
                                          check_mode=module.check_mode, unless=_already_set(params))
        return dict(changed=changed, path=path, original=original, found=True)
    done = restore_original(path, params["original"], backup=params["backup"], check_mode=module.check_mode)
    result = dict(changed=done["changed"], path=done["path"], original=done["original"], found=done["found"])
    if "backup_file" in done:
        result["backup_file"] = done["backup_file"]
    if module._diff and done["changed"]:
        mask = mask_secrets if params["format"] == "dotenv" else mask_yaml_secrets
        result["diff"] = dict(before_header=done["path"], after_header=done["path"],
                              before=mask(_text(done["before"])), after=mask(_text(done["after"])))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            original=dict(type="str"),
            state=dict(type="str", required=True, choices=["kept", "restored"]),
            force=dict(type="bool", default=True),
            backup=dict(type="bool", default=True),
            unless_set=dict(type="dict"),
            format=dict(type="str", default="dotenv", choices=["dotenv", "yaml"]),
        ),
        supports_check_mode=True,
    )
    try:
        result = handle(module)
    except AtomicWriteError as exc:
        module.fail_json(msg="%s: nothing was changed" % (exc.strerror or exc))
    except OSError as exc:
        module.fail_json(msg="cannot %s %s: %s; nothing was changed" % (
            "keep the original of" if module.params["state"] == "kept" else "restore",
            module.params["path"], exc.strerror or exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
