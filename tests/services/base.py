"""Common parts of the throwaway services: ports, work dirs, start/stop by PID, cleanup on exit.

All state of a service lives in one temp dir named ``fos-test-<kind>-XXXX`` and every daemon's
command line contains that dir (the marker used to find leftovers, see procs.py).

A started service is stopped by whichever comes first: ``service.stop()``, the pytest session
teardown, this module's atexit/SIGTERM handler, or -- when the Python process dies without
running any of those (SIGKILL) -- the reaper process started with the first service.
"""

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from . import procs

MARKER = procs.MARKER
_HERE = os.path.dirname(os.path.abspath(__file__))

_lock = threading.Lock()
_live = []  # services started by this process and meant to die with it
_session = {"file": None, "reaper": None}


class ServiceError(RuntimeError):
    """A service failed to start; the message includes the tail of its log."""


def free_port(host="127.0.0.1"):
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def make_workdir(kind, base=None):
    """A fresh ``fos-test-<kind>-XXXXXX`` dir (under the system temp dir: short paths for unix sockets)."""
    return tempfile.mkdtemp(prefix="%s%s-" % (MARKER, kind), dir=base)


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no log at %s)" % path


def wait_for(predicate, timeout, what, interval=0.1, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise ServiceError("timed out after %ss waiting for %s%s" % (
        timeout, what, ("\n--- %s ---\n%s" % (log, tail(log))) if log else ""))


def run(cmd, timeout=120, check=True, env=None, **kwargs):
    """Run a short command (not a daemon); raise ServiceError with its output on failure."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError("%s: timed out after %ss" % (" ".join(cmd), timeout)) from exc
    if check and proc.returncode != 0:
        raise ServiceError("%s failed (rc=%s):\n%s%s" % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr))
    return proc


# --- session bookkeeping ------------------------------------------------------------------------

def _ensure_session():
    """Create the session file (list of workdirs) and start the reaper watching this process."""
    if _session["file"]:
        return _session["file"]
    sdir = make_workdir("session")
    path = os.path.join(sdir, "workdirs")
    open(path, "w").close()
    reaper = subprocess.Popen(
        [sys.executable, os.path.join(_HERE, "procs.py"), "reap", str(os.getpid()), path],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    )
    _session["file"] = path
    _session["reaper"] = reaper
    return path


def register(service):
    """Tie ``service`` to this process: stopped at exit, or by the reaper if this process is killed."""
    with _lock:
        path = _ensure_session()
        with open(path, "a") as f:
            f.write(service.workdir + "\n")
        _live.append(service)


def unregister(service):
    with _lock:
        if service in _live:
            _live.remove(service)


def stop_all():
    """Stop every service this process started (newest first) and end the reaper."""
    with _lock:
        services = list(reversed(_live))
    for service in services:
        try:
            service.stop()
        except Exception as exc:  # keep going: the others must stop too
            sys.stderr.write("fos-test: stopping %s failed: %s\n" % (service.workdir, exc))
    with _lock:
        path, reaper = _session["file"], _session["reaper"]
        _session["file"] = _session["reaper"] = None
    if path:
        try:
            os.unlink(path)
            os.rmdir(os.path.dirname(path))
        except OSError:
            pass
    if reaper is not None:
        try:
            reaper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()


def _on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def install_handlers():
    """atexit + SIGTERM/SIGHUP handlers that stop the services (only where no handler is set yet)."""
    if getattr(install_handlers, "done", False):
        return
    install_handlers.done = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) in (signal.SIG_DFL, None):
                signal.signal(sig, _on_signal)


class Service:
    """Base class: a workdir, daemons recorded by PID, start timing, idempotent stop."""

    kind = "service"
    retries = 0  # start attempts after the first one (each with fresh ports)

    def __init__(self, workdir=None, persistent=False):
        """``persistent=True`` (the CLI's ``up``): not stopped when this Python process exits."""
        self.workdir = os.path.abspath(workdir) if workdir else make_workdir(self.kind)
        os.makedirs(self.workdir, exist_ok=True)
        if not os.path.basename(self.workdir).startswith(MARKER):
            raise ValueError("workdir %s: its name must start with %r (the leftover marker)" % (self.workdir, MARKER))
        self.persistent = persistent
        self.start_seconds = None
        self.started = False
        self._children = []

    def path(self, *parts):
        return os.path.join(self.workdir, *parts)

    def spawn(self, name, cmd, log, sig="TERM", **kwargs):
        """Start a foreground daemon in its own session; record its PID. Returns the Popen."""
        with open(log, "ab") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True, close_fds=True, **kwargs)
        self._children.append(proc)
        procs.record_pid(self.workdir, name, proc.pid, sig=sig)
        return proc

    def record(self, name, pid, sig="TERM"):
        procs.record_pid(self.workdir, name, pid, sig=sig)

    def start(self):
        if self.started:
            return self
        if not self.persistent:
            install_handlers()
            register(self)
        t0 = time.monotonic()
        for attempt in range(self.retries + 1):
            try:
                self._start()
                break
            except ServiceError as exc:
                # e.g. a "free" port taken by a parallel session in between: clean up, retry on new ports
                self.stop()
                if attempt == self.retries:
                    raise
                sys.stderr.write("fos-test: %s failed to start, retrying: %s\n" % (self.kind, str(exc)[:500]))
                os.makedirs(self.workdir, exist_ok=True)
                if not self.persistent:
                    register(self)
            except BaseException:
                self.stop()
                raise
        self.start_seconds = round(time.monotonic() - t0, 2)
        self.started = True
        return self

    def _start(self):
        raise NotImplementedError

    def stop(self, remove=True):
        stopped = procs.stop_workdir(self.workdir, remove=remove)
        for proc in self._children:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self._children = []
        self.started = False
        unregister(self)
        return stopped

    def info(self):
        """JSON-able description (endpoints, keys, ports, paths) for services.json."""
        return {"kind": self.kind, "workdir": self.workdir, "start_seconds": self.start_seconds}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
