# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""media_plan: where the media are served (module_utils/migrate/media_plan.py), for the roles."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.media_plan import (
    MediaPlanError,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.media_plan import (
    media_plan as _media_plan,
)


def media_plan(values):
    try:
        return _media_plan(dict(values))
    except MediaPlanError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"media_plan": media_plan}
