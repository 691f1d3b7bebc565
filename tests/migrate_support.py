"""A Mastodon host on this machine for playbooks/migrate.yml: used by the end-to-end tests, the
ansible-runner (AWX) test and the demo.

It lays out, under one temp root: a Debian-like /etc/nginx (conf.d, sites-available, sites-enabled,
snippets) served by a throwaway nginx, Mastodon's live directory (.env.production pointing at the
fixture database, public/system with the fixture's media files, lib/mastodon/version.rb), and returns
the extra vars that point migrate.yml at all of it and at the Ceph RGW over HTTPS (prepare; a Misskey
host: prepare_misskey); then runs migrate.yml or rollback.yml on it (migrate) and reads what they changed
(keys_in, nginx_files).

The host is shaped like production: the app's own site in the shape of Mastodon's shipped
dist/nginx.conf (tests/nginx_proxy_support.py app_site: its CACHE zone under <root>/var/cache/nginx,
server_name DOMAIN on the http and TLS listeners, ``location ~ ^/system/``, ``location /`` -> a stub
app backend), and the media proxy on the SAME two listeners, told apart by SNI and Host (throwaway
certificates for DOMAIN and s3.DOMAIN). The proxy's cache goes where the role's default puts it,
relative to the root (<root>/var/cache/fediverse-media/fediverse_media). The S3 keys are NOT in the vars:
they go in the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), as the AWX credential does.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.ansible_helpers import run_playbook
from tests.fixtures.mastodon_instance import build_instance
from tests.nginx_proxy_support import APP_HOST, app_certs, app_site, backend_site, main_conf, misskey_site, request
from tests.services.base import free_port
from tests.services.nginx import NGINX

REPO = Path(__file__).resolve().parent.parent
ENV_SAMPLE = REPO / "tests" / "fixtures" / "env.production.sample-shape"
PROXY_DOMAIN = "s3." + APP_HOST


@dataclass
class MastodonHost:
    root: str
    live: str
    env_file: str
    system_root: str
    instance: object
    nginx: object
    layout: dict
    extra_vars: dict
    env: dict
    marker: str
    mode: str
    certs: dict = field(default_factory=dict)
    http_port: int = 0

    @property
    def https_port(self) -> int:
        return self.nginx.port  # 443 on a real host: the app's site and the proxy share it

    def media_path(self, key: str) -> str:
        """The URL path of an object through the proxy, in this mode."""
        return {"subdomain": "/", "directory": "/storage/", "system": "/system/"}[self.mode] + key

    def proxy_port(self) -> int:
        return self.https_port

    def proxy_host(self) -> str:
        return PROXY_DOMAIN if self.mode == "subdomain" else APP_HOST

    def get(self, path, host=APP_HOST, method="GET"):
        """https://HOST/PATH on the shared TLS listener (SNI and Host ``host``, its certificate verified;
        a name without a certificate is not verified)."""
        cert = self.certs.get(host)
        return request(self.https_port, path, host, method=method, tls=True, ca_file=cert[0] if cert else None,
                       insecure=cert is None)

    def get_media(self, key, method="GET"):
        """An object under exactly the URL the app now writes (S3_ALIAS_HOST)."""
        return self.get(self.media_path(key), self.proxy_host(), method=method)


def checksums(root, skip_prefix=None) -> dict:
    sums = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if skip_prefix and rel.startswith(skip_prefix):
                continue
            with open(path, "rb") as fh:
                sums[rel] = hashlib.sha256(fh.read()).hexdigest()
    return sums


def write_env_file(path, pg, dbname):
    """Mastodon's .env.production (sample shape), with the DB_* of the fixture database."""
    values = {"DB_HOST": pg.host, "DB_PORT": str(pg.port), "DB_USER": pg.user, "DB_PASS": pg.password, "DB_NAME": dbname}
    lines = []
    for line in ENV_SAMPLE.read_text().splitlines(keepends=True):
        name = line.split("=", 1)[0]
        lines.append("%s=%s\n" % (name, values[name]) if name in values else line)
    Path(path).write_text("".join(lines))
    os.chmod(path, 0o600)


