"""Unit tests of the test-services harness's plain parts (no daemons): config wrapping, PID records,
stop escalation, leftover matching."""

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.services import procs
from tests.services.base import Service, free_port, make_workdir
from tests.services.nginx import wrap_config


def test_wrap_location_snippet_in_a_server_on_the_port():
    conf = wrap_config("location / {\n    return 204;\n}\n", "/tmp/fos-test-x", port=8123)
    assert "listen 127.0.0.1:8123;" in conf
    assert "        location / {" in conf
    assert "pid /tmp/fos-test-x/nginx.pid;" in conf
    assert "client_body_temp_path /tmp/fos-test-x/tmp/client_body;" in conf
    assert conf.count("{") == conf.count("}")


def test_wrap_server_block_goes_in_http_without_extra_server():
    conf = wrap_config("server {\n    listen 127.0.0.1:9;\n}\n", "/tmp/fos-test-x", port=8123)
    assert "listen 127.0.0.1:8123" not in conf
    assert "    server {" in conf and "http {" in conf


def test_wrap_full_config_is_unchanged_and_server_snippet_needs_a_port():
    full = "events {}\nhttp {\n}\n"
    assert wrap_config(full, "/tmp/p") == full
    with pytest.raises(ValueError):
        wrap_config("return 204;", "/tmp/p")


def test_extra_http_is_included():
    conf = wrap_config("return 204;", "/tmp/p", port=1, extra_http="proxy_cache_path /tmp/p/c keys_zone=z:1m;")
    assert "    proxy_cache_path /tmp/p/c keys_zone=z:1m;" in conf


def test_free_port_is_bindable():
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_workdir_must_carry_the_marker(tmp_path):
    with pytest.raises(ValueError, match="fos-test-"):
        Service(str(tmp_path / "plain"))
    w = make_workdir("unit")
    try:
        assert os.path.basename(w).startswith("fos-test-unit-")
    finally:
        os.rmdir(w)


def test_pid_records_keep_start_order(tmp_path):
    w = str(tmp_path / "fos-test-rec")
    for i, name in enumerate(("mon", "osd", "rgw")):
        procs.record_pid(w, name, 1000 + i, sig="INT" if name == "osd" else "TERM")
    recs = procs.pid_records(w)
    assert [r["name"] for r in recs] == ["mon", "osd", "rgw"]
    assert [r["signal"] for r in recs] == ["TERM", "INT", "TERM"]
    assert all(r["match"] == w for r in recs)


def test_stop_pid_escalates_to_sigkill():
    proc = subprocess.Popen([sys.executable, "-c",
                             "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); "
                             "time.sleep(60)"], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"ok\n"
    t0 = time.monotonic()
    assert procs.stop_pid(proc.pid, timeout=0.5) is True
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - t0 < 5


def test_stop_pid_respects_match():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 5
        while procs.read_cmdline(proc.pid) != "sleep 30" and time.monotonic() < deadline:
            time.sleep(0.01)  # until the exec
        assert procs.stop_pid(proc.pid, match="fos-test-nothing-like-this") is False
        assert proc.poll() is None
        assert procs.stop_pid(proc.pid, match="sleep 30") is True
        assert proc.wait(timeout=5) == -signal.SIGTERM
        assert procs.pid_alive(proc.pid) is False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_leftovers_only_count_daemons():
    """A non-daemon process that merely mentions a fos-test- path is not a leftover."""
    proc = subprocess.Popen(["sh", "-c", "sleep 30", "fos-test-unit-argv"])
    try:
        time.sleep(0.1)
        assert proc.pid not in [p for p, _c in procs.marker_processes("fos-test-unit-argv")]
    finally:
        proc.kill()
        proc.wait()
