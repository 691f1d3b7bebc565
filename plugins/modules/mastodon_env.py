#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: mastodon_env
short_description: Set variables in Mastodon's .env.production, keeping every other line
version_added: 0.1.0
description:
  - Sets variables in a dotenv file such as Mastodon's C(.env.production).
  - An existing assignment is updated in place (keeping C(export) and an inline comment); a
    commented-out sample assignment such as C(# S3_BUCKET=) is replaced in place instead of being
    duplicated; any other variable is appended at the end below one marker comment.
  - Every other line, comment and line ending is kept byte for byte.
  - The diff masks the value of every variable whose name contains C(SECRET), C(PASS), C(KEY),
    C(TOKEN) or C(CREDENTIAL) (C(AWS_SECRET_ACCESS_KEY), C(AWS_ACCESS_KEY_ID), C(DB_PASS), ...),
    the password inside any URL (C(DATABASE_URL=postgres://u:********@host), C(redis://:********@)),
    every value spanning several lines, and every line that is not a plain assignment or a comment.
  - The file is read with Ruby dotenv's rules, as Mastodon reads it (an unquoted C(#) starts a
    comment, C(export) prefixes, multi-line quoted values); an edit that dotenv would read back
    differently (for example below an unterminated quote) fails before anything is written.
options:
  path:
    description:
      - The dotenv file. It must exist; the module never creates it.
      - It must be a regular file, not a symbolic link (the module never follows a link, the
        directory belongs to the app user). The new content goes to a temporary file with an
        unpredictable name created exclusively next to it, then replaces it atomically.
    type: path
    required: true
  settings:
    description:
      - Variables to set. Booleans are written as C(true)/C(false).
      - Values are shown in the diff unless the name looks secret; put credentials in O(secret_settings).
    type: dict
    default: {}
  secret_settings:
    description:
      - Variables to set whose values must never be shown (access key, secret key).
      - Merged with O(settings); a name in both takes this value.
    type: dict
    default: {}
  backup:
    description:
      - Copy the file to a timestamped backup next to it before changing it.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.files
  - fediverse.object_storage.attributes
notes:
  - Docker Compose takes a value verbatim, quotes included; values made of letters, digits and
    C(_./:@,+=%-) are written without quotes.
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Point Mastodon at the bucket
  fediverse.object_storage.mastodon_env:
    path: /home/mastodon/live/.env.production
    settings:
      S3_ENABLED: true
      S3_BUCKET: example-media
      S3_ENDPOINT: https://ewr1.vultrobjects.com
      S3_ALIAS_HOST: s3.example.com
    secret_settings:
      AWS_ACCESS_KEY_ID: "{{ vultr_access_key }}"
      AWS_SECRET_ACCESS_KEY: "{{ vultr_secret_key }}"
"""

RETURN = r"""
changed_keys:
  description: Names of the variables whose line was changed or added (never their values).
  returned: always
  type: list
  elements: str
  sample: [S3_ENABLED, S3_BUCKET, AWS_SECRET_ACCESS_KEY]
backup_file:
  description: The backup made before the change.
  returned: when a backup was made
  type: str
  sample: /home/mastodon/live/.env.production.2345.2026-11-22@14:50:01~
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import finish_edit, read_for_edit  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.envfile import (  # noqa: E402
    EnvFileError,
    mask_secrets,
    update_env,
)

MISSING_HINT = "Is Mastodon installed there? Set the path of the live .env.production (mastodon_env_path)."


def handle_env(module):
    path = module.params["path"]
    settings = dict(module.params["settings"] or {})
    settings.update(module.params["secret_settings"] or {})
    before = read_for_edit(module, path, MISSING_HINT)
    try:
        after, changed_keys = update_env(before, settings)
    except EnvFileError as exc:
        module.fail_json(msg="%s: %s" % (path, to_native(exc)))
    result = dict(changed=after != before, changed_keys=changed_keys, path=path)
    if module._diff:
        result["diff"] = dict(
            before_header=path, after_header=path,
            before=mask_secrets(before), after=mask_secrets(after, changed_keys),
        )
    return finish_edit(module, path, before, after, result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            settings=dict(type="dict", default={}),
            secret_settings=dict(type="dict", default={}, no_log=True),
            backup=dict(type="bool", default=True),
        ),
        add_file_common_args=True,
        supports_check_mode=True,
    )
    module.exit_json(**handle_env(module))


if __name__ == "__main__":
    main()
