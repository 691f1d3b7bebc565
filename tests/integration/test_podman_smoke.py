"""The podman base image for molecule: systemd boots, the app-host Python libraries are there,
the host's loopback is reachable, and no fos-test container outlives its session."""

import json
import os
import subprocess
import sys
import textwrap
import uuid

from tests.services import podman as pm
from tests.services.base import free_port

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _unique(prefix):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:8])


def _exists(name):
    return pm.podman("container", "exists", name, check=False).returncode == 0


def test_systemd_boots_and_python_libraries_import(podman_image):
    assert podman_image == pm.IMAGE
    name = pm.run_systemd_container(_unique("smoke"), image=podman_image)
    try:
        assert name.startswith("fos-test-") and name in pm.list_containers(owner=os.getpid())
        state = pm.wait_system_running(name, timeout=60)
        assert state in ("running", "degraded"), "state %r, failed units %s" % (state, pm.failed_units(name))
        assert pm.exec(name, "cat /proc/1/comm").stdout.strip() == "systemd"

        proc = pm.exec(name, ["python3", "-c", "import apt, boto3, psycopg2; print(boto3.__version__)"], check=False)
        assert proc.returncode == 0, proc.stderr

        # runc runtime and the lowered ulimits (the host defaults fail here)
        runtime = pm.podman("inspect", "--format", "{{.OCIRuntime}}", name).stdout.strip()
        assert runtime == "runc"
        ulimits = json.loads(pm.podman("inspect", "--format", "{{json .HostConfig.Ulimits}}", name).stdout)
        assert {u["Name"]: (u["Soft"], u["Hard"]) for u in ulimits} == {
            "RLIMIT_NOFILE": (1024, 4096),
            "RLIMIT_NPROC": (1024, 4096),
        }
        assert pm.exec(name, "grep 'Max processes' /proc/1/limits").stdout.split()[2:4] == ["1024", "4096"]
    finally:
        pm.remove(name)
    assert not _exists(name)
    assert pm.list_containers(owner=os.getpid()) == []


def test_host_loopback_reachable_as_10_0_2_2_with_slirp4netns(podman_image, tmp_path):
    (tmp_path / "probe.txt").write_text("hello from the host\n")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    name = pm.run_systemd_container(_unique("net"), image=podman_image, network="slirp4netns:allow_host_loopback=true")
    try:
        url = "http://10.0.2.2:%d/probe.txt" % port
        proc = pm.exec(name, ["curl", "-sS", "--retry", "20", "--retry-connrefused", "--retry-delay", "0", "-m", "10", url],
                       check=False, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "hello from the host\n"
    finally:
        pm.remove(name)
        server.terminate()
        server.wait(timeout=10)


def test_cleanup_owned_spares_live_parallel_sessions(podman_image):
    # Owners are stand-in pids, so that other tests' containers of this session are not touched.
    me = subprocess.Popen(["sleep", "600"])  # "this session"
    dead = subprocess.Popen(["true"])  # a crashed session
    dead.wait()
    live_other = 1  # a process that is alive and is not "this session": a parallel session
    mine = pm.run_systemd_container(_unique("own"), image=podman_image, command=("sleep", "600"), owner=me.pid)
    crashed = pm.run_systemd_container(_unique("crashed"), image=podman_image, command=("sleep", "600"), owner=dead.pid)
    other = pm.run_systemd_container(_unique("other"), image=podman_image, command=("sleep", "600"), owner=live_other)
    try:
        assert set(pm.list_containers(owner=me.pid)) == {mine}
        removed = pm.cleanup_owned(pid=me.pid)
        assert mine in removed and crashed in removed and other not in removed
        assert not _exists(mine) and not _exists(crashed)
        assert _exists(other)
    finally:
        for name in (mine, crashed, other):
            pm.remove(name)
        me.kill()
        me.wait()
    assert not any(_exists(n) for n in (mine, crashed, other))


def test_session_end_removes_the_sessions_containers(tmp_path):
    """A whole pytest session that leaves a container running: the podman_image fixture removes it."""
    name = pm.container_name(_unique("leak"))
    (tmp_path / "test_leak.py").write_text(textwrap.dedent("""\
        import os
        from tests.services import podman as pm

        def test_leave_a_container_behind(podman_image):
            name = pm.run_systemd_container(os.environ["FOS_LEAK_NAME"], image=podman_image)
            assert pm.wait_system_running(name, timeout=60) in ("running", "degraded")
            assert name in pm.list_containers(owner=os.getpid())
        """))
    env = dict(os.environ, FOS_LEAK_NAME=name, PYTHONPATH=REPO)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "tests.conftest",
             "--rootdir", str(tmp_path), str(tmp_path / "test_leak.py")],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "1 passed" in proc.stdout
        assert not _exists(name)
    finally:
        pm.remove(name)


def test_cached_tarball_is_reimported_without_debootstrap(podman_image, monkeypatch):
    def no_build(*args, **kwargs):
        raise AssertionError("debootstrap must not run when the cached tarball exists")

    monkeypatch.setattr(pm, "build_rootfs_tarball", no_build)
    assert pm.tarball_path().is_file()
    other = "localhost/fos-test-reimport:latest"
    try:
        assert pm.ensure_image(image=other) == other
        assert pm.podman("image", "inspect", "--format", "{{ json .Labels }}", other).stdout.strip() == json.dumps(
            {pm.IMAGE_KEY_LABEL: pm.image_key()}, separators=(",", ":")
        )
        assert pm.ensure_image(image=other) == other  # now the fast path: podman has it
    finally:
        pm.remove_image(other)
    assert not pm.image_exists(other)


def test_apt_installs_packages_inside_the_container(podman_image):
    """Roles under molecule install packages with apt: signature checks must pass in the container."""
    name = pm.run_systemd_container(_unique("apt"), image=podman_image)
    try:
        proc = pm.exec(name, "apt-get update -qq && apt-get install -y -qq --no-install-recommends nginx-light",
                       check=False, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert pm.exec(name, "systemctl is-active nginx", check=False).stdout.strip() == "active"
    finally:
        pm.remove(name)
