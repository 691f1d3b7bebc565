#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

DOCUMENTATION = r"""
---
module: media_copy
short_description: Copy a Mastodon server's media to an S3 bucket, driven by its database
version_added: 0.1.0
description:
  - Reads Mastodon's PostgreSQL database to learn exactly which media objects exist (media
    attachments and their thumbnails, avatars, headers, custom emojis, preview cards, provider
    icons, site uploads, backups), and copies them to the bucket with the keys, Content-Type,
    Cache-Control and ACL Mastodon itself uses.
  - Runs on the Mastodon host and reads the files below O(system_root) (never writes or deletes
    them), or copies from another bucket (O(source=s3)) when moving between providers.
  - Resumable and idempotent. With O(skip_existing=true) the destination is listed once (by
    prefix, not one HEAD per object) and objects already present with the same size are skipped,
    so a second run copies nothing and reports no change, and an interrupted run can simply be
    started again.
  - Memory stays bounded whatever the number of rows (server-side cursor, bounded queue,
    16 bytes per listed object); large files go multipart, streamed from disk.
  - Pre-flight checks run before anything is copied - database reachable, bucket present, keys
    valid, source bucket reachable - and fail with a clear message.
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
options:
  source:
    description:
      - Where the media are read from.
      - V(filesystem) reads the files below O(system_root) on this host.
      - V(s3) reads them from O(source_bucket) (moving from one provider to another).
    type: str
    choices: [filesystem, s3]
    default: filesystem
  system_root:
    description:
      - Mastodon's C(public/system) directory (C(PAPERCLIP_ROOT_PATH)). An object's key is its path
        below this directory. Only read, never modified.
    type: path
    default: /home/mastodon/live/public/system
  source_endpoint:
    description:
      - With O(source=s3), the source endpoint (URL, host name or Vultr cluster name). Defaults to
        O(endpoint). When it is the same endpoint and the same keys, objects are copied server side.
    type: str
  source_bucket:
    description:
      - With O(source=s3), the bucket the media are read from. Required with O(source=s3).
    type: str
  source_access_key:
    description:
      - With O(source=s3), the source's access key. Defaults to O(access_key).
    type: str
  source_secret_key:
    description:
      - With O(source=s3), the source's secret key. Defaults to O(secret_key).
    type: str
  source_key_prefix:
    description:
      - With O(source=s3), the key prefix of the objects in the source bucket (the old C(S3_KEY_PREFIX)).
    type: str
    default: ""
  bucket:
    description:
      - The destination bucket. It must exist (see M(fediverse.object_storage.bucket)).
    type: str
    required: true
  key_prefix:
    description:
      - Mastodon's C(S3_KEY_PREFIX). When set, the destination key is C(KEY_PREFIX/KEY).
    type: str
    default: ""
  scope:
    description:
      - Which media to copy.
      - V(cache) is the remote media Mastodon caches - remote media attachments (file and
        thumbnail), remote accounts' avatars and headers, remote custom emojis, preview cards.
      - V(local) is the server's own media - local media attachments, local avatars and headers,
        local custom emojis, site uploads, preview card provider icons.
    type: list
    elements: str
    choices: [cache, local]
    default: [cache]
  include_backups:
    description:
      - Also copy users' data exports (C(backups/dumps)). They are always written C(private).
    type: bool
    default: false
  acl:
    description:
      - The canned ACL of each object, Mastodon's C(S3_PERMISSION). V("") sends no ACL.
      - Media attachments (files and thumbnails) of suspended accounts and backups are always C(private),
        as Mastodon makes them; avatars and headers of suspended accounts stay public, as in Mastodon.
      - Such a private object that is already in the bucket (skipped) has its ACL read (one
        GetObjectAcl per private object and run); when it grants anything to C(AllUsers) or
        C(AuthenticatedUsers) - an account suspended after its media were copied, since Mastodon then
        only changes the mode of the local files - it is set to C(private) (PutObjectAcl), counted in
        RV(privatised), and the task reports a change. In check mode it is only reported.
      - The other direction is not done - an object of an unsuspended account, or a change of this
        option, does not change the ACL of objects already in the bucket (use O(skip_existing=false)).
    type: str
    default: public-read
  cache_control:
    description:
      - The Cache-Control header of each object. V("") sends none.
    type: str
    default: public, max-age=315576000, immutable
  concurrency:
    description:
      - Number of objects transferred in parallel.
    type: int
    default: 16
  max_requests_per_second:
    description:
      - Cap on S3 requests per second (the provider's limit); V(0) - none. Every HTTP request of the run, retries
        included, passes one limiter, which paces below the cap - on a 503 C(SlowDown) (or 429) to 85% of the
        accepted rate, then +1.5%/s. Unpaced (or at the O(tier)'s rate) until the first 503.
    type: float
    default: 0
  tier:
    description: Vultr tier of the bucket's subscription - V(standard), V(premium), V(performance), V(accelerated)
      (800, 1,000, 4,000, 10,000 requests/s), the run's start and cap, and check mode's rate. V("") - not known.
    type: str
    default: ""
    version_added: 0.2.0
  multipart_threshold:
    description:
      - Files larger than this go as a multipart upload streamed from disk (8 MiB parts). Bytes,
        or a human-readable size such as V(15MB). Default Mastodon's C(S3_MULTIPART_THRESHOLD).
    type: bytes
    default: 15MB
  skip_existing:
    description:
      - Skip objects already in the bucket with the same size. The bucket is listed once by prefix.
      - V(false) copies every object again.
    type: bool
    default: true
  mode:
    description:
      - V(copy) copies the objects.
      - V(verify) copies nothing and reports the objects missing from the bucket or of a different
        size (RV(missing_in_bucket), RV(different_size)).
      - V(copy_back) is the other direction, for a rollback - every DB-referenced object that is in
        the bucket and not below O(system_root) is written there (objects uploaded after the switch
        exist only in the bucket). Files get the owner and group of O(system_root), mode 0644, 0600
        for the media attachments of a suspended account, as Mastodon's filesystem storage does;
        new directories 0755. Links are never followed and existing files never overwritten. Each
        file is written under a temporary name, its size (and MD5, when the ETag is one) checked
        against the object, then linked into place, so a run killed mid-file never leaves a partial
        file under a media name; the next run removes the temporary files it left. In the
        counters, C(copied) is written back, C(skipped) already on disk with the object's size,
        C(missing_source) in neither place; a file on disk of another size (RV(different_on_disk))
        or that is not a regular file is counted in C(failed) and fails the task. Only O(source=filesystem).
    type: str
    choices: [copy, verify, copy_back]
    default: copy
  limit:
    description:
      - Process at most this many database rows (for a trial run).
    type: int
  shard_index:
    description:
      - With O(shard_count), process only the rows whose C(id % shard_count == shard_index), so
        several hosts or AWX job slices can split one migration.
    type: int
    default: 0
  shard_count:
    description:
      - Number of shards the rows are split into.
    type: int
    default: 1
  progress_file:
    description:
      - A JSON file rewritten atomically every 2 seconds and at the end with C(done), C(total),
        C(copied), C(skipped), C(failed), C(missing_source), C(bytes), C(rate), C(eta_seconds),
        C(phase) and C(finished), so another task (or a human) can follow a long copy.
      - Never written in check mode. A symbolic link at this path is refused; the file is replaced
        through a temporary file with an unpredictable name created exclusively.
    type: path
  ignore_failures:
    description:
      - Do not fail the task when some objects failed to copy (they are still counted and listed).
    type: bool
    default: false
  record_dir:
    description:
      - A directory (created 0700 if missing; must be owned by this user and not writable by others)
        where a copy run that went through every row in scope records what it copied - per kind
        the database time it started, the highest row id, and the rows that failed or had no
        source file - bound to the endpoint, bucket, key prefix, scope, shard, source and database.
      - Not written in check mode, with O(limit), with O(mode=verify), or when the run was interrupted.
      - Needed by O(since_last_run). The record keeps the rate the run held too (for check mode's RV(estimate)).
    type: path
  since_last_run:
    description:
      - Copy only the rows created or updated since the run recorded in O(record_dir) (C(id),
        C(updated_at) and C(<attachment>_updated_at) in SQL), plus the rows that failed or had no
        source file then. The bucket is not listed; each selected object is looked up with one
        HeadObject and copied unless it is there with the same size.
      - The media attachments (files and thumbnails) of every currently suspended account are always
        selected too - a suspension changes C(accounts.suspended_at), not their rows - so that
        objects copied public before the suspension are made private (see O(acl)).
      - Without a record made for the same endpoint, bucket, key prefix, scope, shard and source, the
        run is a full one (RV(copy_record) says why). Ignored with O(mode=verify), which always
        checks everything.
    type: bool
    default: false
  since_last_run_margin:
    description:
      - Seconds subtracted from the recorded start of the last run when selecting changed rows
        (covers rows saved by the app just before that run started but committed after, and clock skew).
    type: int
    default: 600
extends_documentation_fragment:
  - fediverse.object_storage.s3
  - fediverse.object_storage.mastodon_db
attributes:
  check_mode:
    support: full
    description: Enumerates the objects and reports what would be copied (counts and bytes) and which objects would
      be made private (RV(privatised)); uploads nothing and changes no ACL.
  diff_mode:
    support: none
    description: Nothing to show as a diff; the result lists what was (or would be) copied.
notes:
  - The module is in the C(fediverse.object_storage.s3) action group, so C(module_defaults) can set
    the endpoint and keys once.
  - Object-level retries with exponential backoff are added on top of the client's own retries
    for 5xx, C(SlowDown) and connection errors; one failed object never stops the run.
  - The requests a run repeats per object or per listing page (PutObject, HeadObject, HeadBucket,
    ListObjectsV2) are sent by the collection's lean client (C(http.client), one keep-alive connection
    per thread, Signature V4 as botocore signs it, C(UNSIGNED-PAYLOAD) over HTTPS, botocore's retry
    rules); multipart uploads, server-side copies, ACLs and the rest go through boto3, imported only
    when first needed. With O(addressing_style=auto) every request goes through boto3.
  - Missing source files (C(ENOENT)) are counted and listed (RV(missing_source_sample)) but are not a
    failure. A file of C(cache/) found in C(cache.old/) instead (the migration's retirement of the
    cache) is not missing - it is read from there and counted in C(retired) (see RV(kinds)). Any other
    error reading a source (permission denied, I/O error) is a failure.
requirements:
  - psycopg2
seealso:
  - module: fediverse.object_storage.bucket
"""

