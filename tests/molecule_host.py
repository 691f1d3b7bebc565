"""The molecule host: the services and data the scenarios of extensions/molecule need on this machine.

The scenarios' containers reach PostgreSQL, Ceph RGW (https) and a stub DNS on this machine as 10.0.2.2
(podman slirp4netns with allow_host_loopback) and mount the synthetic apps (a Mastodon instance: database
rows and media files, .env.production; a Misskey 12 install: package.json, default.yml, the meta row) read
only. tests/integration/test_molecule.py builds them per test with the pytest fixtures; for a plain
`molecule test --all` (how collection users run molecule), one command does it and keeps it up:

    python -m tests.molecule_host up --state-dir .cache/molecule-host   # prints the env file to source
    . .cache/molecule-host/env.sh && molecule test --all               # from the collection root
    python -m tests.molecule_host down --state-dir .cache/molecule-host

`up` starts Ceph RGW and PostgreSQL detached (tests.services), builds both apps, starts the stub DNS
(a detached `python -m tests.molecule_host dns`) and writes env.sh (mode 0600: it holds the S3 keys).
Misskey's scenario switches the meta row: run `down` and `up` again before running it a second time.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from types import SimpleNamespace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_FROM_CONTAINER = "10.0.2.2"
MISSKEY_VERSION = "12.117.1"
MISSKEY_PROBE_KEY = "storage/fos-molecule-probe.png"


def chmod_tree(root):
    """Directories 0755: nginx's workers (www-data or nginx) read the copied media in the container."""
    for dirpath, dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for d in dirs:
            os.chmod(os.path.join(dirpath, d), 0o755)


def build_mastodon(pg, root):
    """A Mastodon instance under ROOT/mastodon/live (database on PG); returns the fixture instance."""
    from tests.fixtures.mastodon_instance import build_instance
    from tests.migrate_support import VERSION_RB, write_env_file

    live = os.path.join(root, "mastodon", "live")
    system = os.path.join(live, "public", "system")
    os.makedirs(system)
    # Pre-flight reads the version before a path alias (directory/system modes need 4.1.3+).
    os.makedirs(os.path.join(live, "lib", "mastodon"))
    with open(os.path.join(live, "lib", "mastodon", "version.rb"), "w") as fh:
        fh.write(VERSION_RB.format(4, 3, 2))
    dbname = "mol_mastodon_" + uuid.uuid4().hex[:8]
    instance = build_instance(pg, dbname, system, missing=())
    # The container reaches the host's PostgreSQL (127.0.0.1:PORT) as 10.0.2.2:PORT.
    write_env_file(os.path.join(live, ".env.production"),
                   SimpleNamespace(host=HOST_FROM_CONTAINER, port=pg.port, user=pg.user, password=pg.password), dbname)
    chmod_tree(os.path.join(root, "mastodon"))
    return instance


def build_misskey(pg, root):
    """A Misskey 12 install under ROOT/misskey/misskey with its meta row; returns the database name."""
    from tests.misskey_host import install_misskey

    # The container reaches the host's PostgreSQL (127.0.0.1:PORT) as 10.0.2.2:PORT.
    dbname, _config = install_misskey(os.path.join(root, "misskey", "misskey"), pg, MISSKEY_VERSION,
                                      url="https://misskey.test/", db_prefix="mol_misskey_", db_host=HOST_FROM_CONTAINER,
                                      meta={"name": "Molecule", "smtpPass": "smtp-secret"})
    chmod_tree(os.path.join(root, "misskey"))
    return dbname


def copy_ca(rgw_ca_bundle, root):
    shutil.copyfile(rgw_ca_bundle, os.path.join(root, "ca.pem"))
    os.chmod(os.path.join(root, "ca.pem"), 0o644)


def scenario_bucket(prefix, scenario):
    """The bucket a scenario migrates to (extensions/molecule/shared/group_vars/all.yml: PREFIX-SCENARIO)."""
    return "%s-%s" % (prefix, scenario.replace("_", "-"))


def molecule_env(rgw, data_dir, dns_port, bucket_prefix, base=None):
    """The environment of a molecule run (podman's CONTAINERS_CONF, the collection path, FOS_MOLECULE_*)."""
    from tests.services import podman

    env = podman.podman_env(base)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".cache", "collections"),
        FOS_MOLECULE_DATA=data_dir,
        FOS_MOLECULE_BUCKET=bucket_prefix,
        FOS_MOLECULE_RGW_PORT=str(rgw.https_port),
        FOS_MOLECULE_RGW_HOST_ENDPOINT=rgw.https_endpoint,
        FOS_MOLECULE_CA=rgw.ca_bundle,
        FOS_MOLECULE_DNS_PORT=str(dns_port),
        AWS_ACCESS_KEY_ID=rgw.access_key,
        AWS_SECRET_ACCESS_KEY=rgw.secret_key,
    )
    return env


