"""Role media_copy: progress lines while the async copy runs, a summary table, and the safe cache
retirement (verify first, move cache -> cache.old, delete only on request, restore on rollback),
against real PostgreSQL (fixture Mastodon instance) and Ceph RGW over HTTPS.
"""

from __future__ import annotations

import os
import re
import uuid

import pytest

from tests.ansible_helpers import run_playbook
from tests.fixtures.mastodon_instance import build_instance
from tests.migrate_support import checksums


@pytest.fixture
def instance(pg, tmp_path):
    return build_instance(pg, "role_copy_" + uuid.uuid4().hex[:8], tmp_path / "public" / "system", missing=())


def role_vars(rgw, instance, bucket, tmp_path, **extra):
    params = instance.db_params
    values = dict(
        media_copy_python="none",
        media_copy_env_file="",
        media_copy_db_host=params["host"], media_copy_db_port=params["port"], media_copy_db_name=params["dbname"],
        media_copy_db_user=params["user"], media_copy_db_password=params["password"],
        media_copy_system_root=instance.system_root,
        media_copy_endpoint=rgw.https_endpoint, media_copy_ca_bundle=rgw.ca_bundle,
        media_copy_access_key=rgw.access_key, media_copy_secret_key=rgw.secret_key,
        media_copy_bucket=bucket,
        media_copy_progress_file=str(tmp_path / "progress.json"),
        media_copy_poll_interval=0.5,
        media_copy_marker_dir=str(tmp_path / "markers"),
    )
    values.update(extra)
    return values


def play(tasks_from="main"):
    return """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the media_copy role
      ansible.builtin.include_role:
        name: fediverse.object_storage.media_copy
        tasks_from: %s
""" % tasks_from + OUTPUTS


# The outputs of retire_cache and restore_cache that migrate's summary reads (module_utils/migrate/run_summary.py).
OUTPUTS = """
    - name: Outputs
      ansible.builtin.debug:
        msg:
          retire_result: "{{ media_copy_retire_result | default(none) }}"
          retire_problem: "{{ media_copy_retire_problem | default('') }}"
          restore_result: "{{ media_copy_restore_result | default(none) }}"
"""


def keys_in(s3, bucket):
    return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])}


def test_role_prints_progress_and_summary_and_is_idempotent(rgw, s3, bucket, instance, tmp_path):
    # A request cap makes the copy last a few seconds, so that progress lines are printed while it runs.
    values = role_vars(rgw, instance, bucket, tmp_path, media_copy_max_requests_per_second=8)
    res = run_playbook(play(), extra_vars=values, callback="default")
    assert res.rc == 0, res.stdout[-4000:]
    progress = re.findall(r"media copy: (\d+)/(\d+) objects \([0-9.]+%\).* MB/s, ETA \S+", res.stdout)
    assert progress, res.stdout[-4000:]
    assert all(int(done) <= int(total) for done, total in progress)
    assert keys_in(s3, bucket) == set(instance.expected)
    total = re.search(r"total\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", res.stdout)
    assert total, res.stdout[-4000:]
    assert int(total.group(3)) == len(instance.expected)  # copied
    assert re.search(r"changed=[1-9]", res.stdout)

    again = run_playbook(play(), extra_vars=role_vars(rgw, instance, bucket, tmp_path))
    assert again.rc == 0, again
    assert again.changed == 0, [t["name"] for t in again.tasks if t["result"].get("changed")]
    assert again.task("Wait for the copy")["totals"]["copied"] == 0


def test_check_mode_uploads_nothing(rgw, s3, bucket, instance, tmp_path):
    res = run_playbook(play(), extra_vars=role_vars(rgw, instance, bucket, tmp_path), check=True)
    assert res.rc == 0, res
    assert keys_in(s3, bucket) == set()
    assert res.task("Start the copy")["totals"]["objects"] >= len(instance.expected)
    # issue 22: the summary says the plan (no rate known here: no cap, no tier, no earlier run) and the storage
    plan = [line for line in res.task("Summary (")["msg"] if line.startswith("estimate: ")]
    assert plan and plan[0].startswith("estimate: no rate known") and "bucket will hold" in plan[0], plan


