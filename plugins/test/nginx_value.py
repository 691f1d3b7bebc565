# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_value: whether a value can be rendered into nginx's configuration (module_utils/nginx_values.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible.errors import AnsibleError

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx_values import is_valid


def nginx_value(value, kind):
    try:
        return is_valid(value, kind)
    except ValueError as exc:
        raise AnsibleError(str(exc)) from exc


class TestModule(object):
    def tests(self):
        return {"nginx_value": nginx_value}
