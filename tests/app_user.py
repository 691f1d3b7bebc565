"""The app's own unprivileged user for tests: the tree a test builds belongs to it, and what it
plants (links, FIFOs, swapped directories, hard links) is done as that user, so the kernel's own
permission checks apply (fs.protected_hardlinks, sticky directories ...), as on a real server.

``app_user()`` creates the system user ``fos-app`` once (useradd) and returns it; ``user.call(fn)``
runs ``fn()`` in a forked child with that user's uid and gid and raises if it failed;
``user.run([...])`` runs a command as that user; ``user.own(path)`` gives a tree to it.
"""

import collections
import os
import pwd
import subprocess
import traceback

NAME = "fos-app"


class AppUser(collections.namedtuple("AppUser", "name uid gid")):
    __slots__ = ()

    def own(self, *paths):
        """chown -R every path (links themselves, never followed) to the user."""
        for path in paths:
            os.lchown(path, self.uid, self.gid)
            if os.path.isdir(path) and not os.path.islink(path):
                for dirpath, dirnames, filenames in os.walk(path):
                    for name in dirnames + filenames:
                        os.lchown(os.path.join(dirpath, name), self.uid, self.gid)

    def call(self, fn, *args):
        """Run ``fn(*args)`` as the user in a forked child; AssertionError with its traceback on failure."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.close(read_end)
            code = 0
            try:
                os.setgroups([])
                os.setgid(self.gid)
                os.setuid(self.uid)
                fn(*args)
            except BaseException:  # noqa: BLE001
                os.write(write_end, traceback.format_exc().encode())
                code = 1
            os._exit(code)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            message = pipe.read().decode()
        _pid, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise AssertionError("as %s: %s" % (self.name, message))

    def run(self, argv, **kwargs):
        return subprocess.run(["runuser", "-u", self.name, "--"] + list(argv), check=True, **kwargs)


def system_user(name, shell):
    """The passwd entry of the system user ``name``, made once with useradd (kept afterwards)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", shell, name],
                       check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return pwd.getpwnam(name)  # made here, or by a parallel run meanwhile


def app_user():
    entry = system_user(NAME, "/usr/sbin/nologin")
    return AppUser(entry.pw_name, entry.pw_uid, entry.pw_gid)
