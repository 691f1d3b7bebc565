# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters over module_utils/migrate/run_summary.py: the summaries of migrate.yml and rollback.yml."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible import context
from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate import run_summary


def _cli():
    """This run's playbooks, --limit and -e as given on the command line (inherited by the worker)."""
    args = context.CLIARGS
    return {"playbooks": list(args.get("args") or ()), "limit": args.get("subset") or "",
            "extra_vars": list(args.get("extra_vars") or ())}


def _summary(function, run):
    if not isinstance(run, dict):
        raise AnsibleFilterError("the summary needs a dict of the run's results, not %s" % type(run).__name__)
    run = dict(run)
    if not run.get("cli"):
        run["cli"] = _cli()
    return function(run)


def migrate_summary(run):
    return _summary(run_summary.migrate_summary, run)


def rollback_summary(run):
    return _summary(run_summary.rollback_summary, run)


class FilterModule(object):
    def filters(self):
        return {"migrate_summary": migrate_summary, "rollback_summary": rollback_summary}
