"""migrate.yml refuses a TLS certificate nginx (or a browser) would refuse in its pre-flight, before the bucket,
the proxy's cache directory or any file exists (issue 24 item 3): on the production-shaped host of
tests/migrate_support.py in mode subdomain, whose proxy names its own certificate for s3.DOMAIN. Each run stops
at the pre-flight. The checks themselves: tests/unit/test_tls_certificate.py."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from tests.ansible_helpers import REPO, run_playbook
from tests.migrate_support import PROXY_DOMAIN, checksums, prepare

MIGRATE = str(REPO / "playbooks" / "migrate.yml")


@pytest.fixture(scope="module")
def host(pg, rgw, s3):
    """One host for the four cases: each run must leave it as it was (the test checks that)."""
    from tests.nginx_proxy_support import StubDNS
    from tests.services.nginx import Nginx

    root = tempfile.mkdtemp(prefix="fos-test-certs-")
    os.chmod(root, 0o755)
    dns, nginx = StubDNS().start(), Nginx()
    try:
        made = prepare(os.path.join(root, "subdomain"), pg, rgw, nginx, dns, "fos-certs-" + uuid.uuid4().hex[:12],
                       mode="subdomain")
        made.extra_vars["migrate_state_dir"] = os.path.join(root, "subdomain", "state")
        yield made
    finally:
        from tests.conftest import empty_and_delete_bucket

        try:  # only if a run made it after all (the test then fails)
            empty_and_delete_bucket(s3, made.extra_vars["migrate_bucket"])
        except Exception:  # noqa: BLE001 - not made: nothing to remove
            pass
        nginx.stop()
        dns.stop()
        shutil.rmtree(root, ignore_errors=True)


def bad_certificate(host, case):
    """(extra vars pointing the proxy at a bad certificate or key, what the refusal must say)."""
    tls = host.layout["tls"]
    proxy_cert, proxy_key = host.certs[PROXY_DOMAIN]
    app_cert, app_key = host.certs["mastodon.test"]
    if case == "absent":
        live = os.path.join(tls, "live", PROXY_DOMAIN)
        cert, key = os.path.join(live, "fullchain.pem"), os.path.join(live, "privkey.pem")
        return cert, key, "the certificate %s does not exist" % cert
    if case == "unreadable":  # the key is a directory: no file nginx could read
        key = os.path.join(tls, "privkey-dir.pem")
        os.makedirs(key, exist_ok=True)
        return proxy_cert, key, "the private key %s cannot be used: %s is not a regular file" % (key, key)
    if case == "mismatched":
        return proxy_cert, app_key, ("the private key %s does not belong to the certificate %s (their public keys differ)"
                                     % (app_key, proxy_cert))
    assert case == "wrong name"
    return app_cert, app_key, "the certificate %s is not for %s: its names (subjectAltName) are mastodon.test" % (
        app_cert, PROXY_DOMAIN)


@pytest.mark.parametrize("case", ["absent", "unreadable", "mismatched", "wrong name"])
def test_a_bad_certificate_is_refused_before_anything_changes(host, s3, case):
    cert, key, problem = bad_certificate(host, case)
    before = checksums(host.root)
    res = run_playbook(MIGRATE, env=host.env, extra_vars=dict(
        host.extra_vars, nginx_proxy_ssl_certificate=cert, nginx_proxy_ssl_certificate_key=key))
    assert res.rc != 0, case
    failed = [t["name"].split(" : ")[-1] for t in res.tasks if t["result"].get("failed")]
    assert failed == ["Refuse a certificate nginx or browsers would refuse"], (case, res.failure_messages())
    message = " ".join(res.failure_messages())
    assert problem in message, message
    # How to obtain one: certbot's webroot (what the proxy serves on port 80) for the media name.
    assert "certbot certonly --webroot -w %s -d %s" % (host.layout["acme"], PROXY_DOMAIN) in message, message
    assert message.rstrip().endswith("Nothing was changed."), message
    # Nothing changed: no bucket, no cache directory, no file of the host added, removed or changed.
    try:
        s3.head_bucket(Bucket=host.extra_vars["migrate_bucket"])
        exists = True
    except s3.exceptions.ClientError:
        exists = False
    assert not exists
    assert not os.path.exists(host.layout["cache"])
    assert checksums(host.root) == before
