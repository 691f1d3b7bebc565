# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The summaries that end ``migrate.yml`` and ``rollback.yml``: what each phase actually did.

Plain Python (no Ansible import), unit-tested in tests/unit/test_run_summary.py; the filters
``migrate_summary`` and ``rollback_summary`` (plugins/filter/run_summary.py) call it and the roles only
print its lines.

Every line comes from the registered RESULTS of the phases, never from the settings alone: a phase
that did not run (not in ``--tags``, skipped in check mode, a shard that did not retire the cache)
says so and why; a check run says what a run would do. Then where the backups are, the exact command
that undoes the run (the admin's own ``-e``, secrets hidden) and what is left for the admin to do.

``run`` (a dict) holds the facts the role passes in; a result is the dict a task registered (``None``
when the task never ran, e.g. its phase was not in ``--tags``; ``{"skipped": true}`` when its
condition was false).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import json
import posixpath
import re
import shlex

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.copy_words import (
    copy_counts,
    estimate_words,
    pace_words,
)

SECRET_NAME = re.compile(r"secret|password|passwd|token|api_key|access_key|private", re.I)
HIDDEN = "<hidden>"
INVENTORY = "<inventory>"
TOOTCTL = "RAILS_ENV=production bin/tootctl media usage"


def ran(result):
    """True when a registered result is of a task that ran (not absent, not skipped)."""
    return isinstance(result, dict) and bool(result) and not result.get("skipped")


def selected(tag, run_tags=(), skip_tags=()):
    """Whether the tasks tagged ``tag`` ran under ``--tags run_tags --skip-tags skip_tags`` (ansible's rules
    for tasks with tags: every phase of migrate has its tag)."""
    run_tags, skip_tags = set(run_tags or ("all",)), set(skip_tags or ())
    chosen = bool(run_tags & {"all", "tagged", tag})
    return chosen and not (skip_tags & {"all", "tagged", tag})


def not_selected_reason(run_tags=(), skip_tags=()):
    if skip_tags:
        return "not run (--skip-tags %s)" % ",".join(skip_tags)
    return "not run (--tags %s)" % ",".join(run_tags)


# --------------------------------------------------------------------------- the command to undo or redo

def _hide(value):
    """A dict of variables with the values of secret names replaced (recursively)."""
    if isinstance(value, dict):
        return dict((k, HIDDEN if SECRET_NAME.search(str(k)) else _hide(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_hide(v) for v in value]
    return value


def _extra_var_args(raw):
    """One ``-e`` argument as the admin gave it, secrets hidden: ``@file`` as is, a JSON document with its
    secret keys hidden, ``k=v ...`` pairs with the secret values hidden."""
    text = str(raw).strip()
    if text.startswith("@"):
        return ["-e", shlex.quote(text)]
    if text.startswith("{") or text.startswith("["):
        try:
            doc = json.loads(text)
        except ValueError:
            return ["-e", "'<a YAML document: pass it again as you did>'"]
        return ["-e", shlex.quote(json.dumps(_hide(doc), sort_keys=True))]
    try:
        words = shlex.split(text)
    except ValueError:
        return ["-e", "'<as you passed it>'"]
    out = []
    for word in words:
        name, sep, value = word.partition("=")
        if sep and SECRET_NAME.search(name):
            value = HIDDEN
        out.append("%s%s%s" % (name, sep, value))
    return ["-e", shlex.quote(" ".join(out))]


def playbook_for(target, cli=None):
    """The playbook of ``target`` (migrate or rollback) named the way the admin named this run's:
    ``playbooks/migrate.yml`` -> ``playbooks/rollback.yml``, ``fediverse.object_storage.migrate`` ->
    ``fediverse.object_storage.rollback``; the collection's playbook otherwise."""
    playbooks = list((cli or {}).get("playbooks") or ())
    for playbook in playbooks:
        playbook = str(playbook)
        base = posixpath.basename(playbook)
        if base in ("migrate.yml", "rollback.yml"):
            return posixpath.join(posixpath.dirname(playbook), target + ".yml")
        if playbook in ("fediverse.object_storage.migrate", "fediverse.object_storage.rollback"):
            return "fediverse.object_storage." + target
    return "fediverse.object_storage." + target


def command(target, cli=None):
    """The ansible-playbook command of ``target`` with this run's ``--limit`` and ``-e`` (secrets hidden)
    and a placeholder for the inventory."""
    cli = cli or {}
    words = ["ansible-playbook", "-i", INVENTORY, shlex.quote(playbook_for(target, cli))]
    if cli.get("limit"):
        words += ["--limit", shlex.quote(str(cli["limit"]))]
    for raw in cli.get("extra_vars") or ():
        words += _extra_var_args(raw)
    return " ".join(words)


# --------------------------------------------------------------------------- pieces of lines

def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def _label(name, check_mode):
    return "%s (check mode)" % name if check_mode else name


class _Summary(object):
    def __init__(self, run):
        self.run = run
        self.check = bool(run.get("check_mode"))
        self.run_tags = list(run.get("run_tags") or ["all"])
        self.skip_tags = list(run.get("skip_tags") or [])
        self.mastodon = run.get("app") == "mastodon"
        self.lines = []
        self.todo = []
        self.backups = []

    def add(self, line):
        self.lines.append(line)

    def selected(self, tag):
        return selected(tag, self.run_tags, self.skip_tags)

    def skipped_by_tags(self):
        return not_selected_reason(self.run_tags, self.skip_tags)

    def label(self, name):
        return _label(name, self.check)


# --------------------------------------------------------------------------- migrate.yml

def _bucket_line(s):
    run = s.run
    where = "bucket: %s at %s" % (run.get("bucket"), run.get("endpoint"))
    result = run.get("bucket_result")
    if not s.selected("bucket"):
        return "%s - %s" % (where, s.skipped_by_tags())
    if not ran(result):
        return "%s - not created or checked by this run" % where
    if not result.get("existed", True):
        return "%s - %s" % (where, "would be created" if s.check else "created")
    return "%s - already there%s" % (where, " (policy, ACL and CORS set)" if result.get("changed") and not s.check
                                     else "")


def _nginx_line(s):
    run = s.run
    state = run.get("nginx_state")
    if not s.selected("nginx"):
        return "nginx: %s" % s.skipped_by_tags()
    if not isinstance(state, dict):
        return "nginx: not run"
    where = run.get("media_domain") or run.get("domain")
    if state.get("exists"):
        line = "%s: the proxy for %s was already in place%s" % (
            s.label("nginx"), where, "; any change is in the diff above" if s.check else " (updated where its settings changed)")
    else:
        line = "%s: the proxy for %s %s" % (s.label("nginx"), where, "would be put in place" if s.check else "put in place")
    # A check run writes nothing, so the verify phase's second nginx run (local files verified in the bucket:
    # the bucket alone decides) is said here instead of printing every file's diff a second time.
    bucket_only = state.get("exists") and not state.get("local_first", True)
    if s.check and run.get("copy_local") and run.get("nginx_conf") and not bucket_only:
        line += "; after the verify, %s is rewritten without the local-first lookup in %s (from then on the bucket " \
                "alone decides; local files stay on disk)" % (run["nginx_conf"], run.get("system_root"))
    return line


def _copy_line(s, name):
    run = s.run
    if not s.selected("copy"):
        return "%s: %s" % (name, s.skipped_by_tags())
    if run.get("bucket_missing"):
        if name != "copy pass 1":
            return None  # said once, on pass 1's line
        rows = run.get("db_rows")
        return ("copy (check mode): the bucket does not exist yet, so the copy passes, the verify and the retirement's "
                "verify were not tried; a real run copies every object of the %s DB rows in scope %s"
                % ("?" if rows in (None, "") else rows, ", ".join(run.get("copy_scope") or [])))
    result = (run.get("passes") or {}).get(name)
    if not isinstance(result, dict):
        return "%s: did not run" % name
    extra = [words for words in (estimate_words(result) if s.check else pace_words(result),) if words]
    return "%s: %s" % (s.label(name), "; ".join([copy_counts(result, s.check)] + extra))


def _config_line(s):
    run = s.run
    if not s.selected("config"):
        return "config: %s - the app was not switched by this run" % s.skipped_by_tags()
    path = run.get("config_file")
    app_config = run.get("app_config")
    kept = run.get("kept_original")
    if ran(kept) and kept.get("original") and not (s.check and kept.get("changed")):  # none kept yet in check mode
        s.backups.append("original configuration: %s" % kept["original"])
    if isinstance(app_config, dict) and app_config.get("backup_file") and not s.check:
        s.backups.append("timestamped backup of %s: %s" % (path, app_config["backup_file"]))
    if not s.mastodon:
        return "%s: Misskey's storage settings %s (see the changes above)" % (
            s.label("config"), "would point at the bucket" if s.check else "point at the bucket")
    if not ran(app_config):
        return "config: %s was not changed" % path
    keys = ", ".join(app_config.get("changed_keys") or [])
    if app_config.get("changed"):
        if s.check:
            return "config (check mode): %s would be pointed at the bucket (%s) and Mastodon restarted" % (path, keys)
        return "config: %s now points at the bucket (%s); Mastodon restarted" % (path, keys)
    return "%s: %s already points at the bucket (unchanged)" % (s.label("config"), path)


def _verify_line(s):
    run = s.run
    if not s.selected("verify"):
        return "verify: %s" % s.skipped_by_tags()
    if not s.mastodon:
        check = run.get("misskey_check")
        if ran(check):
            return "verify: an object written with Misskey's stored settings was fetched through its URL"
        return "verify: %s" % ("not in check mode (nothing is written)" if s.check else "did not run")
    if run.get("bucket_missing"):
        return None  # said on the copy line
    result = (run.get("passes") or {}).get("verify")
    if not isinstance(result, dict):
        return "verify: did not run"
    missing, different = int(result.get("missing_in_bucket") or 0), int(result.get("different_size") or 0)
    totals = result.get("totals") or {}
    if result.get("verified"):
        tail = "; the proxy serves the bucket only" if "local" in (run.get("copy_scope") or []) and not s.check else ""
        return "%s: all %s in scope are in the bucket%s" % (
            s.label("verify"), _plural(int(totals.get("objects") or 0), "object"), tail)
    if s.check:
        return "verify (check mode): %d object(s) not in the bucket yet, %d of another size (a run copies them first)" % (
            missing, different)
    return "verify: %d object(s) missing from the bucket, %d of another size" % (missing, different)


def _retire_line(s):
    run = s.run
    cache = posixpath.join(str(run.get("system_root") or "public/system"), "cache")
    old = cache + ".old"
    if not s.selected("retire"):
        return "retire: %s - %s stays in place" % (s.skipped_by_tags(), cache)
    result, problem = run.get("retire_result"), (run.get("retire_problem") or "").strip()
    if result is None and run.get("bucket_missing") and run.get("retire_cache", True):
        # check mode before the bucket exists: the retirement's verify cannot run
        return "retire (check mode): %s would be moved to %s after a full verify" % (cache, old)
    if result is None and not problem:
        if not run.get("retire_cache", True):
            return "retire: off (migrate_retire_cache is false) - %s stays in place" % cache
        return "retire: did not run - %s stays in place" % cache
    if not ran(result):
        if int(run.get("shard_count") or 1) > 1:
            s.todo.append("run the other shards (migrate_shard_index) to the end: the last one to find every "
                          "object in the bucket retires %s" % cache)
            return ("retire: not done by shard %s of %s - %s; %s stays in place" % (
                run.get("shard_index", 0), run.get("shard_count"), problem or "another shard is not complete", cache))
        return "retire: not done - %s; %s stays in place" % (problem or "the bucket is not complete", cache)
    delete = run.get("delete_result")
    deleted = ran(delete) and delete.get("changed")
    state = result.get("state")
    if result.get("changed"):
        line = ("retire (check mode): %s would be moved to %s after a full verify" % (cache, old) if s.check
                else "retire: %s moved to %s (nothing deleted)" % (cache, old))
    elif state in ("old",) or "already retired" in str(result.get("msg", "")):
        line = "%s: %s was already retired to %s (an earlier run)" % (s.label("retire"), cache, old)
    else:
        line = "%s: nothing to retire (%s)" % (s.label("retire"), result.get("msg") or "no cache")
    if deleted:
        line += "; %s %s (%s files, each checked in the bucket)" % (
            old, "would be deleted" if s.check else "deleted", delete.get("files", "?"))
    elif not s.check and (result.get("changed") or state == "old"):
        s.backups.append("retired cache: %s (the rollback moves it back)" % old)
        s.todo.append("once satisfied, delete %s with -e migrate_delete_old_cache=true (every file is checked in the "
                      "bucket first), or keep it" % old)
    return line


def _software_line(s):
    """What misskey_info found in package.json: Misskey or which fork, and whose upload code is followed."""
    found = s.run.get("misskey_found")
    if not ran(found) or not found.get("version"):
        return None
    fork = found.get("fork") or "Misskey"
    own = found.get("fork_version") or found.get("version")
    line = "software: %s %s" % (fork, own)
    if found.get("fork_note"):
        line += " (%s)" % found["fork_note"]
    if found.get("upstream_version") and found["upstream_version"] != own:
        line += "; based on Misskey %s" % found["upstream_version"]
    if found.get("upload_headers"):
        line += "; moved files get the upload headers of %s" % found.get("upload_headers_source", found["upload_headers"])
    return line


def _url_column_lines(s, moved):
    """Which URL columns the drive move rewrites in this database, which it leaves and why (issue 23)."""
    columns = moved.get("url_columns") or {}
    if not columns:
        return []
    verb = "would be rewritten" if s.check else "rewritten"
    lines = ["%s: URL columns %s: %s" % (s.label("move"), verb, ", ".join(columns.get("rewritten") or []) or "none")]
    reasons = {}
    for item in columns.get("left") or []:
        reasons.setdefault(item.get("why", "?"), []).append(item.get("column", "?"))
    for why, names in reasons.items():
        lines.append("%s: URL columns left: %s (%s)" % (s.label("move"), ", ".join(names), why))
    return lines


def _misskey_move_line(s):
    run = s.run
    moved = run.get("misskey_move")
    if not ran(moved):
        return None
    stats = moved.get("stats") or {}
    return "%s: %s of %s local drive files %s to the bucket; %s missing on disk, %s refused as unsafe%s" % (
        s.label("move"), stats.get("moved", "?"), stats.get("candidates", "?"), "would be moved" if s.check else "moved",
        stats.get("missing", 0), stats.get("unsafe", 0),
        "; upload headers of generation %s" % moved["upload_headers"] if moved.get("upload_headers") else "")


def _still_to_do(s):
    run = s.run
    todo = []
    if s.check:
        todo.append("run it again without --check to apply it")
    phases = ("bucket", "nginx", "copy", "config", "verify", "retire")
    if not s.mastodon:
        phases = ("bucket", "nginx", "config", "verify")
    skipped = [p for p in phases if not s.selected(p)]
    if skipped and not s.check:
        todo.append("run it without --tags/--skip-tags to finish; these phases did not run: %s" % ", ".join(skipped))
    todo += s.todo
    media_url = run.get("media_url")
    if run.get("proxy_mode") == "subdomain" and run.get("media_domain"):
        todo.append("DNS: %s must resolve to this server (an A/AAAA or CNAME record)" % run["media_domain"])
        todo.append("certificate: %s needs its own certificate, renewed like the app's (e.g. certbot certonly --webroot "
                    "-d %s)" % (run["media_domain"], run["media_domain"]))
    if not s.check:
        todo.append("CDN: if a CDN serves %s, keep this server as its origin and purge the errors it cached" % media_url)
    if s.mastodon:
        if s.check:
            todo.append("Mastodon: run `%s` now (live directory, as the mastodon user) and keep its figures, to "
                        "compare after the migration" % TOOTCTL)
        else:
            todo.append("Mastodon: compare `%s` (live directory, as the mastodon user) with its figures from before "
                        "the migration" % TOOTCTL)
    return todo


def migrate_summary(run):
    """The lines of migrate.yml's summary (a list of strings)."""
    s = _Summary(run)
    app, domain = run.get("app"), run.get("domain")
    if s.check:
        head = "%s on %s (check mode: nothing was changed; each line says what a run would do)" % (app, domain)
    elif s.run_tags != ["all"] or s.skip_tags:
        head = "%s on %s (only some phases ran: %s)" % (
            app, domain, " ".join(filter(None, ["--tags " + ",".join(s.run_tags) if s.run_tags != ["all"] else "",
                                                "--skip-tags " + ",".join(s.skip_tags) if s.skip_tags else ""])))
    else:
        head = "%s on %s" % (app, domain)
    s.add(head)
    s.add("media URLs: %s/... through the nginx proxy cache (mode %s)" % (run.get("media_url"), run.get("proxy_mode")))
    s.add(_bucket_line(s))
    s.add(_nginx_line(s))
    if s.mastodon:
        s.add(_copy_line(s, "copy pass 1"))
    s.add(_config_line(s))
    if s.mastodon and _copy_line(s, "copy pass 2"):
        s.add(_copy_line(s, "copy pass 2"))
    for extra in (None if s.mastodon else _software_line(s), _verify_line(s), _misskey_move_line(s)):
        if extra:
            s.add(extra)
    if not s.mastodon and ran(run.get("misskey_move")):
        for extra in _url_column_lines(s, run["misskey_move"]):
            s.add(extra)
    if s.mastodon:
        s.add(_retire_line(s))
    todo = _still_to_do(s)
    for backup in s.backups:
        s.add("backup: %s" % backup)
    s.add("to undo%s: %s" % (" (after a real run)" if s.check else "", command("rollback", run.get("cli"))))
    for item in todo:
        s.add("still to do: %s" % item)
    return s.lines


# --------------------------------------------------------------------------- rollback.yml

def rollback_summary(run):
    """The lines of rollback.yml's summary (a list of strings)."""
    s = _Summary(run)
    app, domain = run.get("app"), run.get("domain")
    s.add("%s on %s: rollback%s" % (app, domain, " (check mode: nothing was changed; each line says what a run would do)"
                                    if s.check else ""))
    cache = posixpath.join(str(run.get("system_root") or "public/system"), "cache")
    original = run.get("original") or {}
    found = bool(original.get("found"))
    if s.mastodon:
        restore = run.get("restore_result")
        if ran(restore) and restore.get("changed"):
            moved = "would be moved back to" if s.check else "moved back to"
            s.add("%s: %s.old %s %s" % (s.label("cache"), cache, moved, cache))
        elif ran(restore):
            s.add("cache: nothing to move back (%s)" % (restore.get("msg") or "no cache.old"))
        back = (run.get("passes") or {}).get("copy back")
        if isinstance(back, dict) and found:
            totals = back.get("totals") or {}
            s.add("%s: %s only in the bucket %s to %s, %s already on disk, %s in neither place, %s failed" % (
                s.label("copy back"), _plural(int(totals.get("copied") or 0), "object"),
                "would be written back" if s.check else "written back", run.get("system_root"),
                int(totals.get("skipped") or 0), int(totals.get("missing_source") or 0), int(totals.get("failed") or 0)))
        elif not found:
            s.add("copy back: not needed (no original kept: the app was never switched to the bucket)")
    restored = run.get("restored")
    path = run.get("config_file")
    if found:
        if ran(restored) and restored.get("changed"):
            s.add("%s: %s %s from the original kept by the migration (%s)" % (
                s.label("config"), path, "would be restored" if s.check else "restored", original.get("original")))
            if restored.get("backup_file"):
                s.backups.append("the switched %s, backed up before the restore: %s" % (path, restored["backup_file"]))
        else:
            s.add("config: %s is already the original (unchanged)" % path)
        s.backups.append("original configuration kept by the migration: %s" % original.get("original"))
    elif s.mastodon:
        s.add("config: no original kept by the migration at %s: nothing restored" % original.get("original", path))
    drive = run.get("drive_back")
    if ran(drive):
        s.add("%s: Misskey's drive rows changed by the file move %s%s" % (
            s.label("files"), "would be put back" if s.check else "put back" if drive.get("changed") else "already back",
            "; %s purged file(s) written back from the bucket" % drive["written_back"] if drive.get("written_back") else ""))
        if drive.get("still_moved"):
            s.todo.append("%s drive file(s) still point at the bucket (changed since the move): deal with them, then run "
                          "the rollback again" % drive["still_moved"])
    meta = run.get("meta_off")
    if ran(meta):
        s.add("%s: Misskey's object storage settings %s" % (
            s.label("config"), ("would be put back" if s.check else "put back") if meta.get("changed") else "were already off"))
    changed = any(ran(r) and r.get("changed") for r in (restored, meta, drive))
    s.add("%s: %s" % (s.label("app"), ("would be restarted" if s.check else "restarted") if changed
                      else "not restarted (its configuration did not change)"))
    where = run.get("media_url")
    if run.get("remove_proxy"):
        s.add("%s: proxy %s - media URLs %s/... handed to other servers answer 404 there" % (
            s.label("nginx"), "would be removed" if s.check else "removed", where))
        if run.get("proxy_mode") == "subdomain" and run.get("media_domain"):
            s.todo.append("DNS: the record of %s may go now (the proxy is removed)" % run["media_domain"])
    else:
        s.add("%s: proxy kept (local files first, then the bucket): media URLs %s/... keep answering" % (
            s.label("nginx"), where))
        s.todo.append("remove the proxy later, once those URLs may break: %s" % command(
            "rollback", dict(run.get("cli") or {}, extra_vars=list((run.get("cli") or {}).get("extra_vars") or ())
                             + ["migrate_rollback_remove_proxy=true"])))
    s.add("bucket: %s left as it is (nothing deleted)" % run.get("bucket"))
    for backup in s.backups:
        s.add("backup: %s" % backup)
    if s.check:
        s.todo.insert(0, "run it again without --check to apply it")
    if s.mastodon:
        s.todo.append("Mastodon: compare `%s` (live directory, as the mastodon user) with its figures from before the "
                      "migration" % TOOTCTL)
    s.todo.append("to migrate again later: %s" % command("migrate", run.get("cli")))
    for item in s.todo:
        s.add("still to do: %s" % item)
    return s.lines
