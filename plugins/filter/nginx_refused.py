# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""nginx_refused: the values that cannot be rendered into nginx's configuration (module_utils/nginx/values.py).

A filter rather than a test: ansible-lint checks templates without the collection's test plugins."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.values import refused


def nginx_refused(values, kind):
    try:
        return refused(values, kind)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"nginx_refused": nginx_refused}
