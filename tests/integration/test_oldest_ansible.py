"""migrate.yml and rollback.yml with the oldest ansible-core that meta/runtime.yml admits
(requires_ansible): .venv-oldest (requirements/oldest.txt, scripts/bootstrap.sh), on a Python that
ansible-core supports as a controller. The other tests run the newest ansible-core (.venv); this one
catches what only an older one refuses or does differently (module_defaults templated once per block
before the role's facts exist, templating of data, ...).

The managed host's Python is .venv-oldest's too (3.10-3.12, with boto3 and psycopg2): a 2.17
controller's hosts are of its time (Debian 12's Python 3.11), and ansible-core 2.17 supports target
Pythons up to 3.12 only, so running its modules on the main venv's newer Python would test a pairing
no admin has. One migration and one rollback on the production-shaped Mastodon host
(tests/migrate_support.py), proxy mode system.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.ansible_helpers import OLDEST_VENV, REPO, run_playbook
from tests.migrate_support import APP_HOST, checksums, prepare

MIGRATE = str(REPO / "playbooks" / "migrate.yml")
ROLLBACK = str(REPO / "playbooks" / "rollback.yml")


def oldest_core_version() -> str:
    proc = subprocess.run([str(OLDEST_VENV / "bin" / "python"), "-c",
                           "import ansible.release as r; print(r.__version__)"],
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def test_oldest_venv_has_the_declared_minimum():
    """.venv-oldest holds the minor that requires_ansible names: raising the floor moves the venv too."""
    declared = yaml.safe_load((REPO / "meta" / "runtime.yml").read_text())["requires_ansible"]
    minimum = re.fullmatch(r">=\s*(\d+)\.(\d+)\.\d+", declared)
    assert minimum, declared
    assert oldest_core_version().split(".")[:2] == list(minimum.groups()), (declared, oldest_core_version())


@pytest.fixture
def host(pg, rgw, nginx_factory, dns, bucket_name):
    # Not under pytest's tmp_path (0700): nginx's workers (www-data) read the local media.
    root = tempfile.mkdtemp(prefix="fos-test-oldest-")
    os.chmod(root, 0o755)
    made = prepare(os.path.join(root, "system"), pg, rgw, nginx_factory(), dns, bucket_name, mode="system")
    made.extra_vars["migrate_state_dir"] = os.path.join(root, "state")
    yield made
    shutil.rmtree(root, ignore_errors=True)


def run(host, playbook):
    return run_playbook(playbook, extra_vars=host.extra_vars, env=host.env, venv=OLDEST_VENV)


def test_migrate_then_rollback_on_the_oldest_ansible_core(host, s3, bucket_name):
    env_before = Path(host.env_file).read_bytes()
    local_before = checksums(host.system_root, skip_prefix="cache")
    cache_before = checksums(os.path.join(host.system_root, "cache"))
    inst = host.instance

    res = run(host, MIGRATE)
    assert res.rc == 0, res
    keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket_name)
            for o in page.get("Contents", [])}
    assert keys == set(inst.expected) | set(inst.expected_local)
    env = dict(line.split("=", 1) for line in Path(host.env_file).read_text().splitlines()
               if "=" in line and not line.startswith("#"))
    assert (env["S3_ENABLED"], env["S3_BUCKET"], env["S3_ALIAS_HOST"]) == ("true", bucket_name, APP_HOST + "/system")
    assert os.path.exists(host.marker), "the app was not restarted"
    assert checksums(os.path.join(host.system_root, "cache.old")) == cache_before
    assert res.task("Fetch the media through the proxy")["results"], res
    key = sorted(k for k, (_ctype, acl) in inst.expected.items() if acl is None and k.startswith("cache/"))[-1]
    served = host.get_media(key)
    assert (served.status, served.body) == (200, s3.get_object(Bucket=bucket_name, Key=key)["Body"].read()), served

    back = run(host, ROLLBACK)
    assert back.rc == 0, back
    assert Path(host.env_file).read_bytes() == env_before
    assert checksums(os.path.join(host.system_root, "cache")) == cache_before
    assert not os.path.exists(os.path.join(host.system_root, "cache.old"))
    assert checksums(host.system_root, skip_prefix="cache") == local_before
