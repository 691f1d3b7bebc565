"""Command line of the harness, for the demo and molecule (run from the repository root):

    python -m tests.services up --state-dir DIR [ceph] [postgres] [nginx] [--memstore-bytes N]
        start the services (all three when none is named), detached from this command; write
        DIR/services.json (endpoints, keys, ports, paths) and print it.
    python -m tests.services down --state-dir DIR
        stop them by PID and remove their temp dirs (and DIR/services.json).
    python -m tests.services leftovers
        list any harness daemon (fos-test- marker), fos-test- container or temp dir still there; exit 1 if any.
    python -m tests.services image [--rebuild]
        make sure podman has localhost/fos-bookworm-systemd:latest (tests/services/podman.py).
"""

import argparse
import json
import os
import sys

from . import procs
from .base import ServiceError

ORDER = ("ceph", "postgres", "nginx")
ALIASES = {"rgw": "ceph", "ceph": "ceph", "pg": "postgres", "postgres": "postgres", "postgresql": "postgres",
           "nginx": "nginx"}

DEFAULT_NGINX_SITE = """server {
    listen 127.0.0.1:%(port)d;
    server_name localhost;
    root %(prefix)s/html;
    location / {
        try_files $uri $uri/ =404;
    }
}
"""


def _services_file(state_dir):
    return os.path.join(state_dir, "services.json")


def _load(state_dir):
    try:
        with open(_services_file(state_dir)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _alive(data):
    return [name for name, svc in (data or {}).get("services", {}).items()
            if any(procs.pid_alive(r["pid"]) for r in procs.pid_records(svc["workdir"]))]


def start_nginx(memstore_bytes=None):
    from .nginx import Nginx

    n = Nginx(persistent=True)
    with open(n.path("html", "index.html"), "w") as f:
        f.write("fos-test nginx\n")
    n.write_config(DEFAULT_NGINX_SITE % {"port": n.port, "prefix": n.prefix}, wrap=True, kind="http")
    return n.start()


def start_ceph(memstore_bytes=None):
    from .ceph import CephRGW

    return CephRGW(memstore_bytes=memstore_bytes, persistent=True).start()


def start_postgres(memstore_bytes=None):
    from .postgres import Postgres

    return Postgres(persistent=True).start()


STARTERS = {"ceph": start_ceph, "postgres": start_postgres, "nginx": start_nginx}


def cmd_up(args):
    wanted = []
    for name in args.services or ORDER:
        key = ALIASES.get(name.lower())
        if key is None:
            raise SystemExit("unknown service %r (choose from ceph, postgres, nginx)" % name)
        if key not in wanted:
            wanted.append(key)
    wanted.sort(key=ORDER.index)
    os.makedirs(args.state_dir, exist_ok=True)
    old = _load(args.state_dir)
    if old and _alive(old):
        raise SystemExit("services already up in %s (%s): run `down` first" % (args.state_dir, ", ".join(_alive(old))))
    started = []
    try:
        for key in wanted:
            started.append((key, STARTERS[key](memstore_bytes=args.memstore_bytes)))
    except (ServiceError, OSError) as exc:
        for _key, svc in reversed(started):
            svc.stop()
        sys.stderr.write("up failed: %s\n" % exc)
        return 1
    data = {"state_dir": os.path.abspath(args.state_dir), "services": {k: s.info() for k, s in started}}
    path = _services_file(args.state_dir)
    with open(path + ".tmp", "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
    os.chmod(path + ".tmp", 0o600)  # it holds keys and passwords
    os.rename(path + ".tmp", path)
    print(json.dumps(data, indent=2, sort_keys=True))
    return 0


def cmd_down(args):
    data = _load(args.state_dir)
    if not data:
        print("nothing recorded in %s" % _services_file(args.state_dir))
        return 0
    order = sorted(data.get("services", {}), key=lambda k: ORDER.index(k) if k in ORDER else 99, reverse=True)
    for key in order:
        stopped = procs.stop_workdir(data["services"][key]["workdir"])
        print("%s: stopped %s" % (key, ", ".join(stopped) or "nothing (not running)"))
    os.unlink(_services_file(args.state_dir))
    return 0


def cmd_leftovers(args):
    found = procs.find_leftovers(containers=not args.no_containers)
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        labels = {"processes": "process", "containers": "container", "dirs": "dir"}
        for kind, items in found.items():
            for item in items:
                print("%s: %s" % (labels.get(kind, kind), item))
    return 1 if any(found.values()) else 0


def cmd_image(args):
    from . import podman

    print(podman.ensure_image(rebuild=args.rebuild))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.services", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start services (default: all) and write STATE_DIR/services.json")
    up.add_argument("--state-dir", required=True)
    up.add_argument("--memstore-bytes", type=int, default=None,
                    help="Ceph memstore size in bytes (data lives in RAM; default 1.5 GiB)")
    up.add_argument("services", nargs="*", help="ceph, postgres, nginx")
    down = sub.add_parser("down", help="stop the services recorded in STATE_DIR/services.json")
    down.add_argument("--state-dir", required=True)
    left = sub.add_parser("leftovers", help="list harness processes/containers/dirs still there; exit 1 if any")
    left.add_argument("--json", action="store_true")
    left.add_argument("--no-containers", action="store_true", help="do not ask podman")
    image = sub.add_parser("image", help="build (debootstrap, cached) or re-import the podman base image for molecule")
    image.add_argument("--rebuild", action="store_true", help="run debootstrap again even if a cached tarball exists")
    args = parser.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "leftovers": cmd_leftovers, "image": cmd_image}[args.command](args)
