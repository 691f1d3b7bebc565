"""Smoke tests of the test-services harness (issue 2): each throwaway service really works.

Ceph RGW: PutObject through the collection's S3 client over HTTPS; the botocore-defaults trap
(MissingContentLength over HTTPS, fine over HTTP); virtual-host style with the CA-signed
*.s3.localhost certificate. PostgreSQL: queries over TCP (scram password) and the unix socket.
nginx: `nginx -t` on configs rendered from templates/nginx/, and a started instance serving GETs.
"""

import os
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import error_code, s3_client

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEMPLATES = os.path.join(REPO, "templates")

BODY = b"fos-test smoke object\n" * 64


# --- Ceph RGW -----------------------------------------------------------------------------------

def test_rgw_endpoints_shape(rgw):
    assert rgw.https_endpoint == "https://127.0.0.1:%d" % rgw.https_port
    assert rgw.http_endpoint == "http://127.0.0.1:%d" % rgw.http_port
    assert rgw.dns_name == "s3.localhost"
    with open(rgw.ca_bundle) as f:
        ca = f.read()
    # The CA handed to clients, not the server certificate (which is also in rgw's PEM, with its key).
    assert ca.count("BEGIN CERTIFICATE") == 1 and "PRIVATE KEY" not in ca


def test_put_object_with_collection_client_over_https(s3, bucket):
    s3.put_object(Bucket=bucket, Key="media_attachments/files/000/000/001/original/a.png", Body=BODY,
                  ContentType="image/png", CacheControl="public, max-age=315576000, immutable")
    got = s3.get_object(Bucket=bucket, Key="media_attachments/files/000/000/001/original/a.png")
    assert got["Body"].read() == BODY
    assert got["ContentType"] == "image/png"
    assert got["CacheControl"] == "public, max-age=315576000, immutable"


def test_multipart_upload_with_collection_client_over_https(s3, bucket):
    part = b"x" * (5 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="big.bin")
    etags = []
    for n, data in enumerate((part, b"tail"), start=1):
        etags.append(s3.upload_part(Bucket=bucket, Key="big.bin", UploadId=up["UploadId"], PartNumber=n, Body=data)["ETag"])
    s3.complete_multipart_upload(Bucket=bucket, Key="big.bin", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, start=1)]})
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == len(part) + 4


