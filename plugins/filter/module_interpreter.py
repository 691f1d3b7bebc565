# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filter over module_utils/copy/interpreter.py: the Python interpreter Ansible runs modules with."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.interpreter import (
    DEFAULT_PYTHON,
    module_interpreter,
)


def module_interpreter_filter(configured, discovered=None, default=DEFAULT_PYTHON):
    try:
        return module_interpreter(configured, None if discovered is None else str(discovered), default)
    except TypeError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"module_interpreter": module_interpreter_filter}
