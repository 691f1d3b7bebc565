"""The summaries of roles/migrate (tasks/main.yml) and roles/media_copy (tasks/copy.yml) read as lines of
text under the default callback: each line of templates/*/summary.txt.j2 is its own item, no literal \\n.

The task is taken as written from the role's task file and run with the role's path and made-up
results, so the test needs no migration to run.
"""

import json
import re

import pytest
import yaml

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.media_plan import media_plan
from tests.ansible_helpers import REPO, run_playbook

ROOT = "/home/mastodon/live/public/system"
MIGRATE_VARS = {
    "migrate_app": "mastodon", "migrate_domain": "social.example.net", "migrate_proxy_mode": "subdomain",
    # The media domain given (not the default s3.<migrate_domain>): the summary names it (issue 21).
    "migrate_media_domain": "media.example.net",
    "migrate_bucket": "example-media", "migrate_endpoint": "ewr1", "migrate_retire_cache": True,
    "migrate_delete_old_cache": False, "migrate_system_root": ROOT, "migrate_shard_index": 0, "migrate_shard_count": 1,
    "migrate_copy_scope": ["cache", "local"], "migrate__config_file": "/home/mastodon/live/.env.production",
    "migrate_secret_key": "s3cr3t-never-shown",
    # The role's vars (vars/main.yml) the task reads, as the role computes them for these inputs.
    "migrate__endpoint": "ewr1", "migrate__bucket_missing": False, "migrate__copy_local": True,
    "migrate__plan": media_plan({"app": "mastodon", "proxy_mode": "subdomain", "domain": "social.example.net",
                                 "media_domain": "media.example.net"}),
    "migrate__copies": {"copy pass 1": {"totals": {"objects": 12, "copied": 10, "skipped": 2, "missing_source": 0,
                                                   "failed": 0}},
                        "copy pass 2": {"totals": {"objects": 13, "copied": 1, "skipped": 12, "missing_source": 0,
                                                   "failed": 0}},
                        "verify": {"totals": {"objects": 13}, "verified": True}},
}
# What the phases register in a run that went to the end (mastodon_env_result, media_copy_retire_result...).
FULL_RUN = dict(MIGRATE_VARS, bucket_result={"changed": True, "existed": False}, nginx_proxy_state={"exists": False},
                mastodon_env_result={"changed": True, "changed_keys": ["S3_ENABLED"]},
                migrate__kept_env={"changed": True, "original": "/home/mastodon/live/.env.production.orig"},
                media_copy_retire_result={"changed": True, "state": "old"}, media_copy_retire_problem="")
# (c) the re-run after the retirement: the cache files are in cache.old (counted retired by media_copy).
RERUN = dict(FULL_RUN, bucket_result={"changed": False, "existed": True}, nginx_proxy_state={"exists": True},
             mastodon_env_result={"changed": False, "changed_keys": []},
             migrate__copies={"copy pass 1": {"totals": {"objects": 34, "skipped": 13, "retired": 21}},
                              "copy pass 2": {"totals": {"objects": 0}},
                              "verify": {"totals": {"objects": 34}, "verified": True}},
             media_copy_retire_result={"changed": False, "state": "old",
                                       "msg": ROOT + "/cache was already retired to " + ROOT + "/cache.old"})
# (d) shard 0 of 2: its retirement was skipped, other shards not complete.
SHARD = dict(FULL_RUN, migrate_shard_count=2, media_copy_retire_result={"changed": False, "skipped": True},
             media_copy_retire_problem=" 3 object(s) missing from bucket example-media - other shards may still be copying ")
ROLLBACK_VARS = dict(MIGRATE_VARS, migrate_rollback_remove_proxy=False,
                     migrate__orig={"found": True, "original": "/home/mastodon/live/.env.production.orig"},
                     media_copy_restore_result={"changed": True, "state": "cache"},
                     migrate__copies={"copy back": {"totals": {"objects": 40, "copied": 3, "skipped": 37}}},
                     migrate__restored={"changed": True, "backup_file": "/home/mastodon/live/.env.production.1~"})