VERSION_RB = """# frozen_string_literal: true

module Mastodon
  module Version
    module_function

    def major
      {0}
    end

    def minor
      {1}
    end

    def patch
      {2}
    end
  end
end
"""


def host_layout(root, app_dirs) -> dict:
    """A Debian-like /etc/nginx (conf.d, sites-available, sites-enabled, snippets) and the other
    directories of a host below ``root``, plus the app's own ``app_dirs`` ({name: path parts})."""
    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)
    parts = {"conf_d": ("etc", "conf.d"), "available": ("etc", "sites-available"), "enabled": ("etc", "sites-enabled"),
             "snippets": ("etc", "snippets"), "acme": ("acme",), "tls": ("tls",), "systemd": ("systemd",),
             "progress": ("progress",)}
    parts.update(app_dirs)
    layout = {name: os.path.join(root, *path) for name, path in parts.items()}
    for path in layout.values():
        os.makedirs(path, mode=0o755, exist_ok=True)
    # The app's cache zone (/var/cache/nginx in Mastodon's dist/nginx.conf) and, outside it, the proxy's
    # (the role's default /var/cache/fediverse-media/fediverse_media), both below the root.
    layout["app_cache"] = os.path.join(root, "var", "cache", "nginx")
    layout["cache"] = os.path.join(root, "var", "cache", "fediverse-media", "fediverse_media")
    layout["dropin"] = os.path.join(layout["systemd"], "nginx.service.d")
    os.makedirs(os.path.dirname(layout["app_cache"]), mode=0o755, exist_ok=True)  # /var/cache, as on a host
    return layout


def proxy_vars(rgw, dns, nginx, layout, tls, http_port) -> dict:
    """The nginx_proxy settings of a host laid out here: the throwaway nginx, proxying virtual-host style
    to BUCKET.s3.localhost (resolved at request time by the stub DNS) and verifying RGW's certificate
    with the harness CA, its site on the app's own listeners (80/443 on a real host)."""
    base = [NGINX, "-p", nginx.prefix + "/", "-c", nginx.config_file, "-e", nginx.error_log]
    return {
        "migrate_nginx_dump_command": " ".join(base + ["-T"]),
        "nginx_proxy_s3_endpoint": "https://%s:%d" % (rgw.dns_name, rgw.https_port),
        "nginx_proxy_upstream_ca_file": rgw.ca_bundle,
        "nginx_proxy_resolvers": [dns.address],
        "nginx_proxy_cache_path": layout["cache"],
        "nginx_proxy_conf_d_dir": layout["conf_d"],
        "nginx_proxy_sites_available_dir": layout["available"],
        "nginx_proxy_sites_enabled_dir": layout["enabled"],
        "nginx_proxy_snippets_dir": layout["snippets"],
        "nginx_proxy_test_command": " ".join(base + ["-t"]),
        "nginx_proxy_reload_command": " ".join(base + ["-s", "reload"]),
        "nginx_proxy_systemd_dropin_dir": layout["dropin"],
        "nginx_proxy_systemd_daemon_reload": False,
        "nginx_proxy_listen_address": "127.0.0.1",
        "nginx_proxy_listen_ipv6": False,
        "nginx_proxy_http_port": http_port,
        "nginx_proxy_https_port": nginx.port,
        "nginx_proxy_ssl_certificate": tls[0],
        "nginx_proxy_ssl_certificate_key": tls[1],
        "nginx_proxy_acme_webroot": layout["acme"],
    }


