# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters over module_utils/nginx/conf.py: what a live nginx (nginx -T) already serves,
and Mastodon's version from lib/mastodon/version.rb."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.conf import (
    conflicts,
    mastodon_version,
)


def nginx_conflicts(text, names=None, cache_path="", own_zone="", ignore_files=None):
    return conflicts(text, names or [], cache_path or "", own_zone or "", ignore_files or [])


def mastodon_version_filter(text):
    version = mastodon_version(text)
    return list(version) if version else []


class FilterModule(object):
    def filters(self):
        return {"nginx_conflicts": nginx_conflicts, "mastodon_version": mastodon_version_filter}
