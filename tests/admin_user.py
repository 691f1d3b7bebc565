"""An admin's own unprivileged login user with sudo, for running the playbooks the way admins do (issue 24,
item 2): connected as that user (not root), the plays become root through sudo.

``admin_user()`` makes the system user ``fos-admin`` once (useradd; it stays, as fos-app does) and returns an
``AdminUser``. ``with user.sudoers():`` puts ``fos-admin ALL=(ALL) NOPASSWD: ALL`` in /etc/sudoers.d for the
block: written to a temporary file, checked with ``visudo -cf``, then renamed into place under a name of its
own (no dot, or sudo skips it), so parallel tests never remove each other's; removed afterwards.

``tests.ansible_helpers.run_playbook(..., as_user=user)`` runs ansible-playbook as that user through
``user.wrap()``: ``runuser -u fos-admin``, the local connection, HOME, TMPDIR, ANSIBLE_LOCAL_TEMP and
ANSIBLE_REMOTE_TEMP in the run's temporary directory (given to the user). The controller and the modules use
this virtualenv's Python. Where a directory on its real path is closed to others (pyenv under /root, 0700, on the
project's machines), the run happens in a private mount namespace in which that directory is an empty 0755
tmpfs showing only the entry the interpreter lies under (a bind mount of it); the machine's /root is untouched,
and nothing else of the machine looks different to the run.
"""

from __future__ import annotations

import collections
import contextlib
import os
import stat
import subprocess
import sys
import tempfile
import uuid

from tests.app_user import system_user

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAME = "fos-admin"
SUDOERS_DIR = "/etc/sudoers.d"

# In the namespace: the closed directory's entry on the interpreter's path kept aside, the directory covered by
# an empty tmpfs open to everyone, the entry bound back into it; then the command.
_NAMESPACE_SCRIPT = """set -e
closed=$1 entry=$2 aside=$3
shift 3
mount --bind "$closed/$entry" "$aside"
mount -t tmpfs -o mode=0755,size=16m fos-admin-view "$closed"
mkdir "$closed/$entry"
mount --bind "$aside" "$closed/$entry"
exec "$@"
"""


def closed_directory(path: str) -> tuple[str, str] | None:
    """(directory, entry): the ancestor of ``path``'s real path that others cannot traverse, and the entry of
    it on the way; None when every one is open. More than one closed directory on the way is refused."""
    real = os.path.realpath(path)
    closed = []
    parent = "/"
    for part in real.strip("/").split("/")[:-1]:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            closed.append((parent, part))
        parent = os.path.join(parent, part)
    if not os.stat(parent).st_mode & stat.S_IXOTH:
        closed.append((parent, os.path.basename(real)))
    assert len(closed) <= 1, "more than one directory closed to others on %s: %s" % (real, closed)
    return closed[0] if closed else None


class AdminUser(collections.namedtuple("AdminUser", "name uid gid")):
    __slots__ = ()

    @contextlib.contextmanager
    def sudoers(self):
        """The user may run anything as anyone without a password, for the duration of the block."""
        rule = "%s ALL=(ALL) NOPASSWD: ALL\n" % self.name
        final = os.path.join(SUDOERS_DIR, "fos-test-admin-%s" % uuid.uuid4().hex)
        fd, temp = tempfile.mkstemp(prefix=".fos-test-admin.", dir=SUDOERS_DIR)  # a dot: sudo skips it
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(rule)
            os.chmod(temp, 0o440)
            subprocess.run(["visudo", "-cqf", temp], check=True, stdout=subprocess.DEVNULL)
            os.rename(temp, final)
        except BaseException:
            os.unlink(temp)
            raise
        try:
            yield self
        finally:
            os.unlink(final)

    def wrap(self, cmd: list, env: dict, tmp: str) -> tuple[list, dict]:
        """``cmd`` (ansible-playbook ...) as this user, and its environment; ``tmp`` (the run's temporary
        directory, which holds the inventory and the extra vars) becomes the user's, its HOME."""
        for dirpath, _dirs, filenames in os.walk(tmp):
            os.lchown(dirpath, self.uid, self.gid)
            for name in filenames:
                os.lchown(os.path.join(dirpath, name), self.uid, self.gid)
        home = os.path.join(tmp, "home")
        os.makedirs(os.path.join(home, ".ansible", "tmp"))
        os.lchown(home, self.uid, self.gid)
        for sub in (".ansible", os.path.join(".ansible", "tmp")):
            os.lchown(os.path.join(home, sub), self.uid, self.gid)
        env = dict(env, ANSIBLE_LOCAL_TEMP=os.path.join(home, ".ansible", "tmp"),
                   ANSIBLE_REMOTE_TEMP=os.path.join(home, ".ansible", "tmp"), TMPDIR=home)
        argv = ["runuser", "-u", self.name, "--", "env", "HOME=" + home, "USER=" + self.name,
                "LOGNAME=" + self.name] + list(cmd)
        closed = closed_directory(sys.executable)
        for needed in (sys.prefix, REPO):
            assert closed_directory(needed) is None, "%s must be open to %s" % (needed, self.name)
        if closed:
            aside = os.path.join(tmp, "aside")
            os.mkdir(aside)
            argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", _NAMESPACE_SCRIPT, "sh",
                    closed[0], closed[1], aside] + argv
        return argv, env


def admin_user() -> AdminUser:
    entry = system_user(NAME, "/bin/sh")
    return AdminUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
