# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait for an async media_copy job and print its progress lines while it runs.

Runs on the controller and calls the media_copy_wait module on the app host, which watches the
job's status file there (module_utils/copy/async_wait.py) and returns as soon as the job has finished, or
after at most ``interval`` seconds with the job's ``progress_file``: one progress line is printed per
change (done/total, MB/s, ETA), and the module is called again. Returns the finished job's result,
as ``async_status`` would.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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

    def _wait(self, args, async_dir, wait, task_vars):
        """One call of the module on the host: back when the job finished, or after ``wait`` seconds."""
        return self._execute_module(module_name="fediverse.object_storage.media_copy_wait", task_vars=task_vars,
                                    module_args={"jid": args["jid"], "progress_file": args["progress_file"],
                                                 "interval": wait, "async_dir": async_dir})

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
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        last_line = None
        # The first progress line after 1 s, then 2 s, 4 s ... up to ``interval``; each call returns at once
        # when the job finishes (issue 15: a short pass is seen finished within ~50 ms, in one module run).
        pause = 1.0
        polls = 0
        while True:
            wait = min(max(min(pause, args["interval"]), 0.2), max(0.0, deadline - time.time()))
            answer = self._wait(args, async_dir, wait, task_vars)
            polls += 1
            if answer.get("failed"):
                answer.pop("finished", None)
                answer.pop("invocation", None)
                result.update(answer, polls=polls)
                return result
            progress = answer.get("progress")
            if progress and args["progress_file"] and not answer.get("finished"):
                line = progress_line(args["label"], progress)
                if line != last_line:
                    display.display(line)
                    last_line = line
            if answer.get("finished"):
                break
            if time.time() >= deadline:
                result.update(failed=True, polls=polls, msg="the copy did not finish within %s seconds (job %s is "
                              "still running)" % (args["timeout"], args["jid"]))
                return result
            pause *= 2
        status = answer.get("job") or {}
        for key in ("started", "finished", "results_file", "ansible_job_id", "_ansible_suppress_tmpdir_delete"):
            status.pop(key, None)
        result.update(status)
        result["polls"] = polls
        return result
