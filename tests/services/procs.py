"""Process bookkeeping for the test-services harness (standard library only).

Every daemon the harness starts gets a small JSON record in ``<workdir>/pids/NN-name.json``:
``{"pid": 123, "signal": "TERM", "match": "<workdir>", "name": "ceph-mon"}``.  The workdir is a
temp dir whose name starts with ``fos-test-`` and every daemon's command line contains it, so:

* ``stop_workdir(workdir)`` stops the daemons of one service by PID, newest first (SIGTERM or the
  recorded signal, wait, SIGKILL), after checking that the PID still runs a command line that
  contains the workdir (PID reuse safe);
* ``find_leftovers()`` finds any harness daemon (or ``fos-test-`` podman container) still alive;
* run as a script, this file is the *reaper*: ``python procs.py reap PARENT_PID SESSION_FILE``
  waits for PARENT_PID to die and then stops every workdir listed in SESSION_FILE.  The pytest
  session starts one, so that even a SIGKILLed pytest leaves nothing behind.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

MARKER = "fos-test-"
# Executables the harness starts; used to tell its daemons from, e.g., a pytest whose argv mentions a fos-test- path.
DAEMON_NAMES = ("ceph-mon", "ceph-osd", "radosgw", "postgres", "postmaster", "nginx")


def read_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return None


def _state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
        # "pid (comm) S ppid ..." -- comm may contain spaces/parens: split at the last ')'
        rest = data.rsplit(")", 1)[1].split()
        return rest[0], int(rest[1])
    except (OSError, IndexError, ValueError):
        return None, None


def pid_alive(pid):
    """True when ``pid`` runs and is not a zombie (a dead child not yet waited for counts as gone)."""
    state, _ppid = _state(pid)
    return state is not None and state not in ("Z", "X")


def stop_pid(pid, sig=signal.SIGTERM, match=None, timeout=15.0):
    """Stop one process: ``sig``, wait up to ``timeout`` s, then SIGKILL. Returns True if it was running.

    With ``match``, the process is only signalled when its command line contains ``match``.
    """
    if not pid or not pid_alive(pid):
        return False
    if match is not None:
        cmd = read_cmdline(pid)
        if cmd is None or match not in cmd:
            return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.05)
    return True


def record_pid(workdir, name, pid, sig="TERM", match=None):
    """Write the PID record of a daemon started inside ``workdir``."""
    piddir = os.path.join(workdir, "pids")
    os.makedirs(piddir, exist_ok=True)
    seq = len([n for n in os.listdir(piddir) if n.endswith(".json")])
    path = os.path.join(piddir, "%02d-%s.json" % (seq, name))
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": int(pid), "signal": sig, "match": match or workdir, "name": name}, f)
    os.rename(tmp, path)
    return path


def pid_records(workdir):
    piddir = os.path.join(workdir, "pids")
    try:
        names = sorted(n for n in os.listdir(piddir) if n.endswith(".json"))
    except OSError:
        return []
    records = []
    for name in names:
        try:
            with open(os.path.join(piddir, name)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        rec["file"] = os.path.join(piddir, name)
        records.append(rec)
    return records


def stop_workdir(workdir, remove=True, timeout=15.0):
    """Stop every daemon recorded in ``workdir`` (newest first); remove the dir. Returns the names stopped."""
    stopped = []
    for rec in reversed(pid_records(workdir)):
        sig = getattr(signal, "SIG" + rec.get("signal", "TERM"), signal.SIGTERM)
        if stop_pid(rec["pid"], sig=sig, match=rec.get("match") or workdir, timeout=timeout):
            stopped.append(rec.get("name", str(rec["pid"])))
        try:
            os.unlink(rec["file"])
        except OSError:
            pass
    # Anything else still running from this dir (e.g. a forked child whose PID we never saw).
    for pid, cmd in marker_processes(workdir):
        stop_pid(pid, match=workdir, timeout=5)
        stopped.append(cmd.split()[0])
    if remove and os.path.basename(os.path.normpath(workdir)).startswith(MARKER):
        shutil.rmtree(workdir, ignore_errors=True)
    return stopped


def _comm(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return ""


def marker_processes(marker=MARKER):
    """(pid, cmdline) of harness daemons whose command line (or whose parent's) contains ``marker``."""
    found = []
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        cmd = read_cmdline(pid)
        if not cmd:
            continue
        exe = os.path.basename(cmd.split()[0]).rstrip(":")
        comm = _comm(pid)
        if not (exe in DAEMON_NAMES or comm in DAEMON_NAMES or cmd.startswith(("nginx:", "postgres:"))):
            continue
        state, ppid = _state(pid)
        if state in (None, "Z", "X"):
            continue
        if marker in cmd or (ppid and marker in (read_cmdline(ppid) or "")):
            found.append((pid, cmd))
    return found


def marker_containers(marker=MARKER):
    """podman containers (running or not) named ``fos-test-*`` or labelled ``fos-test=1`` (empty without podman)."""
    if not shutil.which("podman"):
        return []
    try:
        out = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}\t{{.Labels}}"], capture_output=True,
                             text=True, timeout=60, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        name, _, labels = line.partition("\t")
        if name.strip() and (name.startswith(marker) or "%s:1" % marker.rstrip("-") in labels):
            found.append(name.strip())
    return found


def marker_dirs(base=None):
    import tempfile

    base = base or tempfile.gettempdir()
    try:
        return sorted(os.path.join(base, n) for n in os.listdir(base) if n.startswith(MARKER))
    except OSError:
        return []


def find_leftovers(containers=True):
    """Everything of the harness still alive: {"processes": [...], "containers": [...], "dirs": [...]}."""
    return {
        "processes": ["%d %s" % pc for pc in marker_processes()],
        "containers": marker_containers() if containers else [],
        "dirs": marker_dirs(),
    }


# --- the reaper -------------------------------------------------------------------------------

def session_workdirs(session_file):
    try:
        with open(session_file) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def reap(parent_pid, session_file, poll=0.5):
    """Wait until ``parent_pid`` is gone, then stop every workdir listed in ``session_file``.

    Exits quietly when the session file disappears (the session cleaned up after itself).
    """
    while True:
        if not os.path.exists(session_file):
            return 0
        if not pid_alive(parent_pid):
            break
        time.sleep(poll)
    for workdir in reversed(session_workdirs(session_file)):
        stop_workdir(workdir)
    session_dir = os.path.dirname(session_file)
    if os.path.basename(session_dir).startswith(MARKER):
        shutil.rmtree(session_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "reap":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C to pytest must not kill the reaper first
        sys.exit(reap(int(sys.argv[2]), sys.argv[3]))
    sys.stderr.write("usage: procs.py reap PARENT_PID SESSION_FILE\n")
    sys.exit(2)