MEDIA_COPY_VARS = {
    "media_copy_label": "cache", "media_copy_mode": "copy",
    "media_copy_result": {
        "mode": "copy", "bytes": 2500000, "seconds": 1.5, "objects_per_second": 8.0, "verified": True,
        "kinds": {"media_attachments/files": {"rows": 3, "objects": 6, "copied": 6, "skipped": 0, "missing_source": 0,
                                              "failed": 0}},
        "totals": {"rows": 3, "objects": 6, "copied": 6, "skipped": 0, "missing_source": 0, "failed": 0},
        "failed_sample": [{"key": "cache/x/y.png", "reason": "said \"no\""}],
    },
}

COPY_BACK_VARS = {
    "media_copy_label": "cache", "media_copy_mode": "copy_back",
    "media_copy_result": {
        "mode": "copy_back", "bytes": 0, "seconds": 1.0, "objects_per_second": 1.0,
        "kinds": {"media_attachments/files": {"rows": 1, "objects": 1, "copied": 0, "skipped": 0, "missing_source": 0,
                                              "failed": 1}},
        "totals": {"rows": 1, "objects": 1, "copied": 0, "skipped": 0, "missing_source": 0, "failed": 1},
        "failed_sample": [{"key": "media_attachments/files/000/000/001/original/a.png",
                           "reason": "on disk with 4096 bytes, the object in the bucket has 10000: not overwritten"}],
        "different_on_disk": 1,
        "different_on_disk_sample": [{"kind": "media_attachments/files",
                                      "key": "media_attachments/files/000/000/001/original/a.png",
                                      "size": 4096, "bucket_size": 10000}],
    },
}


def _tasks(tasks):
    """Every task of a task list, those inside blocks included (the roles wrap their tasks in a block that
    carries their module_defaults)."""
    for task in tasks:
        yield task
        for section in ("block", "rescue", "always"):
            yield from _tasks(task.get(section) or [])


def role_task(role, tasks_file, name_start):
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / tasks_file).read_text())
    (task,) = [t for t in _tasks(tasks) if "block" not in t and t.get("name", "").startswith(name_start)]
    return dict(task, tags=["always"])  # as in the role: printed whatever --tags says


@pytest.mark.parametrize("role, tasks_file, name_start, extra, expected", [
    ("migrate", "main.yml", "Summary of the migration", FULL_RUN,
     ["mastodon on social.example.net",
      "media URLs: https://media.example.net/... through the nginx proxy cache (mode subdomain)",
      "bucket: example-media at https://ewr1.vultrobjects.com - created",
      "copy pass 2: 13 objects: 1 copied, 12 already in the bucket, 0 missing on disk, 0 failed",
      "verify: all 13 objects in scope are in the bucket; the proxy serves the bucket only",
      "retire: %s/cache moved to %s/cache.old (nothing deleted)" % (ROOT, ROOT),
      "backup: original configuration: /home/mastodon/live/.env.production.orig"]),
    ("migrate", "main.yml", "Summary of the migration", RERUN,
     ["copy pass 1: 34 objects: 0 copied, 13 already in the bucket, 21 in cache.old (retired, in the bucket), "
      "0 missing on disk, 0 failed",
      "retire: %s/cache was already retired to %s/cache.old (an earlier run)" % (ROOT, ROOT)]),
    ("migrate", "main.yml", "Summary of the migration", SHARD,
     ["retire: not done by shard 0 of 2 - 3 object(s) missing from bucket example-media - other shards may still be "
      "copying; %s/cache stays in place" % ROOT]),
    ("migrate", "rollback.yml", "Summary of the rollback", ROLLBACK_VARS,
     ["mastodon on social.example.net: rollback",
      "cache: %s/cache.old moved back to %s/cache" % (ROOT, ROOT),
      "config: /home/mastodon/live/.env.production restored from the original kept by the migration "
      "(/home/mastodon/live/.env.production.orig)",
      "backup: the switched /home/mastodon/live/.env.production, backed up before the restore: "
      "/home/mastodon/live/.env.production.1~",
      "bucket: example-media left as it is (nothing deleted)"]),
    ("media_copy", "copy.yml", "Summary (", MEDIA_COPY_VARS,
     ["cache - mode copy",
      "%-32s %8s %8s %8s %8s %8s %8s" % ("total", 3, 6, 6, 0, 0, 0),
      "2.5 MB in 1.5 s, 8.0 objects/s",
      "verify: every object is in the bucket",
      'failed: cache/x/y.png (said "no")']),
    ("media_copy", "copy.yml", "Summary (", COPY_BACK_VARS,
     ["cache - mode copy_back",
      "copy back: 1 file(s) on disk of another size than their object, not overwritten (counted in failed)",
      "failed: media_attachments/files/000/000/001/original/a.png (on disk with 4096 bytes, the object in the "
      "bucket has 10000: not overwritten)"]),
])
def test_summary_prints_lines(role, tasks_file, name_start, extra, expected):
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars": {"role_path": str(REPO / "roles" / role)},
             "tasks": [role_task(role, tasks_file, name_start)]}]
    result = run_playbook(yaml.safe_dump(play, sort_keys=False), extra_vars=extra, callback="default")
    assert result.rc == 0, result.stdout + result.stderr
    block = result.stdout[result.stdout.index("TASK ["):result.stdout.index("PLAY RECAP")]
    assert "\\n" not in block, block
    # The message is a list of strings, one per line of the summary (the callback shows it as JSON).
    msg = json.loads(block[block.index("{"):block.rindex("}") + 1])["msg"]
    assert isinstance(msg, list) and all(isinstance(line, str) and "\n" not in line and line for line in msg), msg
    for line in expected:
        assert line in msg, msg
    if role == "migrate":
        # The command that undoes (or redoes) the run: this run's own -e, the inventory as a placeholder.
        undo = [x for x in msg if x.startswith(("to undo: ", "still to do: to migrate again later: "))]
        assert len(undo) == 1 and re.search(r"ansible-playbook -i <inventory> fediverse\.object_storage\.(rollback|migrate) "
                                            r"-e @\S+extra_vars\.json$", undo[0]), msg
        assert "s3cr3t-never-shown" not in result.stdout
    # ...and each line stands on a line of its own in what the admin reads.
    assert re.search(r'^\s+"mastodon on social\.example\.net(: rollback)?",?$' if role == "migrate"
                     else r'^\s+"cache - mode copy(_back)?",?$', block, re.M), block