def test_cache_retired_only_after_verification_and_restored(rgw, s3, bucket, instance, tmp_path):
    root = instance.system_root
    cache, old = os.path.join(root, "cache"), os.path.join(root, "cache.old")
    local_before = checksums(root, skip_prefix="cache")
    cache_before = checksums(cache)
    values = role_vars(rgw, instance, bucket, tmp_path)

    assert run_playbook(play(), extra_vars=values).rc == 0
    # One cached object vanishes from the bucket: the cache must not be retired.
    gone = sorted(instance.expected)[0]
    s3.delete_object(Bucket=bucket, Key=gone)
    refused = run_playbook(play("retire_cache"), extra_vars=values)
    assert refused.rc != 0
    assert any("Not retiring" in m and gone in m for m in refused.failure_messages()), refused
    assert os.path.isdir(cache) and not os.path.exists(old)

    # Copy again, then the cache is retired (moved, not deleted), local media untouched.
    assert run_playbook(play(), extra_vars=values).rc == 0
    retired = run_playbook(play("retire_cache"), extra_vars=values)
    assert retired.rc == 0, retired
    assert not os.path.exists(cache) and checksums(old) == cache_before
    assert checksums(root, skip_prefix="cache") == local_before
    assert retired.task("Outputs")["msg"]["retire_result"]["changed"] is True
    again = run_playbook(play("retire_cache"), extra_vars=values)
    assert again.rc == 0 and again.changed == 0, again
    assert "already retired" in again.task("Outputs")["msg"]["retire_result"]["msg"]
    # A copy run after the retirement (a re-run of the migration): the files it finds in cache.old are
    # counted retired, not missing on disk (issue 24); the pre-3.2 cached files stay where they were.
    rerun = run_playbook(play(), extra_vars=values)
    assert rerun.rc == 0, rerun
    totals = rerun.task("Keep the copy's result")["ansible_facts"]["media_copy_result"]["totals"]
    in_cache_dir = [k for k in instance.expected if k.startswith("cache/")]
    assert in_cache_dir and totals["retired"] == len(in_cache_dir), totals
    assert totals["missing_source"] == 0 and totals["copied"] == 0, totals

    # Rollback puts it back; delete_old_cache is the only way cache.old is removed.
    restored = run_playbook(play("restore_cache"), extra_vars=values)
    assert restored.rc == 0 and restored.task("Outputs")["msg"]["restore_result"]["changed"] is True, restored
    assert checksums(cache) == cache_before and not os.path.exists(old)
    deleted = run_playbook(play("retire_cache"), extra_vars=dict(values, media_copy_delete_old_cache=True))
    assert deleted.rc == 0, deleted
    assert not os.path.exists(cache) and not os.path.exists(old)
    assert checksums(root, skip_prefix="cache") == local_before


