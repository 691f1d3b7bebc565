# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_proxy_problems: the nginx_proxy role's failed input checks (module_utils/nginx/inputs.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.inputs import nginx_proxy_problems


class FilterModule(object):
    def filters(self):
        return {"nginx_proxy_problems": nginx_proxy_problems}
