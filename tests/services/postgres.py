"""A throwaway PostgreSQL cluster (Debian's postgresql package), run as the ``postgres`` user.

initdb into ``<workdir>/data`` (owned by postgres), listening on 127.0.0.1:<free port> and on a
unix socket in ``<workdir>/sock``. Superuser ``postgres`` with a random password: scram-sha-256
over TCP, trust over the unix socket.
"""

import glob
import os
import pwd
import secrets
import string
import urllib.parse

from .base import Service, ServiceError, free_port, run, tail, wait_for

PG_USER = "postgres"


def pg_bindir():
    """The newest /usr/lib/postgresql/<N>/bin (or $FOS_TEST_PG_BINDIR)."""
    if os.environ.get("FOS_TEST_PG_BINDIR"):
        return os.environ["FOS_TEST_PG_BINDIR"]
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not dirs:
        raise ServiceError("PostgreSQL server binaries not found (apt-get install postgresql)")
    return os.path.dirname(dirs[-1])


class Postgres(Service):
    """After start(): host, port, socket_dir, user, password, dsn(dbname), create_database(), execute()."""

    kind = "pg"
    retries = 1

    def __init__(self, workdir=None, password=None, persistent=False):
        super().__init__(workdir, persistent=persistent)
        self.host = "127.0.0.1"
        self.port = None
        self.user = PG_USER
        self.password = password or "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(24))
        self.socket_dir = self.path("sock")
        self.datadir = self.path("data")
        self.logfile = self.path("postgres.log")
        self.bindir = pg_bindir()

    def _as_postgres(self, cmd, **kwargs):
        return run(["runuser", "-u", PG_USER, "--"] + cmd, cwd="/", **kwargs)

    def _start(self):
        pw = pwd.getpwnam(PG_USER)
        os.makedirs(self.socket_dir, exist_ok=True)
        pwfile = self.path("pwfile")
        with open(pwfile, "w") as f:
            f.write(self.password + "\n")
        for root, dirs, files in os.walk(self.workdir):
            os.chown(root, pw.pw_uid, pw.pw_gid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), pw.pw_uid, pw.pw_gid)
        os.chmod(pwfile, 0o600)
        self._as_postgres([os.path.join(self.bindir, "initdb"), "-D", self.datadir, "-U", PG_USER, "--pwfile", pwfile,
                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                           "--no-sync"], timeout=120)
        os.unlink(pwfile)
        self.port = free_port()
        with open(os.path.join(self.datadir, "postgresql.auto.conf"), "a") as f:
            f.write("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\n"
                    "max_connections = 50\n" % (self.port, self.socket_dir))
        # pg_ctl starts "postgres -D <datadir>" detached; its PID is line 1 of postmaster.pid.
        self._as_postgres([os.path.join(self.bindir, "pg_ctl"), "-D", self.datadir, "-l", self.logfile,
                           "-w", "-t", "60", "start"], timeout=90)
        pidfile = os.path.join(self.datadir, "postmaster.pid")
        wait_for(lambda: os.path.exists(pidfile), 10, "postmaster.pid", log=self.logfile)
        with open(pidfile) as f:
            pid = int(f.readline().strip())
        # SIGINT = fast shutdown (SIGTERM would wait for clients to disconnect).
        self.record("postgres", pid, sig="INT")

        def ready():
            return run([os.path.join(self.bindir, "pg_isready"), "-h", self.host, "-p", str(self.port)],
                       check=False, timeout=10).returncode == 0

        wait_for(ready, 30, "PostgreSQL on port %s" % self.port, log=self.logfile)

    def dsn(self, dbname="postgres"):
        """libpq URL (TCP, password) for ``dbname``."""
        return "postgresql://%s:%s@%s:%d/%s" % (
            urllib.parse.quote(self.user, safe=""), urllib.parse.quote(self.password, safe=""), self.host, self.port,
            urllib.parse.quote(dbname, safe=""))

    def connect(self, dbname="postgres", unix_socket=False, **kwargs):
        import psycopg2

        if unix_socket:
            return psycopg2.connect(host=self.socket_dir, port=self.port, user=self.user, dbname=dbname, **kwargs)
        return psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                dbname=dbname, **kwargs)

    def execute(self, sql, dbname="postgres", params=None):
        """Run ``sql`` (autocommit) over TCP; returns the rows when it returns any, else None."""
        conn = self.connect(dbname)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description is not None else None
        finally:
            conn.close()

    def create_database(self, name, owner=None):
        """CREATE DATABASE ``name`` (dropped first if it exists). Returns its dsn."""
        from psycopg2 import sql

        self.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if owner:
            stmt = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(owner))
        self.execute(stmt)
        return self.dsn(name)

    def info(self):
        data = super().info()
        data.update(host=self.host, port=self.port, socket_dir=self.socket_dir, user=self.user,
                    password=self.password, dsn=self.dsn() if self.port else None, datadir=self.datadir,
                    log=self.logfile)
        return data

    def log_tail(self, lines=40):
        return tail(self.logfile, lines)
