"""Run playbooks of the collection the way an admin does (ansible-playbook), and read the result.

`run_playbook(...)` runs ansible-playbook in a subprocess against localhost (local connection,
this virtualenv's Python as the module interpreter) with the collection on
ANSIBLE_COLLECTIONS_PATH. `venv=` (or FOS_TEST_ANSIBLE_VENV) names another virtualenv whose
ansible-playbook runs and whose Python is the module interpreter: OLDEST_VENV (.venv-oldest) has the
oldest ansible-core the collection supports. With the default `callback="json"` the ansible.posix.json callback is
used and the result is parsed into `.stats` and `.tasks`; with `callback="default"` the human
output is kept as text in `.stdout` (for "no secret in the output" checks). With
FOS_TEST_PLAYBOOK_LOG_DIR set, each run's full output is also written to that directory.

`run_module(module, args, ...)` runs one module of the collection in a play of one task (the text is
`module_play(...)`, for a test that starts ansible-playbook itself) and takes run_playbook's options.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COLLECTIONS_PATH = REPO / ".cache" / "collections"
# The oldest ansible-core that meta/runtime.yml admits (requirements/oldest.txt, scripts/bootstrap.sh).
OLDEST_VENV = REPO / ".venv-oldest"


def venv_python(venv=None) -> str:
    """The Python of virtualenv ``venv`` (default: FOS_TEST_ANSIBLE_VENV, else the one running the tests):
    its ansible-playbook is next to it, and it is the module interpreter of the runs."""
    venv = venv or os.environ.get("FOS_TEST_ANSIBLE_VENV")
    # Not resolved: a virtualenv's bin/python is a link to the base Python, whose directory has no ansible.
    return os.path.join(os.path.abspath(str(venv)), "bin", "python") if venv else sys.executable


def ansible_env(extra: dict | None = None, callback: str = "json", venv=None) -> dict:
    python = venv_python(venv)
    env = dict(os.environ)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
        ANSIBLE_LOCALHOST_WARNING="False",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
        ANSIBLE_RETRY_FILES_ENABLED="False",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_HOST_KEY_CHECKING="False",
        # Each module over its interpreter's stdin instead of a temporary file (no mkdir/rm shells per task):
        # about 8% less CPU per playbook run; as molecule's provisioner (extensions/molecule/config.yml). Async
        # tasks (the media copy) still go through a file, as ansible does for them.
        ANSIBLE_PIPELINING="True",
        ANSIBLE_PYTHON_INTERPRETER=python,
        PATH=os.path.dirname(python) + os.pathsep + env.get("PATH", ""),
    )
    if callback == "json":
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
        env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    else:
        env["ANSIBLE_STDOUT_CALLBACK"] = callback
    env.pop("ANSIBLE_CONFIG", None)
    if extra:
        env.update(extra)
    return env


def failed_items(result):
    """The failed items of a loop's result. The json callback's loop items carry no "failed": an item an
    assert refused says evaluated_to false, and every item of a failed ansible.builtin.fail loop that ran
    failed (a loop over the failed checks only)."""
    is_fail = result.get("failed") and result.get("action") == "ansible.builtin.fail"
    return [item for item in result.get("results", []) if isinstance(item, dict) and (
        item.get("failed") or item.get("evaluated_to") is False or (is_fail and not item.get("skipped")))]


@dataclass(repr=False)
class PlaybookResult:
    rc: int
    stdout: str
    stderr: str
    stats: dict = field(default_factory=dict)
    tasks: list = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(h.get("changed", 0) for h in self.stats.values())

    @property
    def failed(self) -> int:
        return sum(h.get("failures", 0) + h.get("unreachable", 0) for h in self.stats.values())

    def task(self, name: str, host: str = "localhost") -> dict:
        """The result of the last task whose name contains `name`."""
        found = [t for t in self.tasks if name in t["name"] and t["host"] == host]
        if not found:
            raise KeyError("no task named %r in %s" % (name, [t["name"] for t in self.tasks]))
        return found[-1]["result"]

    def failure_messages(self) -> list:
        """The msg of every failed task, and of each failed item of a failed loop."""
        messages = []
        for t in self.tasks:
            result = t["result"]
            if not result.get("failed"):
                continue
            messages.append(result.get("msg", ""))
            for item in failed_items(result):
                messages.append("%s: %s %s" % (t["name"], item.get("item"), item.get("msg") or item.get("status")))
        return messages

    def failure_report(self, limit: int = 4000) -> str:
        """Each failed task: its name and its result (msg, the stdout/stderr of a command or module, the
        exception), at most ``limit`` characters of each (its start and its end)."""
        parts = []
        for t in self.tasks:
            result = t["result"]
            if not (result.get("failed") or result.get("unreachable")):
                continue
            parts.append("--- FAILED TASK %r on %s" % (t["name"], t["host"]))
            for key in ("msg", "rc", "cmd", "stdout", "stderr", "module_stdout", "module_stderr", "exception"):
                if result.get(key) not in (None, "", [], "(traceback unavailable)"):
                    parts.append("%s: %s" % (key, _tail(result[key], limit)))
            for item in failed_items(result):
                parts.append("item %s: %s" % (_tail(item.get("item"), 600),
                                              _tail({k: v for k, v in item.items() if k != "invocation"}, limit)))
        return "\n".join(parts)

    def __str__(self) -> str:  # shown by pytest on assertion failures
        report = self.failure_report()
        if not report and self.rc != 0:  # no parsable result: what the run printed
            report = "stdout (tail): %s" % self.stdout[-4000:]
        # First the failed task and the start of its message: pytest cuts a non-str assertion message
        # (``assert res.rc == 0, res``) after ~240 characters; the whole report is printed by run_playbook.
        first = ["%r: %s" % (t["name"].split(" : ")[-1], str(t["result"].get("msg", ""))[:160])
                 for t in self.tasks if t["result"].get("failed")][:1]
        return "rc=%s failed=%s stats=%s\n%s\nstderr (tail): %s" % (
            self.rc, first, self.stats, report, self.stderr[-4000:])

    __repr__ = __str__  # pytest shows repr() of an assertion's message


def _tail(value, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) <= limit:
        return text
    half = limit // 2  # a message's start says what failed, a command's end how
    return "%s ...(%d characters cut)... %s" % (text[:half], len(text) - 2 * half, text[-half:])


def _parse_json_output(stdout: str):
    start = stdout.find("{")
    if start < 0:
        return {}, []
    try:
        doc = json.loads(stdout[start:])
    except ValueError:
        return {}, []
    tasks = []
    for play in doc.get("plays", []):
        for task in play.get("tasks", []):
            for host, result in task.get("hosts", {}).items():
                tasks.append({"name": task["task"]["name"], "host": host, "result": result})
    return doc.get("stats", {}), tasks


def run_playbook(playbook, extra_vars=None, check=False, diff=False, tags=None, skip_tags=None,
                 env=None, inventory=None, callback="json", verbosity=0, timeout=900, as_user=None,
                 venv=None) -> PlaybookResult:
    """Run `playbook` (a path, or YAML text) and return a PlaybookResult. ``as_user``: a
    tests.admin_user.AdminUser, ansible-playbook runs as that user (an admin connected with sudo).
    ``venv``: another virtualenv's ansible-playbook and Python (see venv_python)."""
    python = venv_python(venv)
    with tempfile.TemporaryDirectory(prefix="fos-play-") as tmp:
        path = Path(str(playbook))
        if "\n" in str(playbook) or not path.exists():
            path = Path(tmp) / "playbook.yml"
            path.write_text(str(playbook))
        cmd = [os.path.join(os.path.dirname(python), "ansible-playbook"), str(path)]
        if inventory is None:
            inv = Path(tmp) / "inventory.ini"
            inv.write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % python)
            inventory = str(inv)
        cmd += ["-i", inventory]
        if extra_vars:
            vars_file = Path(tmp) / "extra_vars.json"
            vars_file.write_text(json.dumps(extra_vars))
            cmd += ["-e", "@%s" % vars_file]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        if tags:
            cmd += ["--tags", ",".join(tags) if isinstance(tags, (list, tuple)) else tags]
        if skip_tags:
            cmd += ["--skip-tags", ",".join(skip_tags) if isinstance(skip_tags, (list, tuple)) else skip_tags]
        if verbosity:
            cmd.append("-" + "v" * verbosity)
        run_env = ansible_env(env, callback, venv)
        if as_user is not None:
            cmd, run_env = as_user.wrap(cmd, run_env, tmp)
        proc = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=timeout, cwd=str(REPO))
    _keep_output(path.name, proc)
    stats, tasks = _parse_json_output(proc.stdout) if callback == "json" else ({}, [])
    result = PlaybookResult(proc.returncode, proc.stdout, proc.stderr, stats, tasks)
    if result.rc != 0:
        # Captured by pytest and shown in full under "Captured stdout call" when the test fails (the
        # assertion message itself is cut); nothing shown for a test that expected the failure.
        print("ansible-playbook %s ended rc=%s\n%s" % (path.name, result.rc, result))
    return result


