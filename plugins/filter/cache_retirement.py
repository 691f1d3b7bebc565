# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cache_retire_problem: whether Mastodon's cache may be retired (module_utils/mastodon/cache_retirement.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.cache_retirement import retire_problem


def cache_retire_problem(facts):
    facts = dict(facts)
    return retire_problem(facts.get("cache_state"), facts.get("verify"), facts.get("bucket"), facts.get("cache_dir"),
                          facts.get("env_file"))


class FilterModule(object):
    def filters(self):
        return {"cache_retire_problem": cache_retire_problem}
