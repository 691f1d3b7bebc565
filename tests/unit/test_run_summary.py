"""Unit tests of plugins/module_utils/migrate/run_summary.py: the summaries of migrate.yml and rollback.yml say
what each phase did, from the phases' results (issue 24 item 4): a tags-limited run, a check run, a re-run
after retirement, a sharded run that did not retire, a rollback."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_COLLECTIONS = str(REPO / ".cache" / "collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate import run_summary as rs  # noqa: E402

ROOT = "/home/mastodon/live/public/system"
ENV = "/home/mastodon/live/.env.production"
ORIG = ENV + ".fediverse-object-storage.orig"
CLI = {"playbooks": ["playbooks/migrate.yml"], "limit": "",
       "extra_vars": ["migrate_app=mastodon migrate_domain=social.example.net migrate_secret_key=s3cr3t",
                      '{"migrate_bucket": "example-media", "migrate_db_password": "pw"}']}
BASE = {
    "app": "mastodon", "domain": "social.example.net", "proxy_mode": "subdomain",
    "media_url": "https://s3.social.example.net", "media_domain": "s3.social.example.net", "bucket": "example-media",
    "endpoint": "https://ewr1.vultrobjects.com", "check_mode": False, "run_tags": ["all"], "skip_tags": [],
    "shard_index": 0, "shard_count": 1, "copy_scope": ["cache", "local"], "retire_cache": True, "system_root": ROOT,
    "config_file": ENV, "cli": CLI,
}
# What a complete first run registers.
FULL = dict(
    BASE,
    bucket_result={"changed": True, "existed": False},
    nginx_state={"exists": False, "local_first": False},
    passes={"copy pass 1": {"totals": {"objects": 34, "copied": 34}},
            "copy pass 2": {"totals": {"objects": 1, "copied": 1}},
            "verify": {"totals": {"objects": 34}, "verified": True, "missing_in_bucket": 0, "different_size": 0}},
    kept_original={"changed": True, "original": ORIG},
    app_config={"changed": True, "changed_keys": ["S3_ENABLED", "S3_BUCKET"], "backup_file": ENV + ".1.2026~"},
    retire_result={"changed": True, "state": "old", "msg": ROOT + "/cache moved to " + ROOT + "/cache.old"},
    retire_problem="",
    delete_result={"changed": False, "skipped": True},
)
SECRETS = ("s3cr3t", '"pw"')


def line(lines, start):
    found = [x for x in lines if x.startswith(start)]
    assert len(found) == 1, (start, lines)
    return found[0]


def no_secret(lines):
    for text in lines:
        for secret in SECRETS:
            assert secret not in text, text


def test_a_complete_run_says_what_each_phase_did_where_the_backups_are_and_how_to_undo():
    lines = rs.migrate_summary(FULL)
    assert lines[0] == "mastodon on social.example.net"
    assert line(lines, "bucket:").endswith("- created")
    assert line(lines, "copy pass 1:") == ("copy pass 1: 34 objects: 34 copied, 0 already in the bucket, 0 missing on disk, "
                                           "0 failed")
    assert line(lines, "config:").startswith("config: %s now points at the bucket (S3_ENABLED, S3_BUCKET)" % ENV)
    assert line(lines, "verify:").startswith("verify: all 34 objects in scope are in the bucket")
    assert line(lines, "retire:") == "retire: %s/cache moved to %s/cache.old (nothing deleted)" % (ROOT, ROOT)
    assert "backup: original configuration: %s" % ORIG in lines
    assert any(x.startswith("backup: retired cache: %s/cache.old" % ROOT) for x in lines)
    undo = line(lines, "to undo:")
    assert undo.startswith("to undo: ansible-playbook -i <inventory> playbooks/rollback.yml -e ")
    assert "migrate_secret_key=<hidden>" in undo and '"migrate_db_password": "<hidden>"' in undo
    assert "migrate_domain=social.example.net" in undo and '"migrate_bucket": "example-media"' in undo
    todo = [x for x in lines if x.startswith("still to do: ")]
    assert any("DNS: s3.social.example.net" in x for x in todo)
    assert any("certificate: s3.social.example.net" in x for x in todo)
    assert any(x.startswith("still to do: CDN:") for x in todo)
    assert any("tootctl media usage" in x and "before" in x for x in todo)
    assert any("migrate_delete_old_cache=true" in x for x in todo)
    no_secret(lines)


def test_a_tags_limited_run_says_which_phases_did_not_run_and_claims_no_retirement():
    """(a) --tags copy: only the copy passes ran; no word of a retirement that never happened."""
    run = dict(BASE, run_tags=["copy"],
               passes={"copy pass 1": {"totals": {"objects": 34, "copied": 2, "skipped": 32}},
                       "copy pass 2": {"totals": {"objects": 0}}})
    lines = rs.migrate_summary(run)
    assert lines[0] == "mastodon on social.example.net (only some phases ran: --tags copy)"
    assert line(lines, "copy pass 1:").startswith("copy pass 1: 34 objects: 2 copied, 32 already in the bucket")
    for phase in ("bucket:", "nginx:", "config:", "verify:", "retire:"):
        assert "not run (--tags copy)" in line(lines, phase), lines
    assert line(lines, "retire:") == "retire: not run (--tags copy) - %s/cache stays in place" % ROOT
    assert not any("retired to" in x or "moved to" in x or "cache.old" in x for x in lines), lines
    assert not any(x.startswith("backup:") for x in lines)
    assert "still to do: run it without --tags/--skip-tags to finish; these phases did not run: bucket, nginx, config, " \
           "verify, retire" in lines


def test_skip_tags_are_reasons_too():
    lines = rs.migrate_summary(dict(FULL, skip_tags=["retire"], retire_result=None, retire_problem=""))
    assert line(lines, "retire:") == "retire: not run (--skip-tags retire) - %s/cache stays in place" % ROOT


def test_a_check_run_says_what_would_happen_and_that_nothing_changed():
    """(b) --check on a fresh host: the bucket does not exist, nothing is copied, nothing retired."""
    run = dict(BASE, check_mode=True, bucket_result={"changed": True, "existed": False}, bucket_missing=True,
               nginx_state={"exists": False, "local_first": False},
               kept_original={"changed": True, "original": ORIG},
               app_config={"changed": True, "changed_keys": ["S3_ENABLED"]},
               retire_result=None)  # the retirement needs the bucket: not run before it exists
    lines = rs.migrate_summary(run)
    assert lines[0] == ("mastodon on social.example.net (check mode: nothing was changed; each line says what a run "
                        "would do)")
    assert line(lines, "bucket:").endswith("- would be created")
    assert line(lines, "nginx (check mode):").endswith("would be put in place")
    assert line(lines, "copy (check mode):") == (
        "copy (check mode): the bucket does not exist yet, so the copy passes, the verify and the retirement's verify "
        "were not tried; a real run copies every object of the ? DB rows in scope cache, local")
    assert not any(x.startswith(("copy pass", "verify", "backup:")) for x in lines), lines  # nothing kept yet
    run["db_rows"] = 41
    assert "every object of the 41 DB rows in scope" in line(rs.migrate_summary(run), "copy (check mode):")
    assert line(lines, "config (check mode):").startswith("config (check mode): %s would be pointed at the bucket" % ENV)
    assert line(lines, "retire (check mode):") == (
        "retire (check mode): %s/cache would be moved to %s/cache.old after a full verify" % (ROOT, ROOT))
    assert not any(x.startswith("retire:") or "cache moved to" in x for x in lines), lines
    assert line(lines, "to undo (after a real run):")
    assert "still to do: run it again without --check to apply it" in lines
    assert any("tootctl media usage" in x and "now" in x for x in lines)


def test_a_check_run_says_once_that_the_verify_makes_the_proxy_bucket_only():
    """Local media in scope: after the verify a real run rewrites the mode's file without the local-first lookup;
    a check run says so on the nginx line (it prints no second diff), unless the proxy is bucket-only already."""
    conf = "/etc/nginx/snippets/fediverse_media-directory.conf"
    run = dict(BASE, proxy_mode="directory", media_domain="", check_mode=True, bucket_missing=True, copy_local=True,
               nginx_conf=conf, nginx_state={"exists": False, "local_first": False})
    nginx = line(rs.migrate_summary(run), "nginx (check mode):")
    assert nginx.endswith("would be put in place; after the verify, %s is rewritten without the local-first lookup in "
                          "%s (from then on the bucket alone decides; local files stay on disk)" % (conf, ROOT)), nginx
    for other in (dict(copy_local=False), dict(check_mode=False),
                  dict(nginx_state={"exists": True, "local_first": False})):  # already bucket-only
        assert "local-first" not in line(rs.migrate_summary(dict(run, **other)), "nginx"), other
    # A proxy in place that still serves local files first is rewritten after the verify.
    kept = line(rs.migrate_summary(dict(run, nginx_state={"exists": True, "local_first": True})), "nginx")
    assert "already in place" in kept and "without the local-first lookup" in kept


def test_a_check_run_with_the_bucket_there_counts_what_would_be_copied():
    run = dict(BASE, check_mode=True, bucket_result={"changed": False, "existed": True},
               nginx_state={"exists": True, "local_first": True},
               passes={"copy pass 1": {"totals": {"objects": 10, "copied": 4, "skipped": 6}},
                       "verify": {"totals": {"objects": 10}, "verified": False, "missing_in_bucket": 4}})
    lines = rs.migrate_summary(run)
    assert line(lines, "copy pass 1 (check mode):") == (
        "copy pass 1 (check mode): 10 objects: 4 would be copied, 6 already in the bucket, 0 missing on disk, 0 failed")
    assert line(lines, "verify (check mode):").startswith("verify (check mode): 4 object(s) not in the bucket yet")
    assert line(lines, "nginx (check mode):").startswith("nginx (check mode): the proxy for s3.social.example.net was "
                                                         "already in place")


def test_the_copy_lines_say_the_pace_held_and_check_mode_estimates_the_time():
    """issue 22: a copy pass says the rate held and how often the gateway pushed back; a check run says
    how long the copy will take at the rate it would hold, and the storage the bucket will need."""
    run = dict(FULL, passes={"copy pass 1": {"totals": {"objects": 4500, "copied": 4500},
                                             "pacing": {"held_rate": 144.9, "throttled": 9}},
                             "copy pass 2": {"totals": {"objects": 3, "copied": 3}, "pacing": {"held_rate": None}}})
    lines = rs.migrate_summary(run)
    assert line(lines, "copy pass 1:").endswith(
        "0 failed; 145 requests/s held, the gateway pushed back 9 times (503 SlowDown)")
    assert line(lines, "copy pass 2:").endswith("0 missing on disk, 0 failed")
    estimate = {"objects": 4500, "bytes": 18432000, "requests": 4502, "rate": 150.0, "rate_from": "max_requests_per_second",
                "seconds": 30.0, "bucket_bytes": 20000000}
    run = dict(BASE, check_mode=True, bucket_result={"changed": False, "existed": True},
               nginx_state={"exists": True, "local_first": True},
               passes={"copy pass 1": {"totals": {"objects": 4600, "copied": 4500, "skipped": 100}, "estimate": estimate}})
    assert line(rs.migrate_summary(run), "copy pass 1 (check mode):").endswith(
        "0 failed; 18.4 MB to copy in about 30 s (4502 requests at 150 requests/s: max_requests_per_second); "
        "the bucket will hold 20.0 MB of these media")
    unknown = dict(estimate, rate=None, seconds=None, rate_from="no rate known")
    run["passes"]["copy pass 1"]["estimate"] = unknown
    assert line(rs.migrate_summary(run), "copy pass 1 (check mode):").endswith(
        "18.4 MB to copy, time unknown (no rate known); the bucket will hold 20.0 MB of these media")
    assert rs.estimate_words({"estimate": dict(estimate, seconds=5400.0)}).startswith("18.4 MB to copy in about 90 min")


def test_a_rerun_after_retirement_counts_cache_old_files_as_retired_not_missing():
    """(c) the re-run: the files of cache.old are "in cache.old (retired)", not "missing on disk"; the
    retirement is an earlier run's."""
    run = dict(FULL, bucket_result={"changed": False, "existed": True}, nginx_state={"exists": True, "local_first": False},
               passes={"copy pass 1": {"totals": {"objects": 34, "skipped": 13, "retired": 21}},
                       "copy pass 2": {"totals": {"objects": 0}},
                       "verify": {"totals": {"objects": 34, "skipped": 13, "retired": 21}, "verified": True}},
               kept_original={"changed": False, "original": ORIG},
               app_config={"changed": False, "changed_keys": []},
               retire_result={"changed": False, "state": "old",
                              "msg": "%s/cache was already retired to %s/cache.old" % (ROOT, ROOT)})
    lines = rs.migrate_summary(run)
    assert line(lines, "copy pass 1:") == ("copy pass 1: 34 objects: 0 copied, 13 already in the bucket, 21 in cache.old "
                                           "(retired, in the bucket), 0 missing on disk, 0 failed")
    assert line(lines, "bucket:").endswith("- already there")
    assert line(lines, "config:") == "config: %s already points at the bucket (unchanged)" % ENV
    assert line(lines, "retire:") == "retire: %s/cache was already retired to %s/cache.old (an earlier run)" % (ROOT, ROOT)
    assert any(x.startswith("backup: retired cache: %s/cache.old" % ROOT) for x in lines)


