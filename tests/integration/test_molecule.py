"""Molecule scenarios of extensions/molecule (issue 7), run with `molecule test` (podman driver, the
local systemd image, no registry, no Galaxy).

The container is the app host (nginx from Debian, the synthetic Mastodon or Misskey, fake systemd
services); PostgreSQL, Ceph RGW and a stub DNS are the harness's services on this machine, reached from
the container as 10.0.2.2 (slirp4netns with allow_host_loopback). This test builds the app on the host
(database rows, media files, .env.production or package.json/default.yml), mounts it read-only into the
container (prepare.yml copies it into place), exports the environment molecule.yml and the shared
playbooks read, runs `molecule test -s NAME` (create, prepare, converge = playbooks/migrate.yml,
idempotence, verify, destroy) and then checks the bucket (and Misskey's meta row) from the host.

Select with `-m molecule`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from types import SimpleNamespace

import pytest

from tests.fixtures.mastodon_instance import build_instance
from tests.migrate_support import write_env_file
from tests.nginx_proxy_support import StubDNS
from tests.services import podman

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
HOST_FROM_CONTAINER = "10.0.2.2"
MISSKEY_VERSION = "12.117.1"
MISSKEY_PROBE_KEY = "storage/fos-molecule-probe.png"

pytestmark = [pytest.mark.molecule, pytest.mark.slow]


def misskey_meta_ddl():
    from tests.integration.test_misskey_role import META_DDL, STORAGE_COLUMNS

    return META_DDL[MISSKEY_VERSION], STORAGE_COLUMNS


@pytest.fixture
def molecule_bucket(s3):
    from tests.conftest import empty_and_delete_bucket

    name = "fos-mol-" + uuid.uuid4().hex[:12]
    yield name
    try:
        empty_and_delete_bucket(s3, name)
    except Exception:  # noqa: BLE001 - the scenario may have failed before creating it
        pass


@pytest.fixture
def data_dir():
    # Not under pytest's tmp_path (0700): nginx's workers (www-data) read the copied media in the container.
    root = tempfile.mkdtemp(prefix="fos-test-molecule-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def chmod_tree(root):
    for dirpath, dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for d in dirs:
            os.chmod(os.path.join(dirpath, d), 0o755)


def build_mastodon(pg, root):
    live = os.path.join(root, "mastodon", "live")
    system = os.path.join(live, "public", "system")
    os.makedirs(system)
    dbname = "mol_mastodon_" + uuid.uuid4().hex[:8]
    instance = build_instance(pg, dbname, system, missing=())
    # The container reaches the host's PostgreSQL (127.0.0.1:PORT) as 10.0.2.2:PORT.
    write_env_file(os.path.join(live, ".env.production"),
                   SimpleNamespace(host=HOST_FROM_CONTAINER, port=pg.port, user=pg.user, password=pg.password), dbname)
    chmod_tree(os.path.join(root, "mastodon"))
    return instance


def build_misskey(pg, root):
    ddl, _columns = misskey_meta_ddl()
    dbname = "mol_misskey_" + uuid.uuid4().hex[:8]
    pg.create_database(dbname)
    pg.execute(ddl, dbname)
    pg.execute("""INSERT INTO meta ("id", "name", "smtpPass") VALUES ('x', 'Molecule', 'smtp-secret')""", dbname)
    directory = os.path.join(root, "misskey", "misskey")
    os.makedirs(os.path.join(directory, ".config"))
    with open(os.path.join(directory, "package.json"), "w") as fh:
        json.dump({"name": "misskey", "version": MISSKEY_VERSION}, fh, indent="\t")
    with open(os.path.join(directory, ".config", "default.yml"), "w") as fh:
        fh.write("url: https://misskey.test/\nport: 3000\n\n# PostgreSQL\ndb:\n  host: %s\n  port: %d\n"
                 "  db: %s\n  user: %s\n  pass: %s\n\nredis:\n  host: localhost\n  port: 6379\n"
                 % (HOST_FROM_CONTAINER, pg.port, dbname, pg.user, pg.password))
    chmod_tree(os.path.join(root, "misskey"))
    return dbname


def read_meta(pg, dbname):
    columns = [row[0] for row in pg.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'meta' ORDER BY ordinal_position", dbname)]
    return [dict(zip(columns, row)) for row in pg.execute("SELECT * FROM meta", dbname)]


def keys_in(s3, bucket):
    return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])}


def run_molecule(scenario, env):
    platform = "fos-test-mol-" + scenario.replace("_", "-")
    started = time.monotonic()
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1200)
    finally:
        podman.remove(platform)  # whatever happened (molecule's own destroy normally did it)
    elapsed = time.monotonic() - started
    print("molecule test -s %s: rc=%s in %.1f s" % (scenario, proc.returncode, elapsed))
    return proc, elapsed


@pytest.mark.parametrize("scenario", ["mastodon_subdomain", "mastodon_directory", "mastodon_system", "misskey"])
def test_molecule_scenario(scenario, pg, rgw, s3, podman_image, molecule_bucket, data_dir):
    shutil.copyfile(rgw.ca_bundle, os.path.join(data_dir, "ca.pem"))
    os.chmod(os.path.join(data_dir, "ca.pem"), 0o644)
    app = "misskey" if scenario == "misskey" else "mastodon"
    instance = build_mastodon(pg, data_dir) if app == "mastodon" else None
    misskey_db = build_misskey(pg, data_dir) if app == "misskey" else None
    # nginx in the container resolves BUCKET.s3.localhost with `resolver 10.0.2.2:PORT`: answer 10.0.2.2.
    dns = StubDNS(answer=HOST_FROM_CONTAINER).start()
    env = podman.podman_env()
    env.update(
        PATH=VENV_BIN + os.pathsep + env.get("PATH", ""),
        ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".cache", "collections"),
        FOS_MOLECULE_DATA=data_dir,
        FOS_MOLECULE_BUCKET=molecule_bucket,
        FOS_MOLECULE_RGW_PORT=str(rgw.https_port),
        FOS_MOLECULE_RGW_HOST_ENDPOINT=rgw.https_endpoint,
        FOS_MOLECULE_CA=rgw.ca_bundle,
        FOS_MOLECULE_DNS_PORT=str(dns.port),
        AWS_ACCESS_KEY_ID=rgw.access_key,
        AWS_SECRET_ACCESS_KEY=rgw.secret_key,
        PY_COLORS="0", ANSIBLE_FORCE_COLOR="0",
    )
    try:
        proc, _elapsed = run_molecule(scenario, env)
    finally:
        dns.stop()
    output = proc.stdout + proc.stderr
    if os.environ.get("FOS_MOLECULE_LOG_DIR"):
        with open(os.path.join(os.environ["FOS_MOLECULE_LOG_DIR"], "molecule-%s.log" % scenario), "w") as fh:
            fh.write(output)
    failed = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]
    assert proc.returncode == 0, "\n".join(failed[:5]) + "\n...\n" + output[-6000:]
    assert rgw.secret_key not in output
    # nginx in the container really resolved the bucket's virtual host through the stub DNS.
    assert ("%s.s3.localhost" % molecule_bucket, 1) in dns.queries

    if app == "mastodon":
        # Every DB-referenced cached object, nothing else (local media are not copied by default).
        assert keys_in(s3, molecule_bucket) == set(instance.expected)
        return
    # Misskey v12: the meta row switched to the bucket (directory mode: baseUrl DOMAIN, prefix storage).
    _ddl, columns = misskey_meta_ddl()
    [row] = read_meta(pg, misskey_db)
    assert {c: row[c] for c in columns} == {
        "useObjectStorage": True, "objectStorageBucket": molecule_bucket, "objectStoragePrefix": "storage",
        "objectStorageBaseUrl": "https://misskey.test", "objectStorageEndpoint": "s3.localhost",
        "objectStorageRegion": None, "objectStoragePort": rgw.https_port, "objectStorageUseSSL": True,
        "objectStorageAccessKey": rgw.access_key, "objectStorageSecretKey": rgw.secret_key,
        "objectStorageUseProxy": True, "objectStorageSetPublicRead": False, "objectStorageS3ForcePathStyle": True,
    }
    assert (row["id"], row["name"], row["smtpPass"]) == ("x", "Molecule", "smtp-secret")
    # The probe object verify.yml uploaded, served through nginx's /storage/ location.
    assert keys_in(s3, molecule_bucket) == {MISSKEY_PROBE_KEY}