@pytest.fixture
def default_boto3(rgw, monkeypatch, tmp_path):
    """A plain boto3 client with botocore's DEFAULT checksum settings (no env or config file overrides)."""
    for var in ("AWS_REQUEST_CHECKSUM_CALCULATION", "AWS_RESPONSE_CHECKSUM_VALIDATION", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path / "aws-config"
    empty.write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))

    def make(endpoint):
        session = boto3.session.Session(aws_access_key_id=rgw.access_key, aws_secret_access_key=rgw.secret_key,
                                        region_name="us-east-1")
        client = session.client("s3", endpoint_url=endpoint, verify=rgw.ca_bundle,
                                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
        assert client.meta.config.request_checksum_calculation == "when_supported"
        return client

    return make


def test_boto3_default_checksums_fail_over_https(default_boto3, rgw, s3, bucket):
    client = default_boto3(rgw.https_endpoint)
    with pytest.raises(ClientError) as info:
        client.put_object(Bucket=bucket, Key="trap.bin", Body=BODY)
    assert error_code(info.value) == "MissingContentLength"
    # Nothing was stored: the collection's client does not find it.
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_boto3_default_checksums_work_over_http(default_boto3, rgw, s3, bucket):
    """The same request over plain HTTP succeeds: an HTTP-only test would hide the trap."""
    client = default_boto3(rgw.http_endpoint)
    client.put_object(Bucket=bucket, Key="trap.bin", Body=BODY)
    assert s3.get_object(Bucket=bucket, Key="trap.bin")["Body"].read() == BODY


def test_virtual_host_style_over_https(rgw, s3, bucket, resolve_s3_localhost):
    """Requests to https://BUCKET.s3.localhost:PORT/KEY: TLS verified against the CA (SAN *.s3.localhost),
    and RGW takes the bucket from the Host header (rgw dns name)."""
    vclient = s3_client("https://%s:%d" % (rgw.dns_name, rgw.https_port), access_key=rgw.access_key,
                        secret_key=rgw.secret_key, addressing_style="virtual", ca_bundle=rgw.ca_bundle)
    seen_hosts = []
    vclient.meta.events.register("before-send.s3", lambda request, **kw: seen_hosts.append(request.url))
    vclient.put_object(Bucket=bucket, Key="vhost.txt", Body=b"virtual")
    assert seen_hosts[-1] == "https://%s.%s:%d/vhost.txt" % (bucket, rgw.dns_name, rgw.https_port)
    # Written virtual-host style, read path style: the same object.
    assert s3.get_object(Bucket=bucket, Key="vhost.txt")["Body"].read() == b"virtual"
    s3.put_object(Bucket=bucket, Key="path.txt", Body=b"path")
    assert vclient.get_object(Bucket=bucket, Key="path.txt")["Body"].read() == b"path"


def test_virtual_host_header_anonymous_request(rgw, s3, bucket):
    """A bare HTTPS request to 127.0.0.1 with Host: BUCKET.s3.localhost reaches the bucket
    (anonymous: AccessDenied for a private object, NoSuchKey for a missing one, unlike NoSuchBucket)."""
    import ssl

    s3.put_object(Bucket=bucket, Key="private.txt", Body=b"secret")
    ctx = ssl.create_default_context(cafile=rgw.ca_bundle)
    ctx.check_hostname = False  # connecting by IP with a foreign Host header
    results = {}
    for key in ("private.txt", "missing.txt"):
        req = urllib.request.Request(rgw.https_endpoint + "/" + key, headers={"Host": rgw.virtual_host(bucket)})
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(req, context=ctx, timeout=10)
        results[key] = (info.value.code, info.value.read().decode())
    assert results["private.txt"][0] == 403 and "AccessDenied" in results["private.txt"][1]
    assert results["missing.txt"][0] in (403, 404)
    assert "NoSuchBucket" not in results["missing.txt"][1]


# --- PostgreSQL ---------------------------------------------------------------------------------

def test_postgres_query_over_tcp_with_password(pg):
    import psycopg2

    conn = psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_user, inet_server_port(), 6 * 7")
            assert cur.fetchone() == (pg.user, pg.port, 42)
    finally:
        conn.close()


def test_postgres_tcp_requires_the_password(pg):
    import psycopg2

    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(host=pg.host, port=pg.port, user=pg.user, password=pg.password + "x", dbname="postgres")


def test_postgres_query_over_unix_socket(pg):
    import psycopg2

    assert os.path.exists(os.path.join(pg.socket_dir, ".s.PGSQL.%d" % pg.port))
    conn = psycopg2.connect(host=pg.socket_dir, port=pg.port, user=pg.user, dbname="postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_addr() IS NULL, current_setting('data_directory')")
            via_socket, datadir = cur.fetchone()
    finally:
        conn.close()
    assert via_socket is True  # NULL server address: a unix-socket connection
    assert datadir.startswith(pg.workdir)


def test_postgres_create_database_and_execute(pg):
    dsn = pg.create_database("fos_smoke")
    assert dsn.endswith("/fos_smoke")
    pg.execute("CREATE TABLE media_attachments (id bigint PRIMARY KEY, file_file_name text)", "fos_smoke")
    assert pg.execute("INSERT INTO media_attachments VALUES (1, 'a.png'), (2, NULL)", "fos_smoke") is None
    assert pg.execute("SELECT id FROM media_attachments WHERE file_file_name IS NOT NULL", "fos_smoke") == [(1,)]
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.close()


# --- nginx --------------------------------------------------------------------------------------

NGINX_TEMPLATES = os.path.join(TEMPLATES, "nginx")
ROLE_DEFAULTS = os.path.join(REPO, "roles", "nginx_proxy", "defaults", "main.yml")


def _nginx_templates():
    names = sorted(n for n in os.listdir(NGINX_TEMPLATES) if n.endswith(".j2") and not n.startswith("_"))
    return names or ["(none)"]


def render_template(name, variables):
    """Render templates/nginx/NAME as Ansible does (trim_blocks), with plain jinja2 and StrictUndefined."""
    import jinja2

    from ansible.plugins.filter.core import FilterModule

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(NGINX_TEMPLATES), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, keep_trailing_newline=True)
    env.filters.update(FilterModule().filters())  # Ansible's core filters (regex_replace, ...)
    return env.get_template(name).render(**variables)


