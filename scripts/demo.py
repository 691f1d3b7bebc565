"""The demo: a Mastodon media migration against embedded local services.

Starts throwaway services on loopback (Ceph RGW over HTTPS, PostgreSQL holding a small synthetic
Mastodon database, nginx serving a Mastodon-like site), runs playbooks/migrate.yml against them
exactly as an admin would (keys in the environment), then fetches one migrated media URL through
the new proxy twice (X-Cache: MISS, then HIT). Everything is stopped at the end.

    scripts/demo.sh [MODE] [ANSIBLE-PLAYBOOK OPTIONS...]

MODE is directory (default), system or subdomain; further arguments go to ansible-playbook, e.g.
`scripts/demo.sh directory --check --diff` shows what a first run would change (and fetches nothing).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, ".cache", "collections")]
os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO, ".cache", "collections")

from tests.ansible_helpers import ansible_env  # noqa: E402
from tests.migrate_support import prepare  # noqa: E402
from tests.nginx_proxy_support import StubDNS  # noqa: E402
from tests.services.ceph import CephRGW  # noqa: E402
from tests.services.nginx import Nginx  # noqa: E402
from tests.services.postgres import Postgres  # noqa: E402


def say(text):
    print("\n\033[1m== %s\033[0m" % text if sys.stdout.isatty() else "\n== %s" % text, flush=True)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "directory"
    options = sys.argv[2:]
    root = tempfile.mkdtemp(prefix="fos-demo-")
    os.chmod(root, 0o755)
    started = []
    try:
        say("starting the embedded services (Ceph RGW, PostgreSQL, nginx)")
        rgw = CephRGW().start()
        started.append(rgw)
        pg = Postgres().start()
        started.append(pg)
        dns = StubDNS().start()
        started.append(dns)
        nginx = Nginx()
        started.append(nginx)
        print("Ceph RGW %s (HTTPS, CA %s), PostgreSQL 127.0.0.1:%s" % (rgw.https_endpoint, rgw.ca_bundle, pg.port))
        bucket = "demo-media-" + uuid.uuid4().hex[:8]
        host = prepare(os.path.join(root, "host"), pg, rgw, nginx, dns, bucket, mode=mode)
        print("synthetic Mastodon in %s: %d cached objects in the database, nginx on 127.0.0.1:%d"
              % (host.live, len(host.instance.expected), nginx.port))

        say("ansible-playbook playbooks/migrate.yml (mode %s, bucket %s)" % (mode, bucket))
        vars_file = os.path.join(root, "demo-vars.json")
        with open(vars_file, "w") as fh:
            import json

            json.dump(host.extra_vars, fh)
        inventory = os.path.join(root, "inventory.ini")
        with open(inventory, "w") as fh:
            fh.write("mastodon ansible_host=127.0.0.1 ansible_connection=local ansible_python_interpreter=%s\n"
                     % sys.executable)
        playbook = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
                    os.path.join(REPO, "playbooks", "migrate.yml"), "-i", inventory, "-e", "@" + vars_file] + options
        rc = subprocess.call(playbook, env=ansible_env(host.env, callback="default"), cwd=REPO)
        if rc != 0:
            print("migrate.yml failed (rc %d)" % rc)
            return rc
        if "--check" in options or "-C" in options:
            say("done: a check run (nothing was changed)")
            return 0

        say("fetching one migrated media URL through the proxy")
        key = sorted(k for k, (ctype, acl) in host.instance.expected.items() if acl is None and k.startswith("cache/"))[0]
        path = host.media_path(key)
        for _attempt in ("MISS expected", "HIT expected"):
            resp = host.get_media(key)
            print("GET https://%s%s -> %s, Content-Type: %s, %d bytes, X-Cache: %s"
                  % (host.proxy_host(), path, resp.status, resp.header("Content-Type"), len(resp.body),
                     resp.header("X-Cache")))
        if resp.status != 200 or resp.header("X-Cache") != "HIT":
            print("the proxy did not serve the object from its cache")
            return 1
        say("done: the media are in the bucket, served through the nginx proxy cache; the local cache is in cache.old")
        return 0
    finally:
        for service in reversed(started):
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others anyway
                print("could not stop %s: %s" % (service, exc))
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
