# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filter over module_utils/misskey/files_fallback.py: the checked values of the /files/ fallback."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.files_fallback import (
    fallback_values,
)


def misskey_files_fallback(base_url, prefix, upstream, snippet_file):
    return fallback_values(base_url, prefix, upstream, snippet_file)


class FilterModule(object):
    def filters(self):
        return {"misskey_files_fallback": misskey_files_fallback}