def _summary_lines(role, tasks_file, name_start, extra, **kw):
    play = [{"hosts": "localhost", "gather_facts": False,
             "vars": {"role_path": str(REPO / "roles" / role)},
             "tasks": [role_task(role, tasks_file, name_start)]}]
    result = run_playbook(yaml.safe_dump(play, sort_keys=False), extra_vars=extra, **kw)
    assert result.rc == 0, result
    return result.task(name_start)["msg"]


@pytest.mark.parametrize("kw, expected, absent", [
    # (a) --tags copy: the copy passes ran, nothing else; no retirement is claimed.
    ({"tags": "copy"},
     ["mastodon on social.example.net (only some phases ran: --tags copy)",
      "copy pass 1: 12 objects: 10 copied, 2 already in the bucket, 0 missing on disk, 0 failed",
      "config: not run (--tags copy) - the app was not switched by this run",
      "retire: not run (--tags copy) - %s/cache stays in place" % ROOT,
      "still to do: run it without --tags/--skip-tags to finish; these phases did not run: bucket, nginx, config, "
      "verify, retire"],
     "cache.old"),
    # (b) --check on a host whose bucket does not exist yet: what a run would do, nothing retired.
    ({"check": True},
     ["mastodon on social.example.net (check mode: nothing was changed; each line says what a run would do)",
      "bucket: example-media at https://ewr1.vultrobjects.com - would be created",
      "retire (check mode): %s/cache would be moved to %s/cache.old after a full verify" % (ROOT, ROOT),
      "still to do: run it again without --check to apply it"],
     "cache moved to"),
])
def test_summary_of_a_tags_limited_run_and_of_a_check_run(kw, expected, absent):
    extra = dict(MIGRATE_VARS)
    if kw.get("check"):
        extra.update(bucket_result={"changed": True, "existed": False}, migrate__bucket_missing=True,
                     migrate__copies={})
    msg = _summary_lines("migrate", "main.yml", "Summary of the migration", extra, **kw)
    for line in expected:
        assert line in msg, msg
    assert not any(absent in line for line in msg), msg
