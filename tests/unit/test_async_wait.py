"""The host side of media_copy_wait (plugins/module_utils/copy/async_wait.py): one module run watches the async
job's status file and returns as soon as the job has finished (as async_status reads that file), or after
``wait`` seconds with the progress document; never through a link."""

import json
import os
import threading
import time

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import async_wait

JID = "j123456789.4242"


def write_json(path, data):
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh)
    os.rename(tmp, str(path))  # as the async wrapper does


def test_returns_soon_after_the_job_finishes(tmp_path):
    status = tmp_path / JID
    write_json(status, {"started": 1, "finished": 0, "ansible_job_id": JID})
    progress = tmp_path / "progress.json"
    write_json(progress, {"done": 3, "total": 10})
    finished_at = []

    def finish():
        time.sleep(0.4)
        write_json(status, {"changed": True, "totals": {"copied": 3}})
        finished_at.append(time.monotonic())

    thread = threading.Thread(target=finish)
    thread.start()
    answer = async_wait.wait_for_job(str(tmp_path), JID, str(progress), wait=30)
    returned = time.monotonic()
    thread.join()
    assert answer["finished"] is True and answer["job"] == {"changed": True, "totals": {"copied": 3}}
    assert answer["progress"] == {"done": 3, "total": 10}
    assert returned - finished_at[0] < 0.5  # the poll is 50 ms; the bound leaves room for a loaded machine
    assert answer["waited"] < 10


def test_returns_after_wait_with_the_progress_while_the_job_runs(tmp_path):
    write_json(tmp_path / JID, {"started": 1, "finished": 0, "ansible_job_id": JID})
    (tmp_path / "progress.json").write_text('{"done": 1')  # half-written: no progress, no error
    answer = async_wait.wait_for_job(str(tmp_path), JID, str(tmp_path / "progress.json"), wait=0.2)
    assert answer["finished"] is False and "job" not in answer and answer["progress"] is None
    assert answer["waited"] >= 0.2
    # an empty status file is a job still being written
    (tmp_path / JID).write_text("")
    assert async_wait.job_status(str(tmp_path), JID) == (False, None)


def test_a_failed_job_is_finished_with_its_result(tmp_path):
    write_json(tmp_path / JID, {"failed": True, "msg": "database: could not connect"})
    answer = async_wait.wait_for_job(str(tmp_path), JID, None, wait=5)
    assert answer["finished"] and answer["job"]["failed"] and answer["waited"] < 1


@pytest.mark.parametrize("jid", ["../etc/passwd", "", ".hidden", "a/b", "j1..2"])
def test_a_job_id_the_wrapper_does_not_make_is_refused(tmp_path, jid):
    with pytest.raises(async_wait.WaitError, match="job id"):
        async_wait.job_status(str(tmp_path), jid)


def test_links_are_never_read_and_a_missing_job_is_an_error(tmp_path):
    target = tmp_path / "elsewhere.json"
    write_json(target, {"changed": False})
    os.symlink(str(target), str(tmp_path / JID))
    with pytest.raises(async_wait.WaitError, match="symbolic link"):
        async_wait.job_status(str(tmp_path), JID)
    os.unlink(str(tmp_path / JID))
    with pytest.raises(async_wait.WaitError, match="could not find job"):
        async_wait.wait_for_job(str(tmp_path), JID, wait=0)
    write_json(tmp_path / JID, {"changed": False})
    os.symlink(str(target), str(tmp_path / "progress.json"))
    assert async_wait.wait_for_job(str(tmp_path), JID, str(tmp_path / "progress.json"), wait=0)["progress"] is None
