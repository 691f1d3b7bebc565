"""Role fediverse.object_storage.nginx_proxy against a real nginx and a real Ceph RGW (issue 5).

For each mode (subdomain, directory, system) a throwaway nginx (tests/services/nginx.py) is
started with a Debian-like layout under a temp dir (conf.d, sites-available, sites-enabled,
snippets) and the app's site in the shape of Mastodon's dist/nginx.conf (TLS, its CACHE zone, a stub
app backend); in subdomain mode the proxy's site shares the app's http and TLS listeners (SNI);
the role is run through ansible-playbook; nginx
proxies to a public-read (GetObject-only policy) bucket on RGW over HTTPS, virtual-host style,
verifying RGW's certificate with the harness CA. The bucket's host name
(BUCKET.s3.localhost) is resolved by nginx at request time through `resolver`, pointed at a
stub DNS server that answers 127.0.0.1.
"""

import os
import subprocess
import time

import pytest

from tests.ansible_helpers import failed_items, run_playbook
from tests.nginx_proxy_support import (
    APP_BACKEND_BODY,
    APP_HOST,
    app_certs,
    app_site,
    backend_site,
    cache_entries,
    main_conf,
    render,
    request,
    role_defaults,
)
from tests.services.nginx import NGINX

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: fediverse.object_storage.nginx_proxy
"""

PROXY_DOMAIN = "media.mastodon.test"
REMOTE_KEY = "media_attachments/files/000/000/001/original/remote.png"
LOCAL_KEY = "media_attachments/files/000/000/002/original/local.png"
MISSING_KEY = "media_attachments/files/000/000/003/original/missing.png"
VALIDITY = 48 * 3600  # nginx_proxy_cache_valid's default (Mastodon's documented object-storage proxy)
ERROR_VALIDITY = 3  # nginx_proxy_cache_valid_other in the mode tests, seconds


# --------------------------------------------------------------------------- fixtures
# dns, public_bucket and layout: tests/integration/conftest.py; main_conf and app_site: tests/nginx_proxy_support.py

@pytest.fixture
def stack(nginx_factory, layout, rgw, s3, public_bucket, dns):
    """nginx serving only the Mastodon-shaped site, objects in the bucket, one file on local disk."""
    nginx = nginx_factory()
    os.chmod(nginx.prefix, 0o755)
    from tests.services.base import free_port
    certs = app_certs(layout["tls"], [APP_HOST, PROXY_DOMAIN])
    http_port, backend_port = free_port(), free_port()
    site = os.path.join(layout["available"], "mastodon")
    app_cache = os.path.join(layout["root"], "var", "cache", "nginx")
    os.makedirs(os.path.dirname(app_cache))
    with open(site, "w") as f:
        f.write(app_site(nginx, layout, http_port, certs[APP_HOST], backend_port, app_cache))
    os.symlink(site, os.path.join(layout["enabled"], "mastodon"))
    with open(os.path.join(layout["conf_d"], "app-backend-stub.conf"), "w") as f:
        f.write(backend_site(backend_port))
    nginx.write_config(main_conf(nginx, layout))
    nginx.start()

    objects = {
        REMOTE_KEY: (os.urandom(3000) + b"remote", "image/png"),
        LOCAL_KEY: (b"copy in the bucket", "image/png"),
    }
    for key, (body, ctype) in objects.items():
        s3.put_object(Bucket=public_bucket, Key=key, Body=body, ContentType=ctype,
                      CacheControl="public, max-age=315576000, immutable")
    local_file = os.path.join(layout["system"], LOCAL_KEY)
    os.makedirs(os.path.dirname(local_file), mode=0o755)
    for d in ("media_attachments", "media_attachments/files", "media_attachments/files/000",
              "media_attachments/files/000/000", "media_attachments/files/000/000/002"):
        os.chmod(os.path.join(layout["system"], d), 0o755)
    with open(local_file, "wb") as f:
        f.write(b"copy on the local disk")
    os.chmod(local_file, 0o644)

    class Stack:
        pass

    st = Stack()
    st.nginx, st.layout, st.rgw, st.s3, st.bucket, st.dns, st.objects, st.site = (
        nginx, layout, rgw, s3, public_bucket, dns, objects, site)
    st.certs, st.http_port, st.https_port = certs, http_port, nginx.port
    return st


# --------------------------------------------------------------------------- helpers

def role_vars(st, app="mastodon", mode="subdomain", **extra):
    nginx, layout = st.nginx, st.layout
    base = [NGINX, "-p", nginx.prefix + "/", "-c", nginx.config_file, "-e", nginx.error_log]
    v = {
        "nginx_proxy_app": app,
        "nginx_proxy_mode": mode,
        "nginx_proxy_bucket": st.bucket,
        "nginx_proxy_s3_endpoint": "https://%s:%d" % (st.rgw.dns_name, st.rgw.https_port),
        "nginx_proxy_upstream_ca_file": st.rgw.ca_bundle,
        "nginx_proxy_resolvers": [st.dns.address],
        "nginx_proxy_local_root": layout["system"] if app == "mastodon" else "",
        "nginx_proxy_cache_path": layout["cache"],
        "nginx_proxy_conf_d_dir": layout["conf_d"],
        "nginx_proxy_sites_available_dir": layout["available"],
        "nginx_proxy_sites_enabled_dir": layout["enabled"],
        "nginx_proxy_snippets_dir": layout["snippets"],
        "nginx_proxy_app_site_file": os.path.join(layout["enabled"], "mastodon"),  # a symlink, as on Debian
        "nginx_proxy_test_command": " ".join(base + ["-t"]),
        "nginx_proxy_reload_command": " ".join(base + ["-s", "reload"]),
        "nginx_proxy_systemd_dropin_dir": layout["dropin"],
        "nginx_proxy_systemd_restart_sec": "7",
        "nginx_proxy_systemd_daemon_reload": False,
    }
    if mode == "subdomain":
        # The app's own listeners (80/443 on a real host), told apart by SNI and Host.
        v.update(nginx_proxy_domain=PROXY_DOMAIN, nginx_proxy_listen_address="127.0.0.1",
                 nginx_proxy_listen_ipv6=False, nginx_proxy_http_port=st.http_port,
                 nginx_proxy_https_port=st.https_port, nginx_proxy_ssl_certificate=st.certs[PROXY_DOMAIN][0],
                 nginx_proxy_ssl_certificate_key=st.certs[PROXY_DOMAIN][1], nginx_proxy_acme_webroot=layout["acme"])
    else:
        v.update(nginx_proxy_domain=APP_HOST)  # the media are served under the app's own name only
    v.update(extra)
    return v


def workers(nginx):
    """The worker processes (not the cache manager/loader: the loader exits on its own after its run)."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(nginx.pid)], capture_output=True, text=True).stdout
    return set(int(line.split()[0]) for line in out.splitlines() if "worker process" in line)


