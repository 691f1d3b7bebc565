#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: misskey_drive_move
short_description: Move the drive files Misskey (v11 and later) keeps on local disk into its bucket
version_added: 0.2.0
description:
  - Misskey only sends new uploads to object storage. This module moves the existing local files of
    local users (C(drive_file) rows with C(storedInternal), not C(isLink), C(userHost) NULL; cached
    copies of remote files are left to Misskey's own cache cleaning) into the bucket stored in the
    C(meta) row, so run it after the switch (M(fediverse.object_storage.misskey_meta)).
  - Each object (the original, and each variant whose URL is set) goes to C(PREFIX/<old file name>)
    with the headers Misskey itself sets (Content-Type, Cache-Control, Content-Disposition, ACL),
    is checked (size, MD5, the original against C(drive_file.md5)), and only then is the row
    flipped in its own transaction, guarded by its old values - C(accessKey) (equal to the object
    key, as Misskey deletes objects by it), the URLs, C(storedInternal) - together with exact copies
    of its URLs in users' avatars and banners, emojis, the meta row, decorations, roles,
    announcements and ads.
  - Every old value is saved first in table C(fediverse_object_storage_drive_backup); per-file state
    in C(fediverse_object_storage_drive_journal). A run stopped at any point continues where it
    stopped. Local files are never changed or deleted.
  - O(state=rolled_back) puts back every saved value that still holds what the move wrote.
  - Old C(/files/KEY) URLs answer 404 from Misskey after the flip; the nginx location of the
    misskey role's C(drive_move) entry point redirects them to the objects.
  - Restart Misskey afterwards (it caches emojis and the meta row).
extends_documentation_fragment:
  - fediverse.object_storage.misskey_db
options:
  state:
    description: V(moved) moves the files; V(rolled_back) restores the saved values.
    type: str
    choices: [moved, rolled_back]
    default: moved
  files_dir:
    description: Misskey's local file directory (C(MISSKEY_DIR/files)). Required with O(state=moved).
    type: path
  instance_url:
    description: Misskey's C(url); read from O(config_file) when not given.
    type: str
  batch_size:
    description: Rows read per query (keyset by id).
    type: int
    default: 100
  limit:
    description: Move at most this many rows in this run (the rest in the next).
    type: int
  sample_size:
    description: How many row changes RV(sample) shows.
    type: int
    default: 5
  drop_backup:
    description: With O(state=rolled_back), remove the backup and journal tables once everything is restored.
    type: bool
    default: false
  planned_base_url:
    description:
      - The C(objectStorageBaseUrl) the switch is going to store. Only used in check mode while the C(meta)
        row does not point at a bucket yet (C(migrate.yml --check)), so that the counts and the sample can
        be shown; a real run always takes the stored settings and fails before the switch.
    type: str
  planned_prefix:
    description: The C(objectStoragePrefix) the switch is going to store (with O(planned_base_url)).
    type: str
  ca_bundle:
    description: CA certificates for the endpoint's TLS (private endpoints and tests).
    type: path
  validate_certs:
    description: Check the endpoint's TLS certificate.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Counts the rows and missing files and shows a sample of the row changes; writes nothing.
  diff_mode:
    support: full
    description: The counts in the diff's header and the sample of row changes as before/after (C(drive_file) columns only).
requirements:
  - boto3 (with O(state=moved))
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Move Misskey's local files into the bucket
  fediverse.object_storage.misskey_drive_move:
    config_file: /home/misskey/misskey/.config/default.yml
    files_dir: /home/misskey/misskey/files
"""

RETURN = r"""
stats:
  description: Counts - candidates, moved, objects_uploaded, objects_present, dependents_rewritten, missing,
    changed_meanwhile, refused.
  returned: with O(state=moved)
  type: dict
missing:
  description: Rows left untouched because a local file is missing (id and file names).
  returned: with O(state=moved)
  type: list
  elements: dict
refused:
  description: Rows that do not look like local files (id and reason), left untouched.
  returned: with O(state=moved)
  type: list
  elements: dict
sample:
  description: Some row changes (id, objects, before, after).
  returned: with O(state=moved)
  type: list
  elements: dict
base_url:
  description: C(objectStorageBaseUrl) of the meta row (where the moved files are served from).
  returned: with O(state=moved)
  type: str
prefix:
  description: C(objectStoragePrefix) of the meta row.
  returned: with O(state=moved)
  type: str
restored:
  description: Values put back.
  returned: with O(state=rolled_back)
  type: int
not_restored:
  description: Saved values not put back because the column changed since the move.
  returned: with O(state=rolled_back)
  type: int
still_moved:
  description:
    - Drive files that still carry a key the move wrote once the rollback is done (in check mode, once it
      would be done), i.e. rows Misskey still serves from the bucket. Old C(/files/KEY) URLs need the
      nginx fallback (misskey role's C(drive_move) entry point) while this is not 0; at 0 the
      C(files_fallback_remove) entry point removes it.
  returned: with O(state=rolled_back)
  type: int
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils import misskey_db, misskey_storage  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey_config import (  # noqa: E402
    MisskeyConfigError,
    _load,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey_drive import (  # noqa: E402
    DriveMoveError,
    move_diff,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey_drive_engine import (  # noqa: E402
    DriveMover,
    rollback,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import (  # noqa: E402
    HAS_BOTO3,
    S3ConfigError,
    s3_client,
)


def instance_url(params):
    if params["instance_url"]:
        return params["instance_url"].rstrip("/")
    if not params["config_file"]:
        raise MisskeyConfigError("give instance_url or config_file (its url:)")
    with open(params["config_file"], "rb") as handle:
        url = _load(handle.read().decode("utf-8", "replace"), params["config_file"]).get("url")
    if not url:
        raise MisskeyConfigError("%s has no url:" % params["config_file"])
    return str(url).rstrip("/")


def storage(params, conn, check_mode):
    """(settings, S3 client) of the meta row; in check mode before the switch, the planned ones and no client."""
    _meta_id, stored = misskey_db.read_storage(conn)
    try:
        settings = misskey_storage.settings_from_meta(stored)
        misskey_storage.validate(settings)
    except MisskeyConfigError as exc:
        if not (check_mode and params["planned_base_url"]):
            raise MisskeyConfigError("%s: switch Misskey to the bucket first (the misskey role)" % exc) from None
        # A check run before the switch (migrate.yml --check): the check mode reads no object.
        return dict(bucket=None, prefix=params["planned_prefix"] or "", base_url=params["planned_base_url"],
                    set_public_read=False), None
    client = s3_client(settings["endpoint_url"], access_key=settings["access_key"],
                       secret_key=settings["secret_key"], region=settings["region"],
                       addressing_style="path" if settings["path_style"] else "virtual",
                       ca_bundle=params["ca_bundle"], validate_certs=params["validate_certs"])
    return settings, client


def run(module):
    params = module.params
    conn = misskey_db.connect(misskey_db.connection_params_from(params))
    try:
        if params["state"] == "rolled_back":
            return rollback(conn, check_mode=module.check_mode, drop_backup=params["drop_backup"])
        if not params["files_dir"]:
            raise MisskeyConfigError("files_dir is required to move files")
        settings, client = storage(params, conn, module.check_mode)
        mover = DriveMover(conn, client, settings, params["files_dir"], instance_url(params),
                           check_mode=module.check_mode, batch_size=params["batch_size"], limit=params["limit"],
                           sample_size=params["sample_size"])
        result = mover.run()
    finally:
        conn.close()
    if module._diff:
        result["diff"] = move_diff(result, module.check_mode)
    return result


def main():
    argument_spec = misskey_db.db_argument_spec()
    argument_spec.update(
        state=dict(type="str", default="moved", choices=["moved", "rolled_back"]),
        files_dir=dict(type="path"),
        instance_url=dict(type="str"),
        batch_size=dict(type="int", default=100),
        limit=dict(type="int"),
        sample_size=dict(type="int", default=5),
        drop_backup=dict(type="bool", default=False),
        planned_base_url=dict(type="str"),
        planned_prefix=dict(type="str"),
        ca_bundle=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not HAS_BOTO3 and module.params["state"] == "moved":
        module.fail_json(msg=missing_required_lib("boto3"))
    try:
        result = run(module)
    except (MisskeyConfigError, DriveMoveError, S3ConfigError, OSError) as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
