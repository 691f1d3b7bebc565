"""The harness stops what it starts, whatever happens: stop(), SIGTERM, SIGKILL of the test process
(the reaper), and the CLI's up/down used by the demo and molecule. Also: leftovers are detectable."""

import json
import os
import signal
import stat
import subprocess
import sys
import urllib.request

from tests.services import procs
from tests.services.base import wait_for
from tests.services.nginx import Nginx

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = r"""
import json, sys, time
sys.path.insert(0, %(repo)r)
from tests.services.postgres import Postgres
from tests.services.nginx import Nginx
pg = Postgres().start()
ng = Nginx()
ng.write_config("location / {\n    return 204;\n}\n", wrap=True)
ng.start()
print(json.dumps({"workdirs": [pg.workdir, ng.workdir], "pg_port": pg.port, "nginx_port": ng.port}), flush=True)
time.sleep(600)
"""


def _start_child():
    proc = subprocess.Popen([sys.executable, "-c", CHILD % {"repo": REPO}], stdout=subprocess.PIPE, text=True, cwd=REPO)
    line = proc.stdout.readline()
    assert line, "the child did not start its services (rc=%s)" % proc.poll()
    info = json.loads(line)
    pids = [r["pid"] for w in info["workdirs"] for r in procs.pid_records(w)]
    assert len(pids) == 2 and all(procs.pid_alive(p) for p in pids)
    return proc, info, pids


def _assert_all_gone(info, pids, timeout=30):
    wait_for(lambda: not any(procs.pid_alive(p) for p in pids), timeout, "daemons %s to stop" % pids)
    wait_for(lambda: not any(os.path.exists(w) for w in info["workdirs"]), 10, "workdirs to be removed")
    for w in info["workdirs"]:
        assert not procs.marker_processes(w)


def test_leftover_detection_sees_a_running_daemon(nginx_factory):
    nginx = nginx_factory()
    nginx.write_config("location / {\n    return 204;\n}\n", wrap=True)
    nginx.start()
    pid = nginx.pid
    assert pid in [p for p, _cmd in procs.marker_processes()]
    assert nginx.workdir in procs.marker_dirs()
    out = subprocess.run([sys.executable, "-m", "tests.services", "leftovers", "--no-containers"], cwd=REPO,
                         capture_output=True, text=True, check=False)
    assert out.returncode == 1 and str(pid) in out.stdout
    nginx.stop()
    assert not procs.pid_alive(pid)
    assert pid not in [p for p, _cmd in procs.marker_processes()]


def test_sigkilled_test_process_is_cleaned_up_by_the_reaper():
    proc, info, pids = _start_child()
    proc.kill()  # SIGKILL: no atexit, no fixture teardown
    proc.wait()
    _assert_all_gone(info, pids)


def test_sigterm_stops_services():
    proc, info, pids = _start_child()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    # stopped by the process itself, not only by the reaper: gone as soon as it exited
    assert not any(procs.pid_alive(p) for p in pids)
    _assert_all_gone(info, pids, timeout=5)


def test_stop_is_by_pid_and_checks_the_command_line():
    """A recorded PID that now runs something else (PID reuse) is not killed."""
    other = subprocess.Popen(["sleep", "30"])
    try:
        nginx = Nginx()
        nginx.record("nginx", other.pid)
        nginx.stop()
        assert other.poll() is None, "an unrelated process was killed"
        assert not os.path.exists(nginx.workdir)
    finally:
        other.kill()
        other.wait()


def test_cli_up_down(tmp_path):
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client

    state = tmp_path / "state"
    up = subprocess.run([sys.executable, "-m", "tests.services", "up", "--state-dir", str(state),
                         "ceph", "postgres", "nginx"], cwd=REPO, capture_output=True, text=True, check=False)
    data = json.loads((state / "services.json").read_text()) if (state / "services.json").exists() else None
    try:
        assert up.returncode == 0, up.stderr
        assert json.loads(up.stdout) == data
        assert stat.S_IMODE(os.stat(state / "services.json").st_mode) == 0o600  # keys and passwords inside
        svc = data["services"]
        pids = [r["pid"] for s in svc.values() for r in procs.pid_records(s["workdir"])]
        assert len(pids) == 5  # ceph-mon, ceph-osd, radosgw, postgres, nginx
        # the CLI has exited; the services run on
        ceph = svc["ceph"]
        client = s3_client(ceph["https_endpoint"], access_key=ceph["access_key"], secret_key=ceph["secret_key"],
                           ca_bundle=ceph["ca_bundle"])
        client.create_bucket(Bucket="fos-cli")
        client.put_object(Bucket="fos-cli", Key="k", Body=b"v")
        assert client.get_object(Bucket="fos-cli", Key="k")["Body"].read() == b"v"
        import psycopg2

        conn = psycopg2.connect(svc["postgres"]["dsn"])
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        conn.close()
        with urllib.request.urlopen(svc["nginx"]["url"] + "/", timeout=10) as resp:
            assert resp.read() == b"fos-test nginx\n"
        again = subprocess.run([sys.executable, "-m", "tests.services", "up", "--state-dir", str(state), "nginx"],
                               cwd=REPO, capture_output=True, text=True, check=False)
        assert again.returncode != 0 and "already up" in again.stderr
        start = {k: s["start_seconds"] for k, s in svc.items()}
        print("CLI start times: %s" % start)
    finally:
        down = subprocess.run([sys.executable, "-m", "tests.services", "down", "--state-dir", str(state)], cwd=REPO,
                              capture_output=True, text=True, check=False)
    assert down.returncode == 0, down.stderr
    assert not any(procs.pid_alive(p) for p in pids)
    assert not any(os.path.exists(s["workdir"]) for s in svc.values())
    assert not (state / "services.json").exists()


def test_failed_start_is_cleaned_up_and_retried_on_new_ports():
    from tests.services.base import ServiceError
    from tests.services.postgres import Postgres

    attempts = []

    class FlakyPostgres(Postgres):
        def _start(self):
            super()._start()
            attempts.append((self.port, [r["pid"] for r in procs.pid_records(self.workdir)]))
            if len(attempts) == 1:
                raise ServiceError("simulated: port taken by a parallel session")

    pg = FlakyPostgres().start()
    try:
        assert len(attempts) == 2
        first_pids = attempts[0][1]
        assert first_pids and not any(procs.pid_alive(p) for p in first_pids)  # the failed attempt was stopped
        assert pg.execute("SELECT 1") == [(1,)]
        assert [r["pid"] for r in procs.pid_records(pg.workdir)] == attempts[1][1]
    finally:
        pg.stop()
    assert not os.path.exists(pg.workdir)