def wait_reloaded(nginx, before, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = workers(nginx)
        if now and not (now & before):
            return
        time.sleep(0.05)
    raise AssertionError("nginx was not reloaded: workers %s -> %s\n%s" % (before, workers(nginx), nginx.log_tail()))


def failure_text(result):
    """Every message of the failed tasks (and of their failed loop items)."""
    texts = []
    for task in result.tasks:
        res = task["result"]
        if res.get("failed"):
            texts.append(str(res.get("msg", "")))
            texts += [str(item.get("msg", "")) for item in failed_items(res)]
    return "\n".join(texts)


def settled_workers(nginx, timeout=15):
    """The worker processes once nginx has some: right after a start or a reload (the previous test's) the
    master may have none for a moment, and an empty `before` would make any worker look new."""
    deadline = time.monotonic() + timeout
    now = workers(nginx)
    while not now and time.monotonic() < deadline:
        time.sleep(0.05)
        now = workers(nginx)
    return now


def run_role(st, check=False, **kwargs):
    before = settled_workers(st.nginx)
    kwargs.setdefault("nginx_proxy_cache_valid_other", "%ds" % ERROR_VALIDITY)
    result = run_playbook(PLAYBOOK, extra_vars=role_vars(st, **kwargs), check=check)
    return result, before


class Client:
    """GET/POST... an object key through the mode's URL."""

    def __init__(self, st, mode):
        self.st, self.mode = st, mode

    def __call__(self, key, method="GET", headers=None, body=None, path=None):
        """``path``: the request target as sent, instead of the mode's prefix + ``key``."""
        st = self.st
        if path is None:
            path = self.prefix + key
        if self.mode == "subdomain":
            return request(st.https_port, path, PROXY_DOMAIN, method=method, tls=True,
                           ca_file=st.certs[PROXY_DOMAIN][0], headers=headers, body=body)
        return request(st.https_port, path, APP_HOST, method=method, tls=True, ca_file=st.certs[APP_HOST][0],
                       headers=headers, body=body)

    @property
    def prefix(self):
        return {"subdomain": "/", "directory": "/storage/", "system": "/system/"}[self.mode]


def app_get(st, path, host=APP_HOST):
    cert = st.certs.get(host)
    return request(st.https_port, path, host, tls=True, ca_file=cert[0] if cert else None, insecure=cert is None)


def managed_files(layout):
    """Contents of every file under the nginx dirs (symlinks as their target), for before/after checks."""
    found = {}
    for key in ("conf_d", "available", "enabled", "snippets"):
        for name in sorted(os.listdir(layout[key])):
            path = os.path.join(layout[key], name)
            if name.endswith("~"):  # timestamped backups made by the role (nginx_proxy_backup)
                continue
            if os.path.islink(path):
                found[path] = "-> " + os.readlink(path)
            else:
                with open(path, "rb") as f:
                    found[path] = f.read()
    return found


def cache_entry(st, key):
    host = "%s.%s:%d" % (st.bucket, st.rgw.dns_name, st.rgw.https_port)
    entries = [e for e in cache_entries(st.layout["cache"]) if e["key"] == host + "/" + key]
    assert len(entries) == 1, cache_entries(st.layout["cache"])
    return entries[0]


# --------------------------------------------------------------------------- the three modes

@pytest.mark.parametrize("mode", ["subdomain", "directory", "system"])
def test_mode(stack, mode):
    st, nginx, layout = stack, stack.nginx, stack.layout
    get = Client(st, mode)
    started = time.monotonic()

    # Check mode: reports changes, writes nothing, does not reload.
    before_files = managed_files(layout)
    result, before = run_role(st, check=True, mode=mode)
    assert result.rc == 0, failure_text(result) + result.stderr[-2000:]
    assert result.changed > 0
    assert managed_files(layout) == before_files
    assert not os.path.exists(layout["cache"]) and not os.path.exists(layout["dropin"])
    assert workers(nginx) <= before  # no new child: no reload (the cache loader may have exited meanwhile)

    # The real run.
    result, before = run_role(st, mode=mode)
    assert result.rc == 0, failure_text(result) + result.stderr[-2000:]
    assert result.changed > 0
    wait_reloaded(nginx, before)
    first_run = time.monotonic() - started

    # The role wrote the collection's templates: the same text as the tests render from templates/.
    values = role_defaults(**role_vars(st, mode=mode, nginx_proxy_cache_valid_other="%ds" % ERROR_VALIDITY))
    written = {
        "subdomain": os.path.join(layout["available"], "fediverse_media.conf"),
        "directory": os.path.join(layout["snippets"], "fediverse_media-directory.conf"),
        "system": os.path.join(layout["snippets"], "fediverse_media-system.conf"),
    }[mode]
    for path, template in ((written, "nginx/%s.conf.j2" % mode),
                           (os.path.join(layout["conf_d"], "fediverse_media-cache.conf"), "nginx/proxy-cache.conf.j2")):
        with open(path) as f:
            assert f.read() == render(template, values), path
    if mode == "subdomain":
        assert os.readlink(os.path.join(layout["enabled"], "fediverse_media.conf")) == written

    st_cache = os.stat(layout["cache"])
    assert (st_cache.st_uid, st_cache.st_gid) == (33, 33)  # www-data, the worker user
    assert oct(st_cache.st_mode & 0o777) == "0o700"
    if mode != "subdomain":
        with open(st.site) as f:
            site = f.read()
        assert site.count("include ") == 1
        # inserted in the second (app) server block, after its server_name line
        assert site.index("include ") > site.rindex("server_name")
        assert os.path.islink(os.path.join(layout["enabled"], "mastodon"))  # the symlink stays a symlink

    # First GET: from the bucket, MISS; second: HIT. Body and Content-Type are the object's.
    body, ctype = st.objects[REMOTE_KEY]
    r1 = get(REMOTE_KEY)
    assert r1.status == 200, (r1, nginx.log_tail())
    assert r1.body == body
    assert r1.header("Content-Type") == ctype
    assert r1.header("X-Cache") == "MISS"
    r2 = get(REMOTE_KEY)
    assert (r2.status, r2.body, r2.header("Content-Type"), r2.header("X-Cache")) == (200, body, ctype, "HIT")
    # Response headers: S3's hidden, ours added, exactly one Cache-Control (expires max).
    for r in (r1, r2):
        names = [k.lower() for k, _ in r.headers]
        assert not [n for n in names if n.startswith("x-amz") or n.startswith("x-rgw")], r.headers
        assert "set-cookie" not in names
        assert r.header("ETag")  # kept: nginx revalidates with it once the validity is over
        assert r.header("Access-Control-Allow-Origin") == "*"
        assert r.all("Cache-Control") == ["max-age=315360000"]
        assert r.header("Expires") == "Thu, 31 Dec 2037 23:55:55 GMT"
    # The bucket's host name was resolved by nginx at request time through the resolver.
    assert ("%s.%s" % (st.bucket, st.rgw.dns_name), 1) in st.dns.queries
    # Cached for 48 hours (then revalidated), not 90 days.
    entry = cache_entry(st, REMOTE_KEY)
    assert entry["status"].startswith("HTTP/1.1 200")
    assert abs(entry["valid_sec"] - time.time() - VALIDITY) < 120

    # The app's own site still answers from its backend; a request with another Host never reaches the bucket.
    app = app_get(st, "/")
    assert (app.status, app.body, app.header("X-App-Backend")) == (200, APP_BACKEND_BODY, "stub"), app
    for other in ("unknown.example", "www." + APP_HOST):
        prefix = "/" if mode == "subdomain" else {"directory": "/storage/", "system": "/system/"}[mode]
        r = app_get(st, prefix + REMOTE_KEY, other)
        assert r.body != body and r.header("X-Cache") is None, (other, r)
    ok, dump = nginx.test()
    assert ok and "conflicting server name" not in dump, dump

    # HEAD follows GET.
    assert get(REMOTE_KEY, method="HEAD").status == 200

    # A file on local disk is served from disk (the bucket holds a different body).
    r = get(LOCAL_KEY)
    assert (r.status, r.body) == (200, b"copy on the local disk"), r
    assert r.header("X-Cache") is None
    assert r.header("Access-Control-Allow-Origin") == "*"
    assert r.header("X-Served-By") is None  # not Mastodon's own /system/ location

    # A missing object (S3 answers 403 AccessDenied under a GetObject-only policy): 404, without
    # S3's XML; cached for nginx_proxy_cache_valid_other only (3s here, 5m by default), not 90 days:
    # once that is over, an object uploaded meanwhile is served.
    m1 = get(MISSING_KEY)
    seen_404 = time.monotonic()
    assert (m1.status, m1.header("X-Cache")) == (404, "MISS"), m1
    assert b"AccessDenied" not in m1.body and st.bucket.encode() not in m1.body
    assert m1.header("Expires") is None and m1.header("Cache-Control") is None
    m2 = get(MISSING_KEY)
    assert (m2.status, m2.header("X-Cache")) == (404, "HIT"), m2
    assert not [e for e in cache_entries(layout["cache"]) if e["key"].endswith(MISSING_KEY)]  # no 90-day file
    st.s3.put_object(Bucket=st.bucket, Key=MISSING_KEY, Body=b"uploaded later", ContentType="image/png")
    m3 = get(MISSING_KEY)
    if time.monotonic() - seen_404 < 2.5:
        assert (m3.status, m3.header("X-Cache")) == (404, "HIT"), m3
    time.sleep(max(0.0, seen_404 + ERROR_VALIDITY + 1.2 - time.monotonic()))
    m4 = get(MISSING_KEY)
    assert (m4.status, m4.body, m4.header("Content-Type")) == (200, b"uploaded later", "image/png"), m4
    assert get(REMOTE_KEY).header("X-Cache") == "HIT"  # the 200 is still cached

    # Writes are refused, through the bucket location and the local one; the object stays.
    for key in (REMOTE_KEY, LOCAL_KEY, "media_attachments/files/000/000/004/original/new.png"):
        for method in ("POST", "PUT", "DELETE"):
            r = get(key, method=method)
            assert r.status in (403, 405), (key, method, r)
    assert st.s3.head_object(Bucket=st.bucket, Key=REMOTE_KEY)["ContentLength"] == len(body)

    if mode == "subdomain":
        # Port 80: ACME challenges answered from the webroot, everything else redirected to https.
        token_dir = os.path.join(layout["acme"], ".well-known", "acme-challenge")
        os.makedirs(token_dir)
        for d in (os.path.join(layout["acme"], ".well-known"), token_dir):
            os.chmod(d, 0o755)
        with open(os.path.join(token_dir, "tok"), "w") as f:
            f.write("acme-token")
        os.chmod(os.path.join(token_dir, "tok"), 0o644)
        r = request(st.http_port, "/.well-known/acme-challenge/tok", PROXY_DOMAIN)
        assert (r.status, r.body) == (200, b"acme-token")
        r = request(st.http_port, "/" + REMOTE_KEY, PROXY_DOMAIN)
        assert r.status == 301
        assert r.header("Location") == "https://%s:%d/%s" % (PROXY_DOMAIN, st.https_port, REMOTE_KEY)

    # Second run: nothing changes, no reload.
    result, before = run_role(st, mode=mode)
    assert result.rc == 0, failure_text(result) + result.stderr[-2000:]
    assert result.changed == 0, [t["name"] for t in result.tasks if t["result"].get("changed")]
    time.sleep(0.3)
    # No reload = no new child process (the cache loader, also a child, exits on its own about a minute
    # after a start, which a slow run outlives: fewer children is fine).
    assert workers(nginx) <= before
    result, _ = run_role(st, check=True, mode=mode)
    assert result.rc == 0 and result.changed == 0, failure_text(result)

    # The drop-in rendered with the configured values (into the temp systemd dir).
    with open(os.path.join(layout["dropin"], "restart.conf")) as f:
        dropin = [line for line in f.read().splitlines() if line and not line.startswith("#")]
    assert dropin == ["[Service]", "Restart=always", "RestartSec=7"]

    good_files = managed_files(layout)

    # A broken value caught by the role's checks: fails before changing anything.
    result, before = run_role(st, mode=mode, nginx_proxy_cache_max_size="20x")
    assert result.rc != 0
    assert "nginx_proxy_cache_max_size must be a size such as 20g or 500m, not '20x'" in failure_text(result), result
    assert managed_files(layout) == good_files

    # A value only nginx rejects (keys zone too small): nginx -t fails, the files are put back,
    # nginx is not reloaded and keeps serving the previous configuration.
    result, before = run_role(st, mode=mode, nginx_proxy_cache_keys_zone_size="1k", nginx_proxy_cache_valid_other="1m")
    assert result.rc != 0
    message = failure_text(result)
    assert "previous files were put back" in message and "[emerg]" in message and "too small" in message, message
    assert managed_files(layout) == good_files
    assert workers(nginx) <= before  # no new child: no reload (the cache loader may have exited meanwhile)
    # nginx_proxy_backup: the role also left a timestamped copy of the file it had replaced.
    assert [n for n in os.listdir(layout["conf_d"]) if n.startswith("fediverse_media-cache.conf.") and n.endswith("~")]
    r = get(REMOTE_KEY)
    assert (r.status, r.body, r.header("X-Cache")) == (200, body, "HIT")
    ok, out = nginx.test()
    assert ok, out

    # And the next good run finds nothing to change.
    result, _ = run_role(st, mode=mode)
    assert result.rc == 0 and result.changed == 0, result
    print("mode %s: first role run + reload %.1fs, whole test %.1fs" % (mode, first_run, time.monotonic() - started))


# --------------------------------------------------------------------------- hostile clients

# Request headers a client may send that S3 reads on a GET (or that change what it answers): each
# one goes first, on a cold cache, for its own object. (name, headers, body, method)
HOSTILE_REQUESTS = [
    ("sse", {"x-amz-server-side-encryption": "AES256"}, None, "GET"),
    ("sse-kms", {"x-amz-server-side-encryption": "aws:kms",
                 "x-amz-server-side-encryption-aws-kms-key-id": "nope"}, None, "GET"),
    ("sse-c", {"x-amz-server-side-encryption-customer-algorithm": "AES256",
               "x-amz-server-side-encryption-customer-key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
               "x-amz-server-side-encryption-customer-key-MD5": "bm9wZQ=="}, None, "GET"),
    ("request-payer", {"x-amz-request-payer": "requester"}, None, "GET"),
    ("checksum-mode", {"x-amz-checksum-mode": "ENABLED"}, None, "GET"),
    ("expect", {"Expect": "100-continue", "Content-Length": "5"}, b"hello", "GET"),
    ("content-md5", {"Content-MD5": "bm9wZQ=="}, None, "GET"),
    ("if-match", {"If-Match": '"nope"'}, None, "GET"),
    ("if-unmodified-since", {"If-Unmodified-Since": "Tue, 01 Jan 1980 00:00:00 GMT"}, None, "GET"),
    ("if-modified-since", {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, None, "GET"),
    ("range-past-end", {"Range": "bytes=999999999-"}, None, "GET"),
    ("accept-encoding", {"Accept-Encoding": "gzip, br"}, None, "GET"),
    ("signed", {"Authorization": "AWS4-HMAC-SHA256 Credential=nope", "x-amz-date": "bogus",
                "x-amz-content-sha256": "nope", "x-amz-security-token": "nope", "Cookie": "a=b"}, None, "GET"),
    ("chunked-body", {"Transfer-Encoding": "chunked"}, b"hello", "GET"),
    ("head", {"x-amz-server-side-encryption": "AES256"}, None, "HEAD"),
]


@pytest.mark.parametrize("mode", ["subdomain", "directory", "system"])
def test_no_client_request_changes_what_the_next_client_gets(stack, mode):
    """Finding 13 of issue 20: the proxy forwarded the client's headers to the bucket and cached any
    answer, so one anonymous GET with ``x-amz-server-side-encryption: AES256`` (RGW: 400) took the
    medium offline for every client. For each hostile request, first on a cold cache, the next plain
    GET by another client gets the object; odd URIs and query strings do not make another key; a
    Range GET still gets 206 with the right bytes, from the bucket and from the cache; once the
    validity is over nginx still revalidates (its own If-None-Match reaches the bucket) and an
    object deleted meanwhile (moderation) is no longer served."""
    st = stack
    get = Client(st, mode)
    validity = 6  # nginx_proxy_cache_valid here, seconds (48h by default)
    result, before = run_role(st, mode=mode, nginx_proxy_cache_valid="%ds" % validity)
    assert result.rc == 0, failure_text(result) + result.stderr[-2000:]
    wait_reloaded(st.nginx, before)

    def new_object(name):
        key = "media_attachments/files/000/001/%03d/original/%s.png" % (len(st.objects), name)
        body = os.urandom(4096) + name.encode()
        st.s3.put_object(Bucket=st.bucket, Key=key, Body=body, ContentType="image/png",
                         CacheControl="public, max-age=315576000, immutable")
        st.objects[key] = (body, "image/png")
        return key, body

    def assert_served(key, body, why):
        r = get(key)
        assert (r.status, r.header("Content-Type"), r.body == body) == (200, "image/png", True), (why, r)

    failures = []
    hostile_keys = []
    for name, headers, req_body, method in HOSTILE_REQUESTS:
        key, body = new_object(name)
        hostile_keys.append(key)
        first = get(key, method=method, headers=headers, body=req_body)
        assert first.status < 500, (name, first)
        r = get(key)
        if (r.status, r.header("Content-Type"), r.body) != (200, "image/png", body):
            failures.append((name, first.status, r.status, r.body[:200]))
    assert not failures, "a hostile first request changed what the next client got: %s" % failures

    # Odd request targets: a query string (S3 would read response-content-type, partNumber...), an
    # encoded slash, dot segments. Each names the same key as the plain URL, or another key that
    # does not exist; none may leave another answer under the plain URL's key.
    key, body = new_object("odd-uri")
    encoded = key.replace("/", "%2F")
    for target in (get.prefix + key + "?response-content-type=text/html&partNumber=1&x-id=GetObject",
                   get.prefix + key + "?versionId=nope",
                   get.prefix + encoded,
                   get.prefix + "media_attachments/x/../" + key.split("/", 1)[1],
                   get.prefix + key.replace("original/", "original/./")):
        r = get(None, path=target)
        assert (r.status, r.header("Content-Type")) in ((200, "image/png"), (404, "text/html")), (target, r)
        assert r.status != 200 or r.body == body, (target, r)
        assert_served(key, body, target)
    entry = cache_entry(st, key)  # one entry, under the plain key
    assert entry["status"].startswith("HTTP/1.1 200"), entry

    # Video playback: a Range GET gets 206 with exactly those bytes, on a cold cache (the bucket
    # sends the whole object, nginx caches it and cuts the range) and from the cache.
    key, body = new_object("video")
    video_cached = time.monotonic()
    for expected_cache in ("MISS", "HIT"):
        r = get(key, headers={"Range": "bytes=100-1099"})
        assert (r.status, r.body, r.header("Content-Range")) == (206, body[100:1100], "bytes 100-1099/%d" % len(body)), r
        assert r.header("X-Cache") == expected_cache, r
    r = get(key, headers={"Range": "bytes=-10"})
    assert (r.status, r.body) == (206, body[-10:]), r
    # A browser's conditional GET is answered from the cache.
    etag = get(key).header("ETag")
    r = get(key, headers={"If-None-Match": etag})
    assert (r.status, r.body) == (304, b""), r

    # Nothing but the objects (200) and the missing key's 403/404 is ever in the cache.
    statuses = {e["key"]: e["status"] for e in cache_entries(st.layout["cache"])}
    assert statuses and all(s.startswith(("HTTP/1.1 200", "HTTP/1.1 403", "HTTP/1.1 404")) for s in statuses.values()), statuses

    # Once the validity is over: the bucket is asked again with the cached ETag (a 304 keeps the
    # copy: REVALIDATED), and an object deleted meanwhile (moderation) answers 404.
    deleted = hostile_keys[0]
    st.s3.delete_object(Bucket=st.bucket, Key=deleted)
    time.sleep(max(0.0, video_cached + validity + 1.2 - time.monotonic()))
    r = get(key)
    assert (r.status, r.body, r.header("X-Cache")) == (200, body, "REVALIDATED"), r
    r = get(deleted)
    assert (r.status, r.header("X-Cache")) == (404, "EXPIRED"), r


# --------------------------------------------------------------------------- Misskey

def test_misskey_system_mode_is_refused_before_any_change(stack):
    st = stack
    before_files = managed_files(st.layout)
    result, before = run_role(st, app="misskey", mode="system")
    assert result.rc != 0
    message = failure_text(result)
    assert "Mastodon only" in message and "/files" in message, message
    assert managed_files(st.layout) == before_files
    assert not os.path.exists(st.layout["cache"])
    assert workers(st.nginx) == before


def test_misskey_directory_mode_short_error_validity(stack):
    """Misskey: no local files (straight to the bucket), and the directory is Misskey's key prefix
    (baseUrl https://DOMAIN, prefix "storage": URL /storage/X is object storage/X). With a 2s validity
    for errors, an object uploaded after its 404 was cached is served once that validity is over."""
    st = stack
    result, before = run_role(st, app="misskey", mode="directory", nginx_proxy_directory_path="/storage/",
                              nginx_proxy_cache_valid_other="2s")
    assert result.rc == 0, failure_text(result) + result.stderr[-2000:]
    wait_reloaded(st.nginx, before)
    with open(os.path.join(st.layout["snippets"], "fediverse_media-directory.conf")) as f:
        assert "try_files" not in f.read()

    key = "storage/%s.webp" % os.urandom(8).hex()

    def get():
        return request(st.https_port, "/" + key, APP_HOST, tls=True, ca_file=st.certs[APP_HOST][0])

    first = get()
    seen_404 = time.monotonic()
    assert (first.status, first.header("X-Cache")) == (404, "MISS")
    st.s3.put_object(Bucket=st.bucket, Key=key, Body=b"webp!", ContentType="image/webp")
    r = get()
    if time.monotonic() - seen_404 < 1.5:
        assert (r.status, r.header("X-Cache")) == (404, "HIT")  # the cached 404, still valid
    # nginx keeps whole seconds: the entry is valid until the end of second (first 404 + 2s).
    time.sleep(max(0.0, seen_404 + 2 + 1.2 - time.monotonic()))
    r = get()
    assert (r.status, r.body, r.header("Content-Type")) == (200, b"webp!", "image/webp"), r
    assert r.header("X-Cache") in ("EXPIRED", "MISS")
    assert get().header("X-Cache") == "HIT"


# --------------------------------------------------------------------------- issue 20, finding 6

# Modes directory and system render nginx_proxy_domain into `if ($host != "DOMAIN")` in the app's server
# block. The first value makes that a valid configuration that answers every request with "pwned"; the
# second one makes the condition never true (a newline inside the string), so every request gets 421.
HOSTILE_DOMAINS = [APP_HOST + '") { return 200 "pwned"; } if ($host != "' + APP_HOST, APP_HOST + "\n"]


@pytest.mark.parametrize("domain", HOSTILE_DOMAINS, ids=["injection", "newline"])
@pytest.mark.parametrize("mode", ["directory", "system"])
def test_hostile_domain_is_refused_before_anything_is_written(stack, mode, domain):
    st = stack
    before_files = managed_files(st.layout)
    # Explicit certificate paths: no default path built from the domain can fail first.
    result, before = run_role(st, mode=mode, nginx_proxy_domain=domain,
                              nginx_proxy_ssl_certificate=st.certs[APP_HOST][0],
                              nginx_proxy_ssl_certificate_key=st.certs[APP_HOST][1])
    assert result.rc != 0, [t["name"] for t in result.tasks]
    assert "nginx_proxy_domain must be empty or a DNS name" in failure_text(result), failure_text(result)
    assert managed_files(st.layout) == before_files
    assert not os.path.exists(st.layout["cache"])
    assert workers(st.nginx) <= before
    r = Client(st, mode)(REMOTE_KEY)
    assert r.body != b"pwned" and r.status != 421, r