def module_play(module, args, name="Run the module") -> str:
    """The YAML text of a play of one task on localhost, facts not gathered: the module ``module`` (a
    name of this collection, e.g. ``bucket``, or a fully qualified name) with ``args``, the task named
    ``name`` and registered as ``out``."""
    import yaml

    fqcn = module if "." in module else "fediverse.object_storage." + module
    task = {"name": name, fqcn: args, "register": "out"}
    return yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}], sort_keys=False)


def run_module(module, args, name="Run the module", **run_kw) -> PlaybookResult:
    """Run ``module`` with ``args`` in a play of one task (module_play) through run_playbook, with its
    options (``check``, ``diff``, ``env``, ``callback``, ``venv``...). The module's result is
    ``.task(name)``."""
    return run_playbook(module_play(module, args, name=name), **run_kw)


def descendants(pid) -> list:
    """Every process below ``pid`` (by parent pid, across sessions: ansible's worker calls setsid, so a
    kill of the play's process group does not reach the module), parents before their children."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def kill_tree(proc, timeout=30):
    """SIGKILL a background ansible-playbook (a subprocess.Popen) and everything it started, deepest first
    (the module writing a file before the play), each by its id; then its process group when it leads one
    (started with ``start_new_session``)."""
    for pid in reversed(descendants(proc.pid)):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass
    proc.wait(timeout=timeout)


def _keep_output(name, proc):
    """With FOS_TEST_PLAYBOOK_LOG_DIR set, every run's full stdout and stderr are kept there (numbered,
    with the playbook's name and rc), e.g. to compare a flaky run's failing output with passing ones."""
    log_dir = os.environ.get("FOS_TEST_PLAYBOOK_LOG_DIR")
    if not log_dir:
        return
    os.makedirs(log_dir, exist_ok=True)
    base = os.path.join(log_dir, "%03d-%s-rc%s" % (len(os.listdir(log_dir)) // 2 + 1, name, proc.returncode))
    Path(base + ".stdout").write_text(proc.stdout)
    Path(base + ".stderr").write_text(proc.stderr)