def prepare(root, pg, rgw, nginx, dns, bucket, mode="system", mastodon_version=(4, 3, 2),
            app_inactive="7d") -> MastodonHost:
    """Lay out and start everything; ``nginx`` is a not yet started tests.services.nginx.Nginx.
    ``app_inactive``: ``inactive=`` of the app's CACHE zone."""
    root = str(root)
    layout = host_layout(root, {"live": ("mastodon", "live"), "public": ("mastodon", "live", "public"),
                                "version_dir": ("mastodon", "live", "lib", "mastodon")})
    for sub in ("mastodon", os.path.join("mastodon", "live")):
        os.chmod(os.path.join(root, sub), 0o755)
    layout["system"] = os.path.join(layout["public"], "system")
    with open(os.path.join(layout["version_dir"], "version.rb"), "w") as f:
        f.write(VERSION_RB.format(*mastodon_version))

    dbname = "mastodon_" + uuid.uuid4().hex[:8]
    instance = build_instance(pg, dbname, layout["system"], missing=())
    for dirpath, dirs, _files in os.walk(layout["system"]):
        for d in dirs:
            os.chmod(os.path.join(dirpath, d), 0o755)
    env_file = os.path.join(layout["live"], ".env.production")
    write_env_file(env_file, pg, dbname)

    os.chmod(nginx.prefix, 0o755)
    certs = app_certs(layout["tls"], [APP_HOST, PROXY_DOMAIN])
    http_port, backend_port = free_port(), free_port()
    site = os.path.join(layout["available"], "mastodon")
    with open(site, "w") as f:
        f.write(app_site(nginx, layout, http_port, certs[APP_HOST], backend_port, layout["app_cache"],
                         app_inactive=app_inactive))
    os.symlink(site, os.path.join(layout["enabled"], "mastodon"))
    with open(os.path.join(layout["conf_d"], "app-backend-stub.conf"), "w") as f:
        f.write(backend_site(backend_port))
    nginx.write_config(main_conf(nginx, layout))
    nginx.start()

    marker = os.path.join(root, "restarted")
    extra = {
        "migrate_app": "mastodon",
        "migrate_domain": APP_HOST,
        "migrate_proxy_mode": mode,
        "migrate_bucket": bucket,
        "migrate_endpoint": rgw.https_endpoint,
        "migrate_ca_bundle": rgw.ca_bundle,
        "migrate_mastodon_dir": layout["live"],
        "migrate_python": "none",
        "migrate_restart_command": "touch %s" % marker,
        "migrate_progress_dir": layout["progress"],
        "migrate_verify_validate_certs": False,
        "nginx_proxy_app_site_file": os.path.join(layout["enabled"], "mastodon"),
        # The verify phase fetches through the shared listener (the names do not resolve here).
        "migrate_verify_base_url": "https://127.0.0.1:%d%s" % (
            nginx.port, {"subdomain": "", "directory": "/storage", "system": "/system"}[mode]),
        "migrate_verify_host_header": PROXY_DOMAIN if mode == "subdomain" else APP_HOST,
    }
    extra.update(proxy_vars(rgw, dns, nginx, layout, certs[PROXY_DOMAIN], http_port))
    return MastodonHost(root=root, live=layout["live"], env_file=env_file, system_root=layout["system"],
                        instance=instance, nginx=nginx, layout=layout, extra_vars=extra,
                        env={"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key},
                        marker=marker, mode=mode, certs=certs, http_port=http_port)


# --- a Misskey host ---------------------------------------------------------------------------------

MISSKEY_HOST = "misskey.test"
MISSKEY_PROXY_DOMAIN = "s3." + MISSKEY_HOST


@dataclass
class MisskeyHost:
    root: str
    misskey_dir: str
    drive: object
    standin: object
    nginx: object
    layout: dict
    extra_vars: dict
    env: dict
    marker: str
    certs: dict = field(default_factory=dict)

    def get(self, path, host=MISSKEY_HOST):
        """https://HOST/PATH on the shared TLS listener (SNI and Host ``host``, its certificate verified)."""
        return request(self.nginx.port, path, host, tls=True, ca_file=self.certs[host][0])


def prepare_misskey(root, pg, rgw, nginx, dns, bucket, version="2025.4.0") -> MisskeyHost:
    """A Misskey (v11+) host for migrate.yml, not yet switched: the meta row of ``version`` with object
    storage off, the fixture drive (tests/fixtures/misskey_drive.py sample_drive) in files/, Misskey's
    documented nginx site (misskey-hub docs/admin/nginx: its cache zone, everything proxied to the app)
    on the TLS listener the media proxy (s3.DOMAIN, subdomain mode) shares; the app behind it is the
    stand-in for Misskey's /files/ route (tests/misskey_files_standin.py), started here: stop it."""
    from tests.fixtures.misskey_drive import Drive, sample_drive
    from tests.misskey_files_standin import FilesStandIn
    from tests.misskey_host import install_misskey

    root = str(root)
    layout = host_layout(root, {"misskey": ("misskey", "misskey")})
    os.chmod(os.path.dirname(layout["misskey"]), 0o755)
    dbname, _config = install_misskey(layout["misskey"], pg, version, url="https://%s/" % MISSKEY_HOST,
                                      db_prefix="misskey_")
    drive = sample_drive(Drive(pg, dbname, version, os.path.join(layout["misskey"], "files"),
                               "https://" + MISSKEY_HOST))
    standin = FilesStandIn(pg.dsn(dbname), drive.files_dir).start()

    os.chmod(nginx.prefix, 0o755)
    certs = app_certs(layout["tls"], [MISSKEY_HOST, MISSKEY_PROXY_DOMAIN])
    http_port = free_port()
    site = os.path.join(layout["available"], "misskey")
    with open(site, "w") as f:
        f.write(misskey_site(nginx, http_port, certs[MISSKEY_HOST], standin.port, layout["app_cache"], MISSKEY_HOST))
    os.symlink(site, os.path.join(layout["enabled"], "misskey"))
    nginx.write_config(main_conf(nginx, layout))
    nginx.start()

    marker = os.path.join(root, "restarted")
    extra = {
        "migrate_app": "misskey",
        "migrate_domain": MISSKEY_HOST,
        "migrate_proxy_mode": "subdomain",
        "migrate_bucket": bucket,
        "migrate_endpoint": rgw.https_endpoint,
        "migrate_ca_bundle": rgw.ca_bundle,
        "migrate_misskey_dir": layout["misskey"],
        "migrate_python": "none",
        "migrate_restart_command": "touch %s" % marker,
        "migrate_progress_dir": layout["progress"],
        "migrate_state_dir": os.path.join(root, "state"),
        # The verify phase fetches baseUrl (https://s3.DOMAIN) through the shared listener.
        "migrate_verify_connect_to": "127.0.0.1:%d" % nginx.port,
        "migrate_verify_ca_bundle": certs[MISSKEY_PROXY_DOMAIN][0],
        "nginx_proxy_app_site_file": os.path.join(layout["enabled"], "misskey"),
        # Misskey's own address (127.0.0.1:3000 on a real host): the stand-in.
        "misskey_files_upstream": "http://127.0.0.1:%d" % standin.port,
    }
    extra.update(proxy_vars(rgw, dns, nginx, layout, certs[MISSKEY_PROXY_DOMAIN], http_port))
    return MisskeyHost(root=root, misskey_dir=layout["misskey"], drive=drive, standin=standin, nginx=nginx,
                       layout=layout, extra_vars=extra,
                       env={"AWS_ACCESS_KEY_ID": rgw.access_key, "AWS_SECRET_ACCESS_KEY": rgw.secret_key},
                       marker=marker, certs=certs)


# --- running migrate.yml / rollback.yml on such a host, and what it changed -------------------------

MIGRATE = str(REPO / "playbooks" / "migrate.yml")
ROLLBACK = str(REPO / "playbooks" / "rollback.yml")


def migrate(host, playbook=MIGRATE, **kw):
    """Run ``playbook`` (migrate.yml) on ``host`` with its vars (and ``extra=``) and keys in the environment."""
    return run_playbook(playbook, extra_vars=dict(host.extra_vars, **kw.pop("extra", {})), env=host.env, **kw)


def keys_in(s3, bucket):
    """The keys in ``bucket``; None when it does not exist."""
    try:
        return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                for o in page.get("Contents", [])}
    except s3.exceptions.NoSuchBucket:
        return None


def nginx_files(host):
    """The nginx configuration files (backups ending in ~ aside) and their contents."""
    found = {}
    for name in ("conf_d", "available", "enabled", "snippets"):
        for entry in sorted(os.listdir(host.layout[name])):
            path = os.path.join(host.layout[name], entry)
            if not entry.endswith("~"):
                found[os.path.join(name, entry)] = Path(path).read_bytes()
    return found
