"""The nginx_proxy templates (templates/nginx, templates/systemd) rendered with sample values.

Each nginx template is rendered with the role's defaults (plus sample overrides), put into a
minimal nginx.conf under a temp prefix, and checked with the real `nginx -t`.
"""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from tests.nginx_proxy_support import render, role_defaults, self_signed_cert
from tests.services.nginx import NGINX, wrap_config

pytestmark = pytest.mark.skipif(not os.path.exists(NGINX), reason="nginx is not installed")


@pytest.fixture
def prefix():
    path = tempfile.mkdtemp(prefix="fos-test-nginxtpl-")
    for d in ("logs", "tmp"):
        os.makedirs(os.path.join(path, d))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def nginx_t(prefix, http_text):
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(wrap_config(http_text, prefix, kind="http"))
    proc = subprocess.run([NGINX, "-t", "-p", prefix + "/", "-c", conf, "-e", os.path.join(prefix, "logs", "error.log")],
                          capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stderr


def values(prefix, **overrides):
    base = dict(nginx_proxy_bucket="media-bucket", nginx_proxy_cache_path=os.path.join(prefix, "cache"),
                nginx_proxy_local_root=os.path.join(prefix, "public", "system"))
    base.update(overrides)
    return role_defaults(**base)


def server(port, body):
    return "server {\n    listen 127.0.0.1:%d;\n    server_name app.example;\n%s\n}\n" % (port, body)


@pytest.mark.parametrize("app", ["mastodon", "misskey"])
def test_subdomain_template_passes_nginx_t(prefix, app):
    cert, key = self_signed_cert(prefix, ["s3.example.com"])
    v = values(prefix, nginx_proxy_app=app, nginx_proxy_domain="s3.example.com", nginx_proxy_ssl_certificate=cert,
               nginx_proxy_ssl_certificate_key=key, nginx_proxy_http_port=18080, nginx_proxy_https_port=18443)
    if app == "misskey":
        v["nginx_proxy_local_root"] = ""
    text = render("nginx/proxy-cache.conf.j2", v) + render("nginx/subdomain.conf.j2", v)
    rc, err = nginx_t(prefix, text)
    assert rc == 0, err + text
    assert "listen 18443 ssl http2;" in text and "listen [::]:18443 ssl http2;" in text
    assert "return 301 https://$host:18443$request_uri;" in text
    assert "ssl_certificate %s;" % cert in text
    assert ("try_files $uri @fediverse_media_bucket;" in text) == (app == "mastodon")


def test_subdomain_default_certificate_paths_are_lets_encrypt():
    v = role_defaults(nginx_proxy_bucket="b-1", nginx_proxy_domain="s3.example.com")
    text = render("nginx/subdomain.conf.j2", v)
    assert "ssl_certificate /etc/letsencrypt/live/s3.example.com/fullchain.pem;" in text
    assert "ssl_certificate_key /etc/letsencrypt/live/s3.example.com/privkey.pem;" in text
    assert re.search(r"listen 443 ssl http2;", text) and re.search(r"listen 80;", text)
    assert "return 301 https://$host$request_uri;" in text


@pytest.mark.parametrize("mode", ["directory", "system"])
def test_location_snippets_pass_nginx_t(prefix, mode):
    v = values(prefix, nginx_proxy_mode=mode)
    snippet = render("nginx/%s.conf.j2" % mode, v)
    rc, err = nginx_t(prefix, render("nginx/proxy-cache.conf.j2", v) + server(18081, snippet))
    assert rc == 0, err + snippet
    prefix_path = "/storage/" if mode == "directory" else "/system/"
    assert "location ^~ %s {" % prefix_path in snippet
    assert "rewrite ^%s(.*)$ /$1? break;" % prefix_path in snippet


def test_misskey_directory_without_local_root_passes_nginx_t(prefix):
    v = values(prefix, nginx_proxy_app="misskey", nginx_proxy_mode="directory", nginx_proxy_local_root="",
               nginx_proxy_directory_path="/media/")
    snippet = render("nginx/directory.conf.j2", v)
    rc, err = nginx_t(prefix, render("nginx/proxy-cache.conf.j2", v) + server(18082, snippet))
    assert rc == 0, err + snippet
    assert "try_files" not in snippet and "location ^~ /media/ {" in snippet
    # Misskey's keys start with its prefix (baseUrl https://DOMAIN, prefix "media"): nothing is stripped.
    assert "rewrite ^(.*)$ $1? break;" in snippet and "rewrite ^/media/" not in snippet


def test_location_body_has_the_cache_and_header_rules(prefix):
    text = render("nginx/directory.conf.j2", values(prefix, nginx_proxy_mode="directory"))
    for line in [
        "proxy_cache fediverse_media;",
        "proxy_cache_valid 200 48h;",  # Mastodon's documented object-storage proxy
        "proxy_cache_valid 403 404 1m;",  # a missing or private key (served as 404)
        "proxy_cache_revalidate on;",
        "proxy_cache_lock on;",
        "proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;",
        "proxy_hide_header Set-Cookie;",
        "proxy_hide_header x-amz-request-id;",
        "proxy_hide_header x-amz-id-2;",
        # None of the client's headers nor its body reach the bucket (issue 20, finding 13).
        "proxy_pass_request_headers off;",
        "proxy_pass_request_body off;",
        'proxy_set_header Content-Length "";',
        'proxy_set_header Transfer-Encoding "";',
        "proxy_ignore_headers Set-Cookie Cache-Control Expires X-Accel-Expires X-Accel-Redirect "
        "X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset Vary;",
        'proxy_cache_key "media-bucket.ewr1.vultrobjects.com$uri";',
        "add_header X-Cache $upstream_cache_status always;",
        "expires max;",
        'add_header Access-Control-Allow-Origin "*";',
        "proxy_ssl_server_name on;",
        "proxy_ssl_name media-bucket.ewr1.vultrobjects.com;",
        'proxy_set_header Host "media-bucket.ewr1.vultrobjects.com";',
        'set $fediverse_media_upstream "media-bucket.ewr1.vultrobjects.com";',
        "proxy_pass https://$fediverse_media_upstream;",
        "resolver 1.1.1.1 1.0.0.1 valid=100s;",
        "proxy_ssl_verify on;",
        "proxy_intercept_errors on;",
        "error_page 403 404 =404 @fediverse_media_missing;",
        "location @fediverse_media_missing {",
    ]:
        assert line in text, line
    assert text.count("limit_except GET {") == 2  # the local location and the bucket's named location
    # The ETag stays: nginx revalidates with it, and clients may too.
    assert "proxy_hide_header ETag" not in text
    # Only the object and a missing/private key's answer are cached: never a 400, a 5xx, a redirect.
    assert re.findall(r"proxy_cache_valid ([^;]*);", text) == ["200 48h", "403 404 1m"]
    # The bucket is asked with fixed headers only.
    assert re.findall(r"proxy_set_header (\S+)", text) == ["Host", "Connection", "Content-Length", "Transfer-Encoding"]
    assert "proxy_pass_request_headers on" not in text and "$http_" not in text


def test_without_local_root_the_bucket_alone_decides(prefix):
    """Once the local files are verified in the bucket (local root ""), no file on disk is served:
    a key deleted from the bucket or made private is not served from disk."""
    v = values(prefix, nginx_proxy_mode="system", nginx_proxy_local_root="")
    snippet = render("nginx/system.conf.j2", v)
    assert "try_files" not in snippet and "alias " not in snippet
    rc, err = nginx_t(prefix, render("nginx/proxy-cache.conf.j2", v) + server(18084, snippet))
    assert rc == 0, err + snippet


def test_proxy_cache_path_uses_the_variables(prefix):
    v = values(prefix, nginx_proxy_cache_max_size="500m", nginx_proxy_cache_inactive="30d")
    text = render("nginx/proxy-cache.conf.j2", v)
    assert ("proxy_cache_path %s levels=1:2 keys_zone=fediverse_media:10m max_size=500m inactive=30d use_temp_path=off;"
            % v["nginx_proxy_cache_path"]) in text
    defaults = render("nginx/proxy-cache.conf.j2", role_defaults(nginx_proxy_bucket="b-1"))
    assert "max_size=20g inactive=7d" in defaults
    # Outside /var/cache/nginx, where Mastodon's shipped nginx.conf keeps its CACHE zone.
    assert "proxy_cache_path /var/cache/fediverse-media/fediverse_media " in defaults


@pytest.mark.parametrize("endpoint, host, sni", [
    ("https://sgp1.vultrobjects.com", "media-bucket.sgp1.vultrobjects.com", "media-bucket.sgp1.vultrobjects.com"),
    ("ams1", "media-bucket.ams1.vultrobjects.com", "media-bucket.ams1.vultrobjects.com"),
    ("https://s3.localhost:8443/", "media-bucket.s3.localhost:8443", "media-bucket.s3.localhost"),
])
def test_endpoint_forms(prefix, endpoint, host, sni):
    text = render("nginx/system.conf.j2", values(prefix, nginx_proxy_mode="system", nginx_proxy_s3_endpoint=endpoint))
    assert 'proxy_set_header Host "%s";' % host in text
    assert "proxy_ssl_name %s;" % sni in text


def test_nginx_rejects_a_broken_value(prefix):
    """The safety net behind the role's asserts: nginx -t refuses what the template cannot know is wrong."""
    v = values(prefix, nginx_proxy_cache_keys_zone_size="1k")
    rc, err = nginx_t(prefix, render("nginx/proxy-cache.conf.j2", v))
    assert rc != 0 and "emerg" in err


def test_systemd_dropin_renders_the_values():
    text = render("systemd/nginx-restart.conf.j2", role_defaults(nginx_proxy_systemd_restart="on-failure",
                                                                   nginx_proxy_systemd_restart_sec="7"))
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines == ["[Service]", "Restart=on-failure", "RestartSec=7"]
    default = render("systemd/nginx-restart.conf.j2", role_defaults())
    assert "Restart=always\nRestartSec=5\n" in default


def test_nginx_starts_without_resolving_the_bucket(prefix):
    """The upstream is a variable: `nginx -t` (and a start at boot) does not resolve it. A name
    under .invalid can never resolve, and the resolver is an unused loopback port."""
    v = values(prefix, nginx_proxy_mode="system", nginx_proxy_s3_endpoint="https://nowhere.invalid",
               nginx_proxy_resolvers=["127.0.0.1:9"])
    text = render("nginx/proxy-cache.conf.j2", v) + server(18083, render("nginx/system.conf.j2", v))
    rc, err = nginx_t(prefix, text)
    assert rc == 0, err
    assert 'set $fediverse_media_upstream "media-bucket.nowhere.invalid";' in text


def test_other_host_names_never_reach_the_bucket(prefix):
    """Subdomain: both servers answer 421 to any Host but the media name (even as the default server of
    the port). Directory/system: the same inside the location when the domain is given."""
    cert, key = self_signed_cert(prefix, ["s3.example.com"])
    v = values(prefix, nginx_proxy_domain="S3.example.com", nginx_proxy_ssl_certificate=cert,
               nginx_proxy_ssl_certificate_key=key, nginx_proxy_http_port=18085, nginx_proxy_https_port=18445)
    text = render("nginx/subdomain.conf.j2", v)
    assert text.count('if ($host != "s3.example.com") {\n        return 421;\n    }') == 2
    rc, err = nginx_t(prefix, render("nginx/proxy-cache.conf.j2", v) + text)
    assert rc == 0, err + text
    for mode in ("directory", "system"):
        with_domain = render("nginx/%s.conf.j2" % mode, values(prefix, nginx_proxy_mode=mode, nginx_proxy_domain="example.com"))
        assert 'if ($host != "example.com") {' in with_domain
        rc, err = nginx_t(prefix, render("nginx/proxy-cache.conf.j2", v) + server(18086, with_domain))
        assert rc == 0, err + with_domain
        assert "if ($host" not in render("nginx/%s.conf.j2" % mode, values(prefix, nginx_proxy_mode=mode))