def test_a_sharded_run_that_did_not_retire_says_why_and_what_to_do():
    """(d) shard 0 of 2 finds objects of shard 1 missing: the cache stays, the other shard retires it."""
    problem = ("3 object(s) missing from bucket example-media and 0 of a different size (e.g. cache/a.png) - other "
               "shards may still be copying, or the copy must be run again")
    run = dict(FULL, shard_count=2, shard_index=0, retire_result={"changed": False, "skipped": True},
               retire_problem="\n" + problem + "\n")
    lines = rs.migrate_summary(run)
    assert line(lines, "retire:") == "retire: not done by shard 0 of 2 - %s; %s/cache stays in place" % (problem, ROOT)
    assert any(x.startswith("still to do: run the other shards") for x in lines)
    assert not any("cache.old" in x for x in lines if not x.startswith("still to do:")), lines


def test_retirement_off_is_said_as_such():
    lines = rs.migrate_summary(dict(FULL, retire_cache=False, retire_result=None, retire_problem=""))
    assert line(lines, "retire:") == "retire: off (migrate_retire_cache is false) - %s/cache stays in place" % ROOT


def test_a_deleted_cache_old_is_no_backup():
    lines = rs.migrate_summary(dict(FULL, delete_result={"changed": True, "files": 21}))
    assert line(lines, "retire:").endswith("%s/cache.old deleted (21 files, each checked in the bucket)" % ROOT)
    assert not any(x.startswith("backup: retired cache") for x in lines)


