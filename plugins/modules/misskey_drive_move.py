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
version_added: 0.1.0
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
  - Local files are read through C(files/) opened once (a symbolic link on its path is followed only when
    root alone can change it), each file opened once, never through a symbolic link and never blocking. A row
    whose file is a symbolic link, a FIFO or anything but a regular file is left untouched and listed in
    RV(unsafe) with the reason; the other rows are moved.
  - Every old value is saved first in table C(fediverse_object_storage_drive_backup); per-file state
    in C(fediverse_object_storage_drive_journal). A run stopped at any point continues where it
    stopped. The move never changes or deletes local files.
  - O(state=purged), a separate step after the soak period (O(soak_days) after each row's flip),
    deletes the local files of a moved row only when the row, locked, still holds every value the move
    wrote, each object answers HEAD with the file's size (and MD5 for a single-part upload), and each
    name is a regular file (opened without following links, its inode checked again just before the
    unlink). Everything else stays and is listed with its reason.
  - O(state=rolled_back) puts back every saved value that still holds what the move wrote. Files a
    purge deleted are first written back from their objects, each under a temporary name, checked (size,
    and MD5 for a single-part upload), given the owner and group of O(files_dir) and the permission bits
    of its siblings (never setuid, setgid, sticky or executable), then linked into place, never over an
    existing name; a run killed mid-file leaves no partial file under a drive file's name, and the next run
    removes the temporary files it left. A missing object makes it fail before anything changes, unless
    O(skip_unrestorable).
  - Old C(/files/KEY) URLs answer 404 from Misskey after the flip; the nginx location of the
    misskey role's C(drive_move) entry point redirects them to the objects.
  - Restart Misskey afterwards (it caches emojis and the meta row).
extends_documentation_fragment:
  - fediverse.object_storage.misskey_db
options:
  state:
    description: V(moved) moves the files; V(purged) deletes the local copies after the soak period;
      V(rolled_back) writes purged files back and restores the saved values.
    type: str
    choices: [moved, purged, rolled_back]
    default: moved
  files_dir:
    description:
      - Misskey's local file directory (C(MISSKEY_DIR/files)), not a symbolic link. Required with
        O(state=moved) and O(state=purged), and with O(state=rolled_back) after a purge.
    type: path
  soak_days:
    description: With O(state=purged), how many days after its flip a row's local files may be deleted (at least 1).
    type: int
    default: 14
  skip_unrestorable:
    description:
      - With O(state=rolled_back), roll back the other rows when purged files cannot be written back
        (object missing); those rows keep pointing at the bucket and are listed in RV(unrestorable).
    type: bool
    default: false
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
  upload_headers:
    description:
      - Whose upload code the object headers follow (what C(DriveService.upload) of the version sets).
        C(v12) (Misskey 11.x-13.8.x; the file names as stored, no C(Content-Disposition) on thumbnails),
        C(13.9) (13.9.0-13.14.1; names corrected with C(correctFilename), none on thumbnails), C(named)
        (13.14.2 and later, CalVer, Sharkey; thumbnails C(inline; filename="<name>.thumbnail.<ext>")).
      - When not given, read from C(package.json) in the Misskey directory holding O(config_file)
        (the fork and version found there; a fork that cannot be placed is refused).
    type: str
    choices: [v12, '13.9', named]
    version_added: 0.2.0
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
    description: Counts the rows and missing files and shows a sample of the row changes (the files a purge
      would delete, the files a rollback would write back); writes and deletes nothing.
  diff_mode:
    support: full
    description: The counts in the diff's header and the sample of row changes as before/after (C(drive_file) columns only).
requirements:
  - boto3 (with O(state=moved) and O(state=purged), and with O(state=rolled_back) after a purge)
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Move Misskey's local files into the bucket
  fediverse.object_storage.misskey_drive_move:
    config_file: /home/misskey/misskey/.config/default.yml
    files_dir: /home/misskey/misskey/files

- name: Two weeks later, delete the local copies of the moved files
  fediverse.object_storage.misskey_drive_move:
    config_file: /home/misskey/misskey/.config/default.yml
    files_dir: /home/misskey/misskey/files
    state: purged
"""

RETURN = r"""
stats:
  description: Counts - candidates, moved, objects_uploaded, objects_present, dependents_rewritten, missing,
    changed_meanwhile, refused, unsafe.
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
unsafe:
  description:
    - Rows left untouched because a local file is refused for safety (up to 50; id, files, reason) - a symbolic
      link (never followed), a FIFO, a device, a socket or a directory where a drive file should be. The other rows
      are moved; move or replace the file and run again.
  returned: with O(state=moved)
  type: list
  elements: dict
  sample: [{"id": "9k00000001", "files": ["0b1e4c1e-6ad4-4b57-9d0a-3f3e5c1b2a11"],
            "reason": "files/0b1e4c1e-6ad4-4b57-9d0a-3f3e5c1b2a11 is a symbolic link (not followed)"}]
sample:
  description: Some row changes (id, objects, before, after); with O(state=purged) the files deleted (id, files).
  returned: with O(state=moved) or O(state=purged)
  type: list
  elements: dict
upload_headers:
  description: The generation of upload headers used (see O(upload_headers)).
  returned: with O(state=moved)
  type: str
  sample: named
url_columns:
  description:
    - C(rewritten) - the columns holding drive file URLs that the move rewrites in this database
      (C(table.column)); C(left) - the URL columns it leaves, each with C(column) and C(why) (left on
      purpose, or not in this database's version or fork).
  returned: with O(state=moved)
  type: dict
  sample: {"rewritten": ["drive_file.url", "user.avatarUrl", "user.backgroundUrl"],
           "left": [{"column": "drive_file.src", "why": "the URL a file was uploaded from"}]}
base_url:
  description: C(objectStorageBaseUrl) of the meta row (where the moved files are served from).
  returned: with O(state=moved)
  type: str
prefix:
  description: C(objectStoragePrefix) of the meta row.
  returned: with O(state=moved)
  type: str
purge_stats:
  description: Counts - due (rows past the soak), purged (rows whose files are gone), files_deleted, bytes_freed,
    kept, soaking (rows still in the soak period).
  returned: with O(state=purged)
  type: dict
kept:
  description: Rows past the soak whose files stay (id, files, reason).
  returned: with O(state=purged)
  type: list
  elements: dict
next_due:
  description: When the next row still soaking is due (ISO 8601), or null.
  returned: with O(state=purged)
  type: str
written_back:
  description: Purged files written back from their objects before the rows were restored.
  returned: with O(state=rolled_back)
  type: int
bytes_written_back:
  description: Their size in bytes.
  returned: with O(state=rolled_back) when files were written back
  type: int
present_meanwhile:
  description: Purged names that reappeared while being written back (left as they were, never overwritten).
  returned: with O(state=rolled_back) when files were written back
  type: int
temporaries_removed:
  description: Temporary files a killed earlier rollback left in O(files_dir) (root's, named C(.NAME.fos-RANDOM.tmp)), removed.
  returned: with O(state=rolled_back) when O(files_dir) could be opened
  type: int
unrestorable:
  description: With O(skip_unrestorable), rows left pointing at the bucket because an object is missing (id, files, reason).
  returned: with O(state=rolled_back)
  type: list
  elements: dict
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

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import db as misskey_db  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import drive_restore as misskey_drive_restore  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import fork as misskey_fork  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import storage as misskey_storage  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import read_config  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (  # noqa: E402
    MisskeyConfigError,
    parse_yaml,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import (  # noqa: E402
    DriveMoveError,
    move_diff,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_engine import (  # noqa: E402
    DriveMover,
    rollback,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import Purger  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import HAS_BOTO3, s3_client  # noqa: E402


def instance_url(params):
    if params["instance_url"]:
        return params["instance_url"].rstrip("/")
    if not params["config_file"]:
        raise MisskeyConfigError("give instance_url or config_file (its url:)")
    url = parse_yaml(read_config(params["config_file"]), params["config_file"]).get("url")
    if not url:
        raise MisskeyConfigError("%s has no url:" % params["config_file"])
    return str(url).rstrip("/")


def upload_headers(params):
    """The generation of upload headers: given, or from package.json in the Misskey directory."""
    if params["upload_headers"]:
        return params["upload_headers"]
    if not params["config_file"]:
        raise MisskeyConfigError("give upload_headers or config_file (package.json is read next to its .config/)")
    directory = os.path.dirname(os.path.dirname(os.path.abspath(params["config_file"])))
    package = os.path.join(directory, "package.json")
    try:
        text = read_config(package)
    except OSError as exc:
        raise MisskeyConfigError("cannot read %s to tell the version's upload headers (%s): give upload_headers"
                                 % (package, exc.strerror or exc)) from None
    software = misskey_fork.detect(text, source=package)
    if not software.upload_headers:
        raise MisskeyConfigError("%s is %s: moving files needs Misskey v11 or later" % (package, software.describe()))
    return software.upload_headers


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
    if not HAS_BOTO3:
        raise DriveMoveError(missing_required_lib("boto3"))
    client = s3_client(settings["endpoint_url"], access_key=settings["access_key"],
                       secret_key=settings["secret_key"], region=settings["region"],
                       addressing_style="path" if settings["path_style"] else "virtual",
                       ca_bundle=params["ca_bundle"], validate_certs=params["validate_certs"])
    return settings, client


def roll_back(conn, params, check_mode):
    """Write purged files back (when there are any), then restore the saved values."""
    unrestorable, report = [], dict(written_back=0)
    files_dir = params["files_dir"]
    purged = misskey_drive_restore.purged_rows(conn)

    def bucket_client():
        settings, client = storage(params, conn, False)
        return client, settings["bucket"]

    # A purge refuses a linked files/, so without purged rows a link or an absent directory means no
    # file was ever deleted: the rows alone are restored (prepare's required).
    if files_dir:
        unrestorable, report = misskey_drive_restore.prepare(
            conn, bucket_client, files_dir, skip_unrestorable=params["skip_unrestorable"], check_mode=check_mode,
            required=bool(purged))
    elif purged:
        raise MisskeyConfigError("%d moved rows had their local files deleted by a purge: give files_dir so that "
                                 "rollback writes them back first (nothing was changed)" % purged)
    result = rollback(conn, check_mode=check_mode, drop_backup=params["drop_backup"],
                      exclude=[u["id"] for u in unrestorable])
    result.update(report, unrestorable=unrestorable)
    result["changed"] = bool(result["changed"] or report["written_back"] or report.get("temporaries_removed"))
    return result


def run(module):
    params = module.params
    if params["state"] == "purged" and (params["soak_days"] or 0) < 1:
        raise MisskeyConfigError("soak_days must be at least 1 (got %s)" % params["soak_days"])
    if params["state"] in ("moved", "purged") and not params["files_dir"]:
        raise MisskeyConfigError("files_dir is required with state=%s" % params["state"])
    conn = misskey_db.connect(misskey_db.connection_params_from(params))
    try:
        if params["state"] == "rolled_back":
            return roll_back(conn, params, module.check_mode)
        settings, client = storage(params, conn, module.check_mode and params["state"] == "moved")
        if params["state"] == "purged":
            result = Purger(conn, client, settings["bucket"], params["files_dir"], soak_days=params["soak_days"],
                            check_mode=module.check_mode, batch_size=params["batch_size"],
                            sample_size=params["sample_size"]).run()
            result["purge_stats"] = result.pop("stats")
            return result
        mover = DriveMover(conn, client, settings, params["files_dir"], instance_url(params),
                           check_mode=module.check_mode, batch_size=params["batch_size"], limit=params["limit"],
                           sample_size=params["sample_size"], upload_headers=upload_headers(params))
        result = mover.run()
    finally:
        conn.close()
    if module._diff:
        result["diff"] = move_diff(result, module.check_mode)
    return result


def main():
    argument_spec = misskey_db.db_argument_spec()
    argument_spec.update(
        state=dict(type="str", default="moved", choices=["moved", "purged", "rolled_back"]),
        files_dir=dict(type="path"),
        instance_url=dict(type="str"),
        batch_size=dict(type="int", default=100),
        limit=dict(type="int"),
        sample_size=dict(type="int", default=5),
        drop_backup=dict(type="bool", default=False),
        soak_days=dict(type="int", default=14),
        skip_unrestorable=dict(type="bool", default=False),
        planned_base_url=dict(type="str"),
        planned_prefix=dict(type="str"),
        upload_headers=dict(type="str", choices=["v12", "13.9", "named"]),
        ca_bundle=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    misskey_db.run_module(module, run, needs=[("boto3", HAS_BOTO3 or module.params["state"] not in ("moved", "purged"))],
                          errors=(DriveMoveError,))


if __name__ == "__main__":
    main()