EXAMPLES = r"""
- name: Copy the cached remote media to the bucket
  fediverse.object_storage.media_copy:
    env_file: /home/mastodon/live/.env.production
    endpoint: ewr1
    bucket: mastodon-media
    access_key: "{{ vultr_s3_access_key }}"
    secret_key: "{{ vultr_s3_secret_key }}"
    scope: [cache, local]
    max_requests_per_second: 400
    progress_file: /tmp/media_copy.json

- name: Check that every object is in the bucket before retiring public/system/cache
  fediverse.object_storage.media_copy:
    env_file: /home/mastodon/live/.env.production
    endpoint: ewr1
    bucket: mastodon-media
    mode: verify
  register: media_verify

- name: Move media from another provider's bucket
  fediverse.object_storage.media_copy:
    db_host: /var/run/postgresql
    db_name: mastodon_production
    db_user: mastodon
    source: s3
    source_endpoint: https://s3.old-provider.example
    source_bucket: old-media
    source_access_key: "{{ old_access_key }}"
    source_secret_key: "{{ old_secret_key }}"
    endpoint: ewr1
    bucket: mastodon-media

- name: One slice of a migration split over two hosts
  fediverse.object_storage.media_copy:
    env_file: /home/mastodon/live/.env.production
    endpoint: ewr1
    bucket: mastodon-media
    shard_index: "{{ groups['mastodon'].index(inventory_hostname) }}"
    shard_count: "{{ groups['mastodon'] | length }}"
"""