def test_misskey_summary_has_no_mastodon_phases():
    run = dict(BASE, app="misskey", proxy_mode="directory", media_url="https://social.example.net/storage",
               media_domain="", config_file="/home/misskey/.config/default.yml", bucket_result={"existed": True},
               nginx_state={"exists": True}, kept_original={"skipped": True}, misskey_check={"status": 200})
    lines = rs.migrate_summary(run)
    assert not any(x.startswith(("copy pass", "retire")) for x in lines)
    assert line(lines, "verify:").startswith("verify: an object written with Misskey's stored settings was fetched")
    assert not any("DNS" in x or "tootctl" in x for x in lines)


@pytest.mark.parametrize("cli, playbook", [
    ({"playbooks": ["playbooks/migrate.yml"]}, "playbooks/rollback.yml"),
    ({"playbooks": ["/opt/x/migrate.yml"]}, "/opt/x/rollback.yml"),
    ({"playbooks": ["fediverse.object_storage.migrate"]}, "fediverse.object_storage.rollback"),
    ({"playbooks": ["site.yml"]}, "fediverse.object_storage.rollback"),
    ({}, "fediverse.object_storage.rollback"),
])
def test_the_rollback_command_names_the_playbook_as_the_admin_did(cli, playbook):
    assert shlex.split(rs.command("rollback", cli))[:4] == ["ansible-playbook", "-i", "<inventory>", playbook]