ENV_KEYS = ("CONTAINERS_CONF", "ANSIBLE_COLLECTIONS_PATH", "FOS_MOLECULE_DATA", "FOS_MOLECULE_BUCKET",
            "FOS_MOLECULE_RGW_PORT", "FOS_MOLECULE_RGW_HOST_ENDPOINT", "FOS_MOLECULE_CA", "FOS_MOLECULE_DNS_PORT",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


# --------------------------------------------------------------------------- CLI


def _serve_dns(args):
    from tests.nginx_proxy_support import StubDNS

    dns = StubDNS(answer=HOST_FROM_CONTAINER).start()
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(str(dns.port))
    os.replace(tmp, args.port_file)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    while not stop:
        time.sleep(0.5)
    dns.stop()
    return 0


def _start_dns(state_dir):
    port_file = os.path.join(state_dir, "dns.port")
    if os.path.exists(port_file):
        os.unlink(port_file)
    proc = subprocess.Popen([sys.executable, "-m", "tests.molecule_host", "dns", "--port-file", port_file], cwd=REPO,
                            start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.exists(port_file):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the stub DNS did not start")
        time.sleep(0.1)
    with open(port_file) as fh:
        return proc.pid, int(fh.read())


def _state(state_dir):
    path = os.path.join(state_dir, "molecule-host.json")
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def cmd_up(args):
    from tests.services import cli, podman

    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, exist_ok=True)
    if _state(state_dir):
        raise SystemExit("already up in %s: run `down` first" % state_dir)
    for suite in args.suite or ["bookworm"]:
        podman.ensure_image(suite=suite)
    started = []
    try:
        for name in ("ceph", "postgres"):
            started.append((name, cli.STARTERS[name]()))  # detached (persistent): `down` stops them by PID
    finally:
        # What `python -m tests.services down` reads (and `down` below calls), even after a failed start.
        fd = os.open(os.path.join(state_dir, "services.json"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"state_dir": state_dir, "services": {k: svc.info() for k, svc in started}}, fh, indent=2)
    rgw, pg = started[0][1], started[1][1]
    data_dir = tempfile.mkdtemp(prefix="fos-molecule-host-")
    os.chmod(data_dir, 0o755)
    copy_ca(rgw.ca_bundle, data_dir)
    build_mastodon(pg, data_dir)
    build_misskey(pg, data_dir)
    dns_pid, dns_port = _start_dns(state_dir)
    prefix = "fos-mol-" + uuid.uuid4().hex[:8]
    env = molecule_env(rgw, data_dir, dns_port, prefix, base={})
    env_file = os.path.join(state_dir, "env.sh")
    fd = os.open(env_file + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("# Written by python -m tests.molecule_host up: the environment of `molecule test --all`.\n")
        for key in ENV_KEYS:
            fh.write("export %s=%s\n" % (key, shlex.quote(env[key])))
    os.replace(env_file + ".tmp", env_file)
    with open(os.path.join(state_dir, "molecule-host.json"), "w") as fh:
        json.dump({"data_dir": data_dir, "dns_pid": dns_pid, "bucket_prefix": prefix}, fh)
    print("ready: . %s && molecule test --all   (from %s)" % (shlex.quote(env_file), REPO))
    return 0


def cmd_down(args):
    from tests.services import cli

    state_dir = os.path.abspath(args.state_dir)
    state = _state(state_dir)
    if state:
        try:
            os.kill(state["dns_pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        shutil.rmtree(state["data_dir"], ignore_errors=True)
        os.unlink(os.path.join(state_dir, "molecule-host.json"))
    for name in ("env.sh", "dns.port"):
        if os.path.exists(os.path.join(state_dir, name)):
            os.unlink(os.path.join(state_dir, name))
    return cli.cmd_down(SimpleNamespace(state_dir=state_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.molecule_host", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the services, build the apps, write STATE_DIR/env.sh")
    up.add_argument("--state-dir", default=os.path.join(REPO, ".cache", "molecule-host"))
    up.add_argument("--suite", action="append", choices=["bookworm", "bullseye"],
                    help="image(s) to make sure of (default bookworm; the bullseye scenario needs bullseye too)")
    down = sub.add_parser("down", help="stop what `up` started and remove the apps' data")
    down.add_argument("--state-dir", default=os.path.join(REPO, ".cache", "molecule-host"))
    dns = sub.add_parser("dns", help=argparse.SUPPRESS)
    dns.add_argument("--port-file", required=True)
    args = parser.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "dns": _serve_dns}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
