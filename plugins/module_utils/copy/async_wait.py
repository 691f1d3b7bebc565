# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait on the app host for an async job (``async: N``, ``poll: 0``) to finish, for media_copy_wait.

Plain Python (no Ansible import), unit-tested in tests/unit/test_async_wait.py.

The controller used to poll: ``async_status`` and a ``slurp`` of the progress file each time, first
after 0.25 s, then 0.5 s, 1 s... up to the interval, so a 1-second job was seen finished only a
second or so later, after several module runs (each a connection and a Python start on the host).
Here one module run watches the job's status file on the host every ``POLL`` seconds, and returns as
soon as the job has finished, or after ``wait`` seconds with the latest progress document (the
controller prints a progress line and calls again).

The status file is read as ``async_status`` reads it (ansible-core's modules/async_status.py): the
async wrapper writes ``{"started": 1, "finished": 0, ...}``, then replaces it (rename) with the
module's result, which has no ``started`` key; an empty or half-written file means "still running".
Neither file is opened through a symbolic link.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import errno
import json
import os
import re
import time

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import AtomicWriteError, read_bytes

POLL = 0.05
MAX_FILE_BYTES = 64 * 1024 * 1024
# What the async wrapper makes: "j" + digits "." digits (ansible-core), or any plain name without a path.
_JID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class WaitError(Exception):
    """The job cannot be waited for (bad id, no such job, unreadable status)."""


def _read_nofollow(path, limit=MAX_FILE_BYTES):
    """The bytes of ``path``; None when it does not exist. Never through a link (atomic.read_bytes)."""
    try:
        return read_bytes(path, limit)
    except AtomicWriteError as exc:  # a link, not a regular file, too large
        raise WaitError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise WaitError("cannot read %s: %s" % (path, exc.strerror or exc)) from None


def job_status(async_dir, jid):
    """``(finished, data)`` of job ``jid``: ``data`` is the module's result once finished."""
    if not jid or not _JID.match(jid) or ".." in jid:
        raise WaitError("job id %r is not one the async wrapper makes" % (jid,))
    raw = _read_nofollow(os.path.join(async_dir, jid))
    if raw is None:
        raise WaitError("could not find job %s in %s" % (jid, async_dir))
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        data = None  # being written: still running (async_status says the same of an empty file)
    if not isinstance(data, dict):
        return False, None
    if "started" not in data:
        return True, data
    return bool(data.get("finished")), data


def read_progress(path):
    """The progress document (media_copy's progress_file), or None (absent, a link, or half-written)."""
    if not path:
        return None
    try:
        raw = _read_nofollow(path, limit=4 * 1024 * 1024)
    except WaitError:
        return None
    try:
        data = json.loads(raw.decode("utf-8")) if raw else None
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def wait_for_job(async_dir, jid, progress_file=None, wait=10.0, poll=POLL, clock=time.monotonic, sleep=time.sleep):
    """Block until job ``jid`` finishes or ``wait`` seconds pass.

    Returns ``{"finished": bool, "job": <its result, when finished>, "progress": <the progress document
    or None>, "waited": seconds}``.
    """
    start = clock()
    deadline = start + max(0.0, float(wait))
    while True:
        finished, data = job_status(async_dir, jid)
        if finished or clock() >= deadline:
            out = {"finished": finished, "progress": read_progress(progress_file),
                   "waited": round(clock() - start, 3)}
            if finished:
                out["job"] = data
            return out
        sleep(max(0.0, min(poll, deadline - clock())))