def test_the_command_keeps_limit_and_every_extra_var_and_hides_secrets():
    cli = {"playbooks": ["playbooks/migrate.yml"], "limit": "web1",
           "extra_vars": ["migrate_app=mastodon migrate_access_key=AKIA123", "@vars/prod.yml",
                          '{"migrate_vultr_api_key": "k", "nested": {"db_password": "p"}, "migrate_domain": "d"}',
                          "migrate_domain='a b'"]}
    words = shlex.split(rs.command("rollback", cli))
    assert words == ["ansible-playbook", "-i", "<inventory>", "playbooks/rollback.yml", "--limit", "web1",
                     "-e", "migrate_app=mastodon migrate_access_key=<hidden>", "-e", "@vars/prod.yml",
                     "-e", '{"migrate_domain": "d", "migrate_vultr_api_key": "<hidden>", "nested": {"db_password": '
                           '"<hidden>"}}',
                     "-e", "migrate_domain=a b"]


def test_a_rollback_says_what_came_back_and_where_the_backups_are():
    run = dict(BASE, cli=dict(CLI, playbooks=["playbooks/rollback.yml"]), remove_proxy=False,
               original={"found": True, "original": ORIG},
               restore_result={"changed": True, "state": "cache"},
               passes={"copy back": {"totals": {"objects": 40, "copied": 3, "skipped": 37}}},
               restored={"changed": True, "backup_file": ENV + ".99.2026~"})
    lines = rs.rollback_summary(run)
    assert lines[0] == "mastodon on social.example.net: rollback"
    assert line(lines, "cache:") == "cache: %s/cache.old moved back to %s/cache" % (ROOT, ROOT)
    assert line(lines, "copy back:").startswith("copy back: 3 objects only in the bucket written back to %s" % ROOT)
    assert line(lines, "config:") == "config: %s restored from the original kept by the migration (%s)" % (ENV, ORIG)
    assert line(lines, "app:") == "app: restarted"
    assert line(lines, "nginx:").startswith("nginx: proxy kept")
    assert line(lines, "bucket:") == "bucket: example-media left as it is (nothing deleted)"
    assert "backup: the switched %s, backed up before the restore: %s.99.2026~" % (ENV, ENV) in lines
    assert any(x.startswith("still to do: remove the proxy later") and x.endswith("-e migrate_rollback_remove_proxy=true")
               for x in lines)
    assert any(x.startswith("still to do: to migrate again later: ansible-playbook -i <inventory> playbooks/migrate.yml")
               for x in lines)
    no_secret(lines)