def test_two_shards_nothing_retired_until_both_are_complete(rgw, s3, bucket, instance, tmp_path):
    """The verify gating retirement ignores the caller's shard settings: shard 0 done, shard 1 not yet."""
    cache, old = os.path.join(instance.system_root, "cache"), os.path.join(instance.system_root, "cache.old")
    cache_before = checksums(cache)
    shard = [role_vars(rgw, instance, bucket, tmp_path, media_copy_shard_count=2, media_copy_shard_index=i,
                       media_copy_progress_file=str(tmp_path / ("progress-%d.json" % i))) for i in (0, 1)]
    assert run_playbook(play(), extra_vars=shard[0]).rc == 0
    assert 0 < len(keys_in(s3, bucket)) < len(instance.expected)

    # Shard 0 finished first: its retirement must not move the cache shard 1 is still reading.
    refused = run_playbook(play("retire_cache"), extra_vars=shard[0])
    assert refused.rc != 0
    assert any("Not retiring" in m and "other shards may still be copying" in m for m in refused.failure_messages()), \
        refused.failure_messages()
    assert os.path.isdir(cache) and not os.path.exists(old)
    # As one shard of a sharded migration: no failure, the cache stays, the reason is said.
    skipped = run_playbook(play("retire_cache"), extra_vars=dict(shard[0], media_copy_retire_when_incomplete="skip"))
    assert skipped.rc == 0, skipped
    assert "Not retiring" in skipped.task("Say why the cache is not retired yet")["msg"]
    outputs = skipped.task("Outputs")["msg"]  # what migrate's summary says of this shard
    assert outputs["retire_result"]["skipped"] is True and "other shards may still be copying" in outputs["retire_problem"]
    assert os.path.isdir(cache) and not os.path.exists(old)

    # Shard 1 completes: now the last one to finish retires the cache, and the bucket holds every object.
    assert run_playbook(play(), extra_vars=shard[1]).rc == 0
    retired = run_playbook(play("retire_cache"), extra_vars=dict(shard[1], media_copy_retire_when_incomplete="skip"))
    assert retired.rc == 0, retired
    assert not os.path.exists(cache) and checksums(old) == cache_before
    assert keys_in(s3, bucket) == set(instance.expected)


def test_zero_referenced_objects_with_a_full_cache_is_refused(rgw, s3, bucket, instance, tmp_path, pg):
    """Pointed at the wrong (empty) database, the verify finds nothing to check: not a reason to retire."""
    dbname = "empty_" + uuid.uuid4().hex[:8]
    other = build_instance(pg, dbname, tmp_path / "other" / "public" / "system", missing=())
    pg.execute("TRUNCATE media_attachments, accounts, custom_emojis, preview_cards CASCADE", dbname=dbname)
    values = role_vars(rgw, instance, bucket, tmp_path, media_copy_db_name=other.db_params["dbname"])
    refused = run_playbook(play("retire_cache"), extra_vars=values)
    assert refused.rc != 0
    assert any("references no cached object" in m for m in refused.failure_messages()), refused.failure_messages()
    assert os.path.isdir(os.path.join(instance.system_root, "cache"))


def test_delete_old_cache_refuses_unverified_or_foreign_cache_old(rgw, s3, bucket, instance, tmp_path):
    root = instance.system_root
    _cache, old = os.path.join(root, "cache"), os.path.join(root, "cache.old")
    values = role_vars(rgw, instance, bucket, tmp_path)
    assert run_playbook(play(), extra_vars=values).rc == 0
    assert run_playbook(play("retire_cache"), extra_vars=values).rc == 0
    assert os.path.isdir(old)

    # A file in cache.old that the bucket does not hold (written by the app, unreferenced): not deleted.
    stray = os.path.join(old, "media_attachments", "files", "999", "original", "stray.jpg")
    os.makedirs(os.path.dirname(stray))
    with open(stray, "wb") as fh:
        fh.write(b"not in the bucket")
    refused = run_playbook(play("retire_cache"), extra_vars=dict(values, media_copy_delete_old_cache=True))
    assert refused.rc != 0
    assert any("not deleting" in m and "stray.jpg" in m for m in refused.failure_messages()), refused.failure_messages()
    assert os.path.isfile(stray)
    os.unlink(stray)

    # A cache.old this migration did not create (no marker: moved there by someone else): not deleted.
    from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.cache_retirement import marker_path

    os.unlink(marker_path(str(tmp_path / "markers"), old))
    foreign = run_playbook(play("retire_cache"), extra_vars=dict(values, media_copy_delete_old_cache=True))
    assert foreign.rc != 0
    assert any("did not create it" in m for m in foreign.failure_messages()), foreign.failure_messages()
    assert os.path.isdir(old)
