"""Shared pytest fixtures: real throwaway services (tests/services/) and the collection on sys.path.

Session fixtures start lazily (only when a test asks for them) and once per session:
  rgw  - single-node Ceph RGW: .http_endpoint .https_endpoint .ca_bundle .access_key .secret_key
         .dns_name .http_port .https_port
  pg   - PostgreSQL: .host .port .socket_dir .user .password .dsn(db) .create_database(name) .execute(sql, db)
  s3   - the collection's S3 client (plugins/module_utils/s3/client.py) on rgw.https_endpoint with its CA
  podman_image - localhost/fos-bookworm-systemd:latest (tests/services/podman.py: runc, lowered ulimits)
Function fixtures:
  bucket        - a fresh, empty bucket on rgw (emptied and deleted afterwards)
  nginx_factory - nginx_factory(port=None) -> tests.services.nginx.Nginx (stopped after the test)
Everything started is stopped at session end, by atexit/SIGTERM, or by the reaper if pytest is killed.
"""

import os
import sys
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_PATH = os.path.join(REPO, ".cache", "collections")

# The collection as `ansible_collections.fediverse.object_storage` (symlink made by scripts/bootstrap.sh),
# and the repo root so that `tests.services` imports.
for _p in (COLLECTIONS_PATH, REPO):
    if _p not in sys.path:
        sys.path.insert(0, _p)
os.environ["ANSIBLE_COLLECTIONS_PATH"] = COLLECTIONS_PATH

from tests.services import base as _services_base  # noqa: E402

_START_TIMES = {}


# The suite runs on two pytest-xdist workers (scripts/test.sh: -n 2 --dist worksteal). Workers take the
# collection in two contiguous halves and the idle one steals from the other's tail, so the files whose
# tests take minutes go first (their order below: most expensive first, measured with --durations): a
# long test started last would leave the other worker idle. Every other test keeps its collection order.
EXPENSIVE_FIRST = (
    "test_molecule.py", "test_migrate.py", "test_migrate_misskey_move.py", "test_nginx_proxy.py",
    "test_awx_runner.py", "test_misskey_drive_move.py", "test_media_copy_role.py", "test_oldest_ansible.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        name = os.path.basename(str(item.path))
        return EXPENSIVE_FIRST.index(name) if name in EXPENSIVE_FIRST else len(EXPENSIVE_FIRST)

    items[:] = sorted(items, key=rank)  # stable: the same order on every worker


@pytest.fixture(scope="session")
def rgw():
    from tests.services.ceph import CephRGW

    service = CephRGW().start()
    _START_TIMES["ceph rgw"] = service.start_seconds
    yield service
    service.stop()


@pytest.fixture(scope="session")
def pg():
    from tests.services.postgres import Postgres

    service = Postgres().start()
    _START_TIMES["postgresql"] = service.start_seconds
    yield service
    service.stop()


@pytest.fixture(scope="session")
def s3(rgw):
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client

    return s3_client(rgw.https_endpoint, access_key=rgw.access_key, secret_key=rgw.secret_key,
                     ca_bundle=rgw.ca_bundle)


def empty_and_delete_bucket(client, name):
    """Delete every object and pending multipart upload of ``name``, then the bucket."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    for upload in client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        client.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(s3):
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import is_not_found

    name = "fos-test-" + uuid.uuid4().hex[:16]
    s3.create_bucket(Bucket=name)
    yield name
    try:
        empty_and_delete_bucket(s3, name)
    except Exception as exc:  # the test may have deleted it itself
        if not is_not_found(exc):
            raise


@pytest.fixture
def nginx_factory():
    from tests.services.nginx import Nginx

    made = []

    def factory(port=None):
        instance = Nginx(port=port)
        made.append(instance)
        return instance

    yield factory
    for instance in reversed(made):
        instance.stop()
        if instance.start_seconds is not None:
            _START_TIMES.setdefault("nginx", instance.start_seconds)


@pytest.fixture(scope="session")
def appuser():
    """The app's own unprivileged user (``fos-app``, made with useradd): tests/app_user.py."""
    from tests.app_user import app_user

    return app_user()


@pytest.fixture
def admin():
    """An admin's unprivileged login user (``fos-admin``, useradd) with sudo (a sudoers drop-in, removed
    after the test): ``run_playbook(..., as_user=admin)`` runs the playbook as that user (tests/admin_user.py)."""
    from tests.admin_user import admin_user

    with admin_user().sudoers() as user:
        yield user


@pytest.fixture
def app_base():
    """A root-owned 0755 directory the app user can traverse (pytest's tmp_path is 0700), removed after."""
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="fos-app-base-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="session")
def podman_image():
    """localhost/fos-bookworm-systemd:latest (built once with debootstrap, then cached); at session end
    the fos-test containers of this session (and of crashed earlier sessions) are removed."""
    from tests.services import podman

    yield podman.ensure_image()
    podman.cleanup_owned()


def pytest_sessionfinish(session, exitstatus):
    _services_base.stop_all()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _START_TIMES:
        terminalreporter.write_sep("-", "test services start times")
        for name, seconds in sorted(_START_TIMES.items()):
            terminalreporter.write_line("%-12s %6.2f s" % (name, seconds))