def test_a_rollback_of_a_never_switched_app_and_in_check_mode():
    run = dict(BASE, check_mode=True, remove_proxy=True, original={"found": False, "original": ORIG},
               restore_result={"changed": False, "state": "cache", "msg": ROOT + "/cache is not retired"},
               restored={"skipped": True})
    lines = rs.rollback_summary(run)
    assert lines[0].endswith("rollback (check mode: nothing was changed; each line says what a run would do)")
    assert line(lines, "cache:") == "cache: nothing to move back (%s/cache is not retired)" % ROOT
    assert line(lines, "copy back:").startswith("copy back: not needed")
    assert line(lines, "config:").startswith("config: no original kept by the migration")
    assert line(lines, "app (check mode):").startswith("app (check mode): not restarted")
    assert line(lines, "nginx (check mode):").startswith("nginx (check mode): proxy would be removed")
    assert "still to do: run it again without --check to apply it" in lines
    assert any("DNS: the record of s3.social.example.net may go" in x for x in lines)


def test_misskey_rollback_of_the_meta_row_and_the_file_move():
    run = dict(BASE, app="misskey", proxy_mode="directory", media_url="https://social.example.net/storage",
               media_domain="", config_file="/home/misskey/.config/default.yml", remove_proxy=False,
               original={"found": False}, restored={"skipped": True},
               drive_back={"changed": True, "written_back": 2, "still_moved": 1}, meta_off={"changed": True})
    lines = rs.rollback_summary(run)
    assert line(lines, "files:") == ("files: Misskey's drive rows changed by the file move put back; 2 purged file(s) "
                                     "written back from the bucket")
    assert line(lines, "config:") == "config: Misskey's object storage settings put back"
    assert any("1 drive file(s) still point at the bucket" in x for x in lines)
    assert not any(x.startswith(("cache:", "copy back:")) for x in lines)