def sample_vars(workdir, port, https_port):
    """Role defaults (the literal ones) + values that fit a throwaway nginx in ``workdir``."""
    import yaml

    variables = {}
    if os.path.exists(ROLE_DEFAULTS):
        with open(ROLE_DEFAULTS) as f:
            variables = {k: v for k, v in (yaml.safe_load(f) or {}).items() if not (isinstance(v, str) and "{{" in v)}
    local_root = os.path.join(workdir, "html", "system")
    os.makedirs(local_root, exist_ok=True)
    from tests.services.ceph import make_ca_and_server_cert

    tls = os.path.join(workdir, "tls")
    os.makedirs(tls, exist_ok=True)
    ca, crt, key = make_ca_and_server_cert(tls, names=("media.localhost",))
    variables.update(
        nginx_proxy_app="mastodon", nginx_proxy_name="fos_media", nginx_proxy_bucket="fos-smoke",
        nginx_proxy_s3_endpoint="https://s3.localhost:8443", nginx_proxy_upstream_ssl_verify=True,
        nginx_proxy_upstream_ca_file=ca, nginx_proxy_resolvers=["127.0.0.1"], nginx_proxy_resolver_ipv6=False,
        nginx_proxy_local_root=local_root, nginx_proxy_cache_path=os.path.join(workdir, "tmp", "cache"),
        nginx_proxy_domain="media.localhost", nginx_proxy_listen_address="127.0.0.1", nginx_proxy_listen_ipv6=False,
        nginx_proxy_http_port=port, nginx_proxy_https_port=https_port, nginx_proxy_ssl_certificate=crt,
        nginx_proxy_ssl_certificate_key=key, nginx_proxy_acme_webroot=os.path.join(workdir, "html"),
        nginx_proxy_directory_path="/storage/", _prefix="/media/",
    )
    variables.setdefault("nginx_proxy_cors_origin", "*")
    # misskey-files.conf.j2 (the misskey role's drive_move entry point): the checked values of Misskey's upstream,
    # bucket URL and prefix, as the role computes them (module_utils/misskey/files_fallback.py).
    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.files_fallback import (
        fallback_values,
    )

    variables.update(misskey__fallback=fallback_values("https://media.localhost/", "storage", "http://127.0.0.1:3000",
                                                       "/etc/nginx/snippets/fediverse-misskey-files.conf"))
    return variables


def assemble(nginx, name, variables):
    """A full nginx.conf around the rendered template: http-level parts (server{} blocks, proxy_cache_path)
    go in http{}, location snippets in a server{} on nginx.port; the cache zone template is always included."""
    import re

    rendered = render_template(name, variables)
    extra = ""
    if name != "proxy-cache.conf.j2" and os.path.exists(os.path.join(NGINX_TEMPLATES, "proxy-cache.conf.j2")):
        extra = render_template("proxy-cache.conf.j2", variables)
    if re.search(r"^\s*location\b", rendered, re.M) and not re.search(r"^server\s*\{", rendered, re.M):
        return nginx.wrap(rendered, kind="server", extra_http=extra)
    if re.search(r"^server\s*\{", rendered, re.M):
        return nginx.wrap(extra + "\n" + rendered, kind="http")
    # http-level directives only (e.g. the cache zone): add a trivial server so nginx has something to serve.
    return nginx.wrap(rendered + "\nserver {\n    listen 127.0.0.1:%d;\n    return 204;\n}\n" % nginx.port, kind="http")


@pytest.mark.parametrize("name", _nginx_templates())
def test_nginx_t_on_rendered_template(nginx_factory, name):
    assert name != "(none)", "no nginx template under templates/nginx/"
    nginx = nginx_factory()
    variables = sample_vars(nginx.prefix, nginx.port, _free_port())
    nginx.write_config(assemble(nginx, name, variables))
    ok, output = nginx.test()
    with open(nginx.config_file) as f:
        assert ok, "nginx -t failed for %s:\n%s\n--- config ---\n%s" % (name, output, f.read())
    assert "test is successful" in output


def _free_port():
    from tests.services.base import free_port

    return free_port()


def test_nginx_t_rejects_a_broken_config(nginx_factory):
    """`nginx -t` through the harness really checks: a typo fails (so the test above can fail)."""
    nginx = nginx_factory()
    nginx.write_config("location / {\n    retrun 204;\n}\n", wrap=True)
    ok, output = nginx.test()
    assert not ok
    assert "retrun" in output


def test_started_nginx_serves_rendered_template(nginx_factory):
    """Mode "system" rendered from templates/, started: the local file is served over GET, reload works."""
    name = "system.conf.j2" if os.path.exists(os.path.join(NGINX_TEMPLATES, "system.conf.j2")) else _nginx_templates()[0]
    nginx = nginx_factory()
    variables = sample_vars(nginx.prefix, nginx.port, _free_port())
    rel = "media_attachments/files/000/000/001/original/a.png"
    local = os.path.join(variables["nginx_proxy_local_root"], rel)
    os.makedirs(os.path.dirname(local))
    with open(local, "wb") as f:
        f.write(b"\x89PNG local")
    for d, _dirs, _files in os.walk(nginx.prefix):
        os.chmod(d, 0o755)
    nginx.write_config(assemble(nginx, name, variables))
    nginx.start()
    assert nginx.start_seconds is not None and nginx.pid
    with urllib.request.urlopen("%s/system/%s" % (nginx.url, rel), timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == b"\x89PNG local"
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
    # reload with a changed config: the new config is live
    nginx.write_config(nginx.wrap("location = /ping {\n    return 200 \"pong\";\n}\n"))
    nginx.reload()
    with urllib.request.urlopen(nginx.url + "/ping", timeout=10) as resp:
        assert resp.read() == b"pong"
    pid = nginx.pid
    nginx.stop()
    from tests.services.procs import pid_alive

    assert not pid_alive(pid)
    assert not os.path.exists(nginx.prefix)
