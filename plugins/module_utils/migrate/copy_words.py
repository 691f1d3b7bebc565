# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a copy pass did, in words: its counts, the pace it held, check mode's estimate of its time.

Plain Python (no Ansible import); the summaries of migrate.yml and rollback.yml (migrate/run_summary.py) put
these words in their copy lines. Unit-tested in tests/unit/test_run_summary.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity


def _plural(count, word):
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def copy_counts(result, check_mode=False):
    """``34 objects: 0 copied, 13 already in the bucket, 21 in cache.old (retired), 0 missing on disk, 0 failed``."""
    totals = (result or {}).get("totals") or result or {}
    n = dict((k, int(totals.get(k) or 0)) for k in ("objects", "copied", "skipped", "retired", "missing_source", "failed"))
    parts = ["%d %s" % (n["copied"], "would be copied" if check_mode else "copied"),
             "%d already in the bucket" % n["skipped"]]
    if n["retired"]:
        parts.append("%d in cache.old (retired, in the bucket)" % n["retired"])
    parts += ["%d missing on disk" % n["missing_source"], "%d failed" % n["failed"]]
    return "%s: %s" % (_plural(n["objects"], "object"), ", ".join(parts))


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 120:
        return "%d s" % seconds
    if seconds < 7200:
        return "%d min" % round(seconds / 60.0)
    return "%.1f h" % (seconds / 3600.0)


def pace_words(result):
    """``paced at 144 requests/s held, the gateway pushed back 9 times (503 SlowDown)``, or ''."""
    pacing = (result or {}).get("pacing") or {}
    if not pacing.get("held_rate"):
        return ""
    throttled = int(pacing.get("throttled") or 0)
    return "%.0f requests/s held, the gateway pushed back %s" % (
        pacing["held_rate"], "%s (503 SlowDown)" % _plural(throttled, "time") if throttled else "never")


def estimate_words(result):
    """Check mode's plan: ``about 31 s at 150 requests/s (max_requests_per_second); the bucket will hold 18.4 MB``."""
    plan = (result or {}).get("estimate")
    if not isinstance(plan, dict):
        return ""
    storage = "the bucket will hold %.1f MB of these media" % ((plan.get("bucket_bytes") or 0) / 1e6)
    if not plan.get("seconds") and plan.get("seconds") != 0:
        return "%.1f MB to copy, time unknown (%s); %s" % ((plan.get("bytes") or 0) / 1e6, plan.get("rate_from"), storage)
    return "%.1f MB to copy in about %s (%d requests at %.0f requests/s: %s); %s" % (
        (plan.get("bytes") or 0) / 1e6, _duration(plan["seconds"]), plan.get("requests") or 0, plan["rate"],
        plan.get("rate_from"), storage)
