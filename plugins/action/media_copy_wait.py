# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for an async media_copy job and print its progress lines while it runs.

Runs on the controller: polls ``async_status`` on the app host and reads the job's
``progress_file`` there (slurp), printing one line per change (done/total, MB/s, ETA).
Returns the finished job's result, as ``async_status`` would.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import time

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()


def format_eta(seconds):
    if seconds is None:
        return "?"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return "%dh%02dm%02ds" % (hours, minutes, secs) if hours else "%dm%02ds" % (minutes, secs)


def progress_line(label, progress):
    """One human line from a media_copy progress document."""
    rate = progress.get("rate") or {}
    return "%s: %s/%s objects (%.1f%%), %d copied, %d skipped, %d failed, %d missing, %.1f MB/s, ETA %s" % (
        label,
        progress.get("done", 0),
        progress.get("total", "?"),
        float(progress.get("percent") or 0.0),
        progress.get("copied", 0),
        progress.get("skipped", 0),
        progress.get("failed", 0),
        progress.get("missing_source", 0),
        float(rate.get("bytes_per_second") or 0.0) / 1e6,
        format_eta(progress.get("eta_seconds")),
    )


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("jid", "progress_file", "interval", "timeout", "label"))

    def _status(self, jid, task_vars):
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        return self._execute_module(module_name="ansible.legacy.async_status", task_vars=task_vars,
                                    module_args={"jid": jid, "mode": "status", "_async_dir": async_dir})

    def _progress(self, path, task_vars):
        answer = self._execute_module(module_name="ansible.legacy.slurp", task_vars=task_vars,
                                      module_args={"src": path})
        if answer.get("failed") or "content" not in answer:
            return None
        try:
            return json.loads(base64.b64decode(answer["content"]).decode("utf-8"))
        except ValueError:
            return None

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=dict(
            jid=dict(type="str", required=True),
            progress_file=dict(type="str"),
            interval=dict(type="float", default=10.0),
            timeout=dict(type="int", default=86400),
            label=dict(type="str", default="media copy"),
        ))
        deadline = time.time() + args["timeout"]
        last_line = None
        # A short or no-op copy ends in a second or two: poll at 0.25 s, 0.5 s, 1 s ... up to
        # ``interval``, instead of sleeping a whole interval first (issue 15: a fixed cost per pass).
        pause = 0.25
        while True:
            status = self._status(args["jid"], task_vars)
            if status.get("finished") or (status.get("failed") and not status.get("started")):
                break
            if args["progress_file"]:
                progress = self._progress(args["progress_file"], task_vars)
                if progress:
                    line = progress_line(args["label"], progress)
                    if line != last_line:
                        display.display(line)
                        last_line = line
            if time.time() > deadline:
                result.update(failed=True, msg="the copy did not finish within %s seconds (job %s is still running)"
                              % (args["timeout"], args["jid"]))
                return result
            time.sleep(max(min(pause, args["interval"]), 0.2))
            pause *= 2
        for key in ("started", "finished", "results_file", "ansible_job_id", "_ansible_suppress_tmpdir_delete"):
            status.pop(key, None)
        result.update(status)
        return result
