# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bench helper (not part of the collection): write each task's wall seconds, as the running play saw
them, to the JSON file named by BENCH_TASK_SECONDS. The benchmark reads the media_copy task's time:
what migrate's copy pass 2 costs inside the running migrate play, where ansible-playbook's own
start-up is paid once for the whole migration."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: task_seconds
type: aggregate
short_description: each task's wall seconds to a JSON file (benchmark helper)
description:
  - Writes a mapping of task name to seconds to the file named by the BENCH_TASK_SECONDS environment variable.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "task_seconds"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.started = {}
        self.seconds = {}

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started[task._uuid] = (task.get_name(), time.monotonic())

    def _done(self, result, **kwargs):
        name, start = self.started.get(result._task._uuid, (result._task.get_name(), None))
        if start is not None:
            self.seconds[name] = round(time.monotonic() - start, 3)

    v2_runner_on_ok = v2_runner_on_failed = v2_runner_on_skipped = _done

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("BENCH_TASK_SECONDS")
        if path:
            with open(path, "w") as fh:
                json.dump(self.seconds, fh)