SHARKEY_FOUND = {"version": "2023.9.0-beta.10", "fork": "Sharkey", "fork_version": "2023.9.0-beta.10",
                 "upstream_version": None, "upload_headers": "named",
                 "upload_headers_source": "Sharkey DriveService.upload (transfem-org/Sharkey 829ce4f8: named thumbnail)",
                 "fork_note": "a Misskey fork with a CalVer of its own, not a Misskey version"}
MOVED_ON_SHARKEY = {"changed": True, "stats": {"candidates": 3, "moved": 3, "missing": 0, "unsafe": 0},
                    "upload_headers": "named",
                    "url_columns": {"rewritten": ["drive_file.url", "user.avatarUrl", "user.backgroundUrl"],
                                    "left": [{"column": "drive_file.src", "why": "the URL a file was uploaded from"},
                                             {"column": "meta.app512IconUrl",
                                              "why": "not in this database (another version or fork)"},
                                             {"column": "ad.imageUrl",
                                              "why": "not in this database (another version or fork)"}]}}


@pytest.mark.parametrize("check", [False, True])
def test_misskey_summary_names_the_fork_and_the_url_columns(check):
    run = dict(BASE, app="misskey", proxy_mode="directory", media_url="https://social.example.net/storage",
               media_domain="", config_file="/home/misskey/.config/default.yml", check_mode=check,
               misskey_found=SHARKEY_FOUND, misskey_move=MOVED_ON_SHARKEY)
    lines = rs.migrate_summary(run)
    software = line(lines, "software:")
    assert software.startswith("software: Sharkey 2023.9.0-beta.10 (a Misskey fork with a CalVer of its own")
    assert "based on" not in software and "transfem-org/Sharkey 829ce4f8" in software
    label = "move (check mode)" if check else "move"
    rewritten = line(lines, label + ": URL columns " + ("would be rewritten" if check else "rewritten"))
    assert rewritten.endswith(("would be rewritten" if check else "rewritten") +
                              ": drive_file.url, user.avatarUrl, user.backgroundUrl")
    assert "%s: URL columns left: drive_file.src (the URL a file was uploaded from)" % label in lines
    assert ("%s: URL columns left: meta.app512IconUrl, ad.imageUrl (not in this database (another version or fork))"
            % label) in lines
    assert line(lines, label + ": 3 of 3").endswith("upload headers of generation named")


def test_misskey_summary_says_what_a_cherrypick_is_based_on():
    found = {"version": "2024.11.0-beta.4", "fork": "CherryPick", "fork_version": "1.0.1-4.14.0-alpha.3",
             "upstream_version": "2024.11.0-beta.4", "upload_headers": "named", "upload_headers_source": "x",
             "fork_note": "based on Misskey 2024.11.0-beta.4 (basedMisskeyVersion)"}
    run = dict(BASE, app="misskey", proxy_mode="directory", media_url="https://social.example.net/storage",
               media_domain="", config_file="/home/misskey/.config/default.yml", misskey_found=found)
    assert "; based on Misskey 2024.11.0-beta.4;" in line(rs.migrate_summary(run), "software:")
