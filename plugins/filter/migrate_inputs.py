# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""migrate_input_problems and migrate_words: migrate.yml's input checks (module_utils/migrate/inputs.py)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.inputs import (
    in_user_words,
    input_problems,
)


def migrate_input_problems(values):
    """{variable: message} in the checks' order (one message per variable)."""
    return dict(input_problems(dict(values)))


def migrate_words(message):
    return in_user_words(message)


class FilterModule(object):
    def filters(self):
        return {"migrate_input_problems": migrate_input_problems, "migrate_words": migrate_words}
