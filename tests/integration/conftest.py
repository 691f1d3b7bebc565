"""Fixtures shared by the integration tests: nginx in front of the bucket, a Misskey drive and its site."""

import json
import os
import shutil
import tempfile
import uuid

import pytest

from tests.fixtures.misskey_drive import FLAVOURS
from tests.misskey_drive_support import build_drive, start_site
from tests.nginx_proxy_support import StubDNS

@pytest.fixture
def dns():
    server = StubDNS().start()
    yield server
    server.stop()


@pytest.fixture
def public_bucket(s3, bucket):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Sid": "PublicRead", "Effect": "Allow", "Principal": {"AWS": "*"},
        "Action": "s3:GetObject", "Resource": "arn:aws:s3:::%s/*" % bucket}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return bucket


@pytest.fixture
def layout():
    """A Debian-like /etc/nginx, Mastodon's public/system and a systemd dir, readable by www-data."""
    root = tempfile.mkdtemp(prefix="fos-test-nginxproxy-")
    os.chmod(root, 0o755)
    paths = {name: os.path.join(root, *parts) for name, parts in {
        "conf_d": ("etc", "conf.d"), "available": ("etc", "sites-available"), "enabled": ("etc", "sites-enabled"),
        "snippets": ("etc", "snippets"), "public": ("public",), "system": ("public", "system"),
        "acme": ("acme",), "tls": ("tls",), "systemd": ("systemd",)}.items()}
    for path in paths.values():
        os.makedirs(path, mode=0o755, exist_ok=True)
    paths["root"] = root
    paths["cache"] = os.path.join(root, "cache", "fediverse_media")  # created by the role
    paths["dropin"] = os.path.join(paths["systemd"], "nginx.service.d")
    yield paths
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def bucket_name(s3):
    """A bucket name for a test that makes the bucket itself (migrate.yml); emptied and removed afterwards."""
    from tests.conftest import empty_and_delete_bucket

    name = "fos-migrate-" + uuid.uuid4().hex[:12]
    yield name
    try:
        empty_and_delete_bucket(s3, name)
    except Exception:  # noqa: BLE001 - the test may not have created it
        pass


@pytest.fixture
def resolve_s3_localhost(monkeypatch):
    """Resolve s3.localhost and *.s3.localhost to 127.0.0.1 in this process (the names do not resolve here)."""
    import socket

    real = socket.getaddrinfo

    def fake(host, *args, **kwargs):
        if isinstance(host, str) and (host == "s3.localhost" or host.endswith(".s3.localhost")):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture(params=["12.119.0", "2025.4.0"])
def drive(request, tmp_path, pg, rgw, bucket):
    """A Misskey host of each drive version, its meta row pointing at the bucket, the fixture drive in its
    files/ (tests/misskey_drive_support.py build_drive)."""
    return build_drive(pg, rgw, bucket, tmp_path, request.param)


@pytest.fixture(params=list(FLAVOURS))
def fork_drive(request, tmp_path, pg, rgw, bucket):
    """``drive`` of each version and of each fork supported on its own tables (tests/fixtures/misskey_drive.py
    FLAVOURS: Sharkey); for the tests that run the move, purge and rollback end to end per fork (issue 23)."""
    return build_drive(pg, rgw, bucket, tmp_path, request.param)


@pytest.fixture
def site(tmp_path, pg, drive, nginx_factory):
    """The ``drive``'s Misskey site on a started nginx (tests/misskey_drive_support.py start_site); 2025.x only."""
    if drive.version != "2025.4.0":
        pytest.skip("the nginx location does not depend on the version; one run is enough")
    s = start_site(tmp_path, pg, drive, nginx_factory())
    yield s
    s.standin.stop()


@pytest.fixture(scope="session")
def browser():
    """ONE headless Chromium per test session (per xdist worker), reused by every browser check
    (tests/browser_support.py)."""
    from tests.browser_support import Browser

    instance = Browser()
    yield instance
    instance.quit()
