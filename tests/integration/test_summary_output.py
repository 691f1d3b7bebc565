"""The summaries of roles/migrate (tasks/main.yml) and roles/media_copy (tasks/copy.yml) read as lines of
text under the default callback: each line of templates/*/summary.txt.j2 is its own item, no literal \\n.

The task is taken as written from the role's task file and run with the role's path and made-up
results, so the test needs no migration to run.
"""

import json
import re

import pytest
import yaml

from tests.ansible_helpers import REPO, run_playbook

MIGRATE_VARS = {
    "migrate_app": "mastodon", "migrate_domain": "social.example.net", "migrate_proxy_mode": "subdomain",
    "migrate_bucket": "example-media", "migrate_endpoint": "ewr1", "migrate_retire_cache": True,
    "migrate_delete_old_cache": False, "migrate_system_root": "/home/mastodon/live/public/system",
    "migrate__copies": {"copy pass 1": {"objects": 12, "copied": 10, "skipped": 2, "missing_source": 0, "failed": 0},
                        "copy pass 2": {"objects": 13, "copied": 1, "skipped": 12, "missing_source": 0, "failed": 0}},
    "media_copy_result": {"verified": True},
}
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
    return dict(task, tags=[])


@pytest.mark.parametrize("role, tasks_file, name_start, extra, expected", [
    ("migrate", "main.yml", "Summary of the migration", MIGRATE_VARS,
     ["mastodon on social.example.net",
      "media URLs: https://s3.social.example.net/... through the nginx proxy cache (mode subdomain)",
      "bucket: example-media at https://ewr1.vultrobjects.com",
      "copy pass 2: 13 objects, 1 copied, 12 already there, 0 missing on disk, 0 failed",
      "verify: every DB-referenced cached object is in the bucket"]),
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
    # ...and each line stands on a line of its own in what the admin reads.
    assert re.search(r'^\s+"mastodon on social\.example\.net",?$' if role == "migrate" else r'^\s+"cache - mode copy(_back)?",?$',
                     block, re.M), block