RETURN = r"""
mode:
  description: The mode the module ran in (V(copy), V(verify) or V(copy_back)).
  returned: always
  type: str
  sample: copy
kinds:
  description:
    - Counters per kind of media (C(media_attachments/files), C(accounts/avatars), ...) -
      C(rows), C(objects), C(copied), C(skipped), C(retired), C(missing_source), C(failed).
    - C(retired) counts the objects of Mastodon's cache whose file is no longer in C(cache) but in
      C(cache.old) (retired by the migration), with the same size in the bucket; such a file not in
      the bucket is copied from C(cache.old) (counted in C(copied)). With O(mode=verify) the files of
      C(cache.old) are checked against the bucket like any other.
    - In check mode C(copied) counts the objects that would be copied.
  returned: always
  type: dict
  sample: {"accounts/avatars": {"rows": 10, "objects": 12, "copied": 11, "skipped": 0, "retired": 0, "missing_source": 1,
                                "failed": 0}}
totals:
  description: The same counters summed over every kind.
  returned: always
  type: dict
  sample: {"rows": 10, "objects": 12, "copied": 11, "skipped": 0, "retired": 0, "missing_source": 1, "failed": 0}
bytes:
  description: Bytes copied (in check mode, bytes that would be copied).
  returned: always
  type: int
  sample: 1048576
seconds:
  description: Duration of the run in seconds.
  returned: always
  type: float
  sample: 12.5
objects_per_second:
  description: Objects processed (copied, skipped or missing) per second.
  returned: always
  type: float
  sample: 850.0
requests:
  description: HTTP requests sent to S3, every attempt counted (PUT, HEAD, parts, copies, LIST pages, retries).
  returned: always
  type: int
  sample: 120
pacing:
  description: The pace - C(held_rate) (requests/s accepted), C(throttled) (503/429 answers - the gateway's
    push-backs), C(decreases), C(start_rate), C(rate) (at the end), C(min_rate), C(cap).
  returned: always
  type: dict
estimate:
  description: In check mode - C(objects), C(bytes), C(requests) a copy sends, C(seconds) at C(rate) (C(rate_from) -
    O(tier), O(max_requests_per_second) or the last run's rate kept in O(record_dir)), C(bucket_bytes) (storage needed).
  returned: in check mode, when mode is copy
  type: dict
rows_total:
  description: Database rows owning media, per kind, counted before the copy.
  returned: always
  type: dict
  sample: {"accounts/avatars": 10}
missing_source_sample:
  description: Up to 20 objects whose source file (or source object) does not exist, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "accounts/avatars", "key": "cache/accounts/avatars/000/000/001/original/a.png",
            "reason": "source file not found"}]
failed_sample:
  description: Up to 20 objects that could not be copied, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "accounts/avatars", "key": "accounts/avatars/000/000/001/original/a.png",
            "reason": "access denied on bucket media (AccessDenied)"}]
unsafe_source:
  description:
    - Objects refused for safety and never uploaded (also counted in C(failed)) - a source file
      that is a symbolic link or is reached through one below O(system_root), a source file
      not owned by the owner of O(system_root) (the app's user; e.g. a hard link to another
      user's file; in a tree owned by root, a root file with more than one link), or a database
      file name Paperclip never writes (empty, C(.), C(..), or holding C(/), C(\), NUL).
  returned: always
  type: int
  sample: 0
unsafe_source_sample:
  description: Up to 20 of the refused objects, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "accounts/avatars", "key": "accounts/avatars/000/000/004/original/a.webp",
            "reason": "accounts/avatars/000/000/004/original/a.webp is a symbolic link"}]
privatised:
  description:
    - Objects that must be private (media attachments of suspended accounts, backups) that were
      already in the bucket readable by C(AllUsers) or C(AuthenticatedUsers), and were set to
      C(private) (in check mode - would be). Counted in C(skipped) too; a non-zero value is a change.
    - An object whose ACL could not be read or set is counted in C(failed) (RV(failed_sample)).
  returned: always
  type: int
  sample: 4
privatised_sample:
  description: Up to 20 of the objects (destination keys) counted in RV(privatised).
  returned: always
  type: list
  elements: dict
  sample: [{"kind": "media_attachments/files", "key": "cache/media_attachments/files/000/000/007/original/m5.heic"}]
missing_in_bucket:
  description: With O(mode=verify), the number of objects not in the bucket.
  returned: when mode is verify
  type: int
  sample: 0
missing_in_bucket_sample:
  description: With O(mode=verify), up to 20 objects (destination keys) not in the bucket.
  returned: when mode is verify
  type: list
  elements: dict
  sample: [{"kind": "accounts/avatars", "key": "cache/accounts/avatars/000/000/001/original/a.png"}]
different_size:
  description: With O(mode=verify), the number of objects whose size in the bucket differs from the source.
  returned: when mode is verify
  type: int
  sample: 0
different_size_sample:
  description: With O(mode=verify), up to 20 objects of a different size, with both sizes.
  returned: when mode is verify
  type: list
  elements: dict
  sample: [{"kind": "accounts/avatars", "key": "cache/accounts/avatars/000/000/001/original/a.png",
            "size": 1200, "bucket_size": 1000}]
different_on_disk:
  description:
    - With O(mode=copy_back), the number of files already on disk whose size differs from their object
      in the bucket (for example truncated by an earlier copy back killed mid-file). They are not
      overwritten, are counted in C(failed), and fail the task unless O(ignore_failures) - move each
      one away once checked, then run again to write the object back.
  returned: when mode is copy_back
  type: int
  sample: 0
different_on_disk_sample:
  description: With O(mode=copy_back), up to 20 of those files, with the size on disk and in the bucket.
  returned: when mode is copy_back
  type: list
  elements: dict
  sample: [{"kind": "media_attachments/files", "key": "media_attachments/files/000/000/001/original/a.png",
            "size": 1048576, "bucket_size": 2411520}]
copy_record:
  description:
    - With O(record_dir), how the record was used - C(incremental) (rows selected since the last run),
      C(listed) (the bucket was listed), C(record_written), C(record) (its path), C(reason) (why the run
      was a full one), C(error) (why no record was written), C(since) (per kind, the time rows were
      selected from).
  returned: when record_dir is set and mode is copy
  type: dict
  sample: {"incremental": true, "listed": false, "record_written": true, "record": "/var/tmp/r/media-copy-0a1b.json"}
verified:
  description:
    - With O(mode=verify), true when no object is missing or different and every source file
      could be read. Any error other than "file not found" on a source (EACCES, EIO, ESTALE...)
      fails the verify task.
  returned: when mode is verify
  type: bool
  sample: true
full:
  description:
    - True when the run covered every row in scope (no O(shard_count) > 1, no O(limit)). Only a
      full verify may gate the retirement of the cache.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db as db_lib  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import steps  # noqa: E402
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (  # noqa: E402
    BOTO3_IMPORT_ERROR,
    HAS_BOTO3,
    client_from_module,
)


def main():
    module = AnsibleModule(argument_spec=steps.argument_spec(), supports_check_mode=True)
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=str(BOTO3_IMPORT_ERROR))
    if not db_lib.HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(db_lib.PSYCOPG2_IMPORT_ERROR))
    p = module.params
    try:
        steps.check_params(p, module.check_mode)
        # Pre-flight, before anything is copied: database, destination bucket and keys, source.
        conn, counts = steps.handle_database(p)
        limiter = steps.make_limiter(p)
        client = client_from_module(module, max_pool_connections=p["concurrency"] + 2, lean=True, pacer=limiter)
        steps.check_bucket(client, p["bucket"], p["endpoint"], "destination bucket")
        source = steps.handle_source(p, client, limiter)
        if p["mode"] == "copy_back":
            result = steps.handle_copy_back(p, client, conn, counts, module.check_mode, limiter)
        else:
            result = steps.handle_copy(p, client, source, conn, counts, module.check_mode, limiter)
        steps.check_result(p, result)
    except steps.MediaCopyError as exc:
        module.fail_json(msg=exc.msg, **exc.result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
