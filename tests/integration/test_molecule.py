"""Molecule scenarios of extensions/molecule (issues 7, 10, 13), run with `molecule test` (podman driver,
the local systemd images, no registry, no Galaxy).

The container is the app host, shaped like production: nginx with the app's own site on 80/443 (Mastodon's
dist/nginx.conf shape, Misskey's documented site) in front of a stub app backend, the synthetic Mastodon or
Misskey, fake systemd services. PostgreSQL, Ceph RGW and a stub DNS are the harness's services on this
machine, reached from the container as 10.0.2.2 (slirp4netns with allow_host_loopback). This test builds
the apps on the host (tests/molecule_host.py, which also serves a plain `molecule test --all`), mounts them
read-only into the container, exports the environment extensions/molecule/config.yml and the shared
playbooks read, runs `molecule test -s NAME` (create, prepare, converge = playbooks/migrate.yml,
idempotence, verify, destroy) and then checks the bucket (and Misskey's meta row) from the host.

Two scenarios run at the same time (PAIRS: each has its own container, data directory, stub DNS, bucket
and database, and molecule keeps each scenario's state apart), which halves the wall time of the four.

Scenarios (four, so the suite's time stays what it was): Mastodon in subdomain and directory modes on
Debian bookworm, Mastodon in system mode on the RedHat/Fedora nginx layout (mimicked on Debian: no
Fedora/RHEL image can be built here), Misskey 12 in directory mode; mastodon_directory_bullseye runs
the directory mode on Debian bullseye (Python 3.9, nginx 1.18) instead of bookworm.

Select with `-m molecule`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import molecule_host as mh
from tests.misskey_host import STORAGE_COLUMNS, read_meta
from tests.nginx_proxy_support import StubDNS
from tests.services import podman

REPO = mh.REPO
VENV_BIN = os.path.dirname(sys.executable)

pytestmark = [pytest.mark.molecule, pytest.mark.slow]

SCENARIOS = ["mastodon_subdomain", "mastodon_directory_bullseye", "mastodon_system_redhat", "misskey"]
IMAGES = {"mastodon_directory_bullseye": "bullseye"}
# Run two at a time, a longer scenario with a shorter one; every scenario exactly once.
PAIRS = [("mastodon_directory_bullseye", "misskey"), ("mastodon_subdomain", "mastodon_system_redhat")]
assert sorted(s for pair in PAIRS for s in pair) == sorted(SCENARIOS)


@pytest.fixture
def bucket_prefix(s3):
    from tests.conftest import empty_and_delete_bucket

    prefix = "fos-mol-" + uuid.uuid4().hex[:12]
    yield prefix
    for scenario in SCENARIOS:
        try:
            empty_and_delete_bucket(s3, mh.scenario_bucket(prefix, scenario))
        except Exception:  # noqa: BLE001 - the scenario may have failed before creating it
            pass


@pytest.fixture
def data_dir():
    # Not under pytest's tmp_path (0700): nginx's workers read the copied media in the container.
    root = tempfile.mkdtemp(prefix="fos-test-molecule-")
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def keys_in(s3, bucket):
    return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])}


def run_molecule(scenario, env):
    platform = "fos-test-mol-" + scenario
    started = time.monotonic()
    try:
        proc = subprocess.run([os.path.join(VENV_BIN, "molecule"), "test", "-s", scenario], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=1200)
    finally:
        podman.remove(platform)  # whatever happened (molecule's own destroy normally did it)
    elapsed = time.monotonic() - started
    print("molecule test -s %s: rc=%s in %.1f s" % (scenario, proc.returncode, elapsed))
    return proc, elapsed


def set_up(scenario, pg, rgw, bucket_prefix, data_dir):
    """The app on the host, under DATA_DIR/SCENARIO, its stub DNS and the environment of its molecule run."""
    if scenario in IMAGES:  # its molecule.yml names the image
        podman.ensure_image(suite=IMAGES[scenario])
    root = os.path.join(data_dir, scenario)
    os.makedirs(root)
    os.chmod(root, 0o755)
    mh.copy_ca(rgw.ca_bundle, root)
    app = "misskey" if scenario.startswith("misskey") else "mastodon"
    instance = mh.build_mastodon(pg, root) if app == "mastodon" else None
    misskey_db = mh.build_misskey(pg, root) if app == "misskey" else None
    # nginx in the container resolves BUCKET.s3.localhost with `resolver 10.0.2.2:PORT`: answer 10.0.2.2.
    dns = StubDNS(answer=mh.HOST_FROM_CONTAINER).start()
    env = mh.molecule_env(rgw, root, dns.port, bucket_prefix)
    env.update(PATH=VENV_BIN + os.pathsep + env.get("PATH", ""), PY_COLORS="0", ANSIBLE_FORCE_COLOR="0")
    return dict(scenario=scenario, app=app, instance=instance, misskey_db=misskey_db, dns=dns, env=env)


def check_scenario(run, proc, pg, rgw, s3, bucket_prefix):
    scenario, app, dns, instance = run["scenario"], run["app"], run["dns"], run["instance"]
    bucket = mh.scenario_bucket(bucket_prefix, scenario)
    output = proc.stdout + proc.stderr
    if os.environ.get("FOS_MOLECULE_LOG_DIR"):
        with open(os.path.join(os.environ["FOS_MOLECULE_LOG_DIR"], "molecule-%s.log" % scenario), "w") as fh:
            fh.write(output)
    failed = [line for line in output.splitlines() if line.startswith(("fatal:", "failed:"))]
    assert proc.returncode == 0, "\n".join(failed[:5]) + "\n...\n" + output[-6000:]
    assert rgw.secret_key not in output
    # nginx in the container really resolved the bucket's virtual host through the stub DNS.
    assert ("%s.s3.localhost" % bucket, 1) in dns.queries

    if app == "mastodon":
        # Every DB-referenced object, nothing else (local media are copied by default, then verified).
        assert keys_in(s3, bucket) == set(instance.expected) | set(instance.expected_local)
        return
    # Misskey v12: the meta row switched to the bucket (directory mode: baseUrl DOMAIN, prefix storage).
    [row] = read_meta(pg, run["misskey_db"])
    assert {c: row[c] for c in STORAGE_COLUMNS} == {
        "useObjectStorage": True, "objectStorageBucket": bucket, "objectStoragePrefix": "storage",
        # Misskey's S3 client reads the port from objectStorageEndpoint only; the region is never NULL
        # (Misskey 13.10+ cannot upload without one): not a Vultr cluster, so us-east-1.
        "objectStorageBaseUrl": "https://misskey.test", "objectStorageEndpoint": "s3.localhost:%d" % rgw.https_port,
        "objectStorageRegion": "us-east-1", "objectStoragePort": rgw.https_port, "objectStorageUseSSL": True,
        "objectStorageAccessKey": rgw.access_key, "objectStorageSecretKey": rgw.secret_key,
        "objectStorageUseProxy": True, "objectStorageSetPublicRead": False, "objectStorageS3ForcePathStyle": True,
    }
    assert (row["id"], row["name"], row["smtpPass"]) == ("x", "Molecule", "smtp-secret")
    # The probe object verify.yml uploaded, served through nginx's /storage/ location.
    assert keys_in(s3, bucket) == {mh.MISSKEY_PROBE_KEY}


@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_molecule_scenarios(pair, pg, rgw, s3, podman_image, bucket_prefix, data_dir):
    """`molecule test -s A` and `-s B` at the same time; then each scenario's checks (all of them reported)."""
    runs = []
    try:
        for scenario in pair:
            runs.append(set_up(scenario, pg, rgw, bucket_prefix, data_dir))
        with ThreadPoolExecutor(max_workers=len(runs)) as pool:
            futures = [pool.submit(run_molecule, run["scenario"], run["env"]) for run in runs]
            procs = [future.result()[0] for future in futures]
    finally:
        for run in runs:
            run["dns"].stop()
    failures = []
    for run, proc in zip(runs, procs):
        try:
            check_scenario(run, proc, pg, rgw, s3, bucket_prefix)
        except AssertionError as exc:
            failures.append("%s: %s" % (run["scenario"], exc))
    assert not failures, "\n\n".join(failures)
