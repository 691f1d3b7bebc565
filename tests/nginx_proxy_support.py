"""Helpers for the nginx_proxy tests (role fediverse.object_storage.nginx_proxy, issue 5).

* render the collection's top-level nginx/systemd templates with the role's defaults (plain
  Jinja2, the same settings as ansible.builtin.template), for `nginx -t` on each of them;
* a stub DNS server (UDP, loopback) that answers every A query with 127.0.0.1, so nginx's
  `resolver` really resolves BUCKET.s3.localhost at request time, as it resolves
  BUCKET.ewr1.vultrobjects.com in production;
* HTTP(S) requests to 127.0.0.1 with any Host header and TLS server name (SNI);
* reading nginx's cache files (their binary header holds the validity of each entry).
"""

import functools
import http.client
import os
import socket
import ssl
import struct
import subprocess
import threading

import jinja2
import yaml

from tests.services.nginx import wrap_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(REPO, "templates")
ROLE = os.path.join(REPO, "roles", "nginx_proxy")


# --------------------------------------------------------------------------- templates

def role_defaults(**overrides):
    """The role's defaults/main.yml with ``overrides`` applied and the Jinja expressions resolved."""
    with open(os.path.join(ROLE, "defaults", "main.yml")) as f:
        values = yaml.safe_load(f)
    # What tasks/os_family.yml loads first on this (Debian) host: the layout behind the defaults; and the
    # role's own vars (vars/main.yml) the defaults read.
    for name in ("Debian.yml", "main.yml"):
        with open(os.path.join(ROLE, "vars", name)) as f:
            values.update(yaml.safe_load(f))
    values.update(overrides)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    for _ in range(5):
        pending = False
        for name, value in values.items():
            if isinstance(value, str) and "{{" in value:
                values[name] = env.from_string(value).render(**values)
                pending = True
        if not pending:
            break
    return values


def _trailing_newlines(text):
    return len(text) - len(text.rstrip("\n"))


@functools.cache
def _environment(directory):
    """One Jinja environment per template folder: its compiled templates are kept (hypothesis renders often)."""
    return jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(TEMPLATES, directory)),
                              trim_blocks=True, keep_trailing_newline=False, undefined=jinja2.StrictUndefined)


def render(template, values):
    """Render templates/<template> (e.g. "nginx/subdomain.conf.j2") like ansible.builtin.template:
    trim_blocks, included templates lose their trailing newline, the main one keeps its own."""
    directory, name = os.path.split(template)
    env = _environment(directory)
    with open(os.path.join(TEMPLATES, template)) as f:
        source = f.read()
    result = env.get_template(name).render(**values)
    return result + "\n" * max(0, _trailing_newlines(source) - _trailing_newlines(result))


def self_signed_cert(directory, names):
    """A self-signed certificate and key for DNS ``names`` (plus IP 127.0.0.1): (cert, key) paths."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    san = ",".join(["DNS:%s" % n for n in names] + ["IP:127.0.0.1"])
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=%s" % names[0], "-addext", "subjectAltName=%s" % san,
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


# --------------------------------------------------------------------------- DNS

class StubDNS:
    """Answers A queries for any name with ``answer`` (default 127.0.0.1; other types: no answer).
    Records the names asked. ``bind``: the listening address (a podman container with
    slirp4netns:allow_host_loopback=true reaches the host's 127.0.0.1 as 10.0.2.2, so nginx in
    the container uses ``resolver 10.0.2.2:PORT`` and wants the answer 10.0.2.2)."""

    def __init__(self, answer="127.0.0.1", bind="127.0.0.1"):
        self.answer_address = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((bind, 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except (socket.timeout, OSError):
                continue
            try:
                self.sock.sendto(self._answer(data), peer)
            except (ValueError, IndexError, struct.error, OSError):
                continue

    def _answer(self, query):
        qid = query[:2]
        pos, labels = 12, []
        while query[pos]:
            length = query[pos]
            labels.append(query[pos + 1:pos + 1 + length].decode("ascii"))
            pos += 1 + length
        qtype, _qclass = struct.unpack("!HH", query[pos + 1:pos + 5])
        question = query[12:pos + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        answers = b""
        if qtype == 1:  # A
            answers = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(self.answer_address)
        header = qid + struct.pack("!HHHHH", 0x8180, 1, 1 if answers else 0, 0, 0)
        return header + question + answers


# --------------------------------------------------------------------------- HTTP

class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value) as sent
        self.body = body

    def header(self, name):
        values = self.all(name)
        return values[0] if values else None

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def __repr__(self):
        return "<Response %s %s %r>" % (self.status, self.headers, self.body[:200])


def request(port, path, host, method="GET", tls=False, ca_file=None, body=None, timeout=10, insecure=False,
            headers=None):
    """``method path`` to 127.0.0.1:port with Host ``host`` (and, over TLS, SNI ``host`` verified with
    ``ca_file``; ``insecure``: not verified, for a name no certificate has). ``headers``: more request
    headers, sent as given (``Transfer-Encoding: chunked`` sends ``body`` chunked)."""
    if tls:
        context = ssl.create_default_context(cafile=ca_file)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, context=context, timeout=timeout)
        # Connect to loopback whatever ``host`` resolves to; SNI and verification still use ``host``.
        conn._create_connection = lambda address, timeout=None, source=None: socket.create_connection(
            ("127.0.0.1", port), timeout)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        sent = {"Host": host if port in (80, 443) else "%s:%d" % (host, port)}
        sent.update(headers or {})
        chunked = sent.get("Transfer-Encoding", "").lower() == "chunked"
        conn.request(method, path, body=[body] if chunked else body, headers=sent, encode_chunked=chunked)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read())
    finally:
        conn.close()


# --------------------------------------------------------------------------- nginx cache files

# ngx_http_file_cache_header_t (nginx 1.22, 64-bit): version (ngx_uint_t), valid_sec, updating_sec,
# error_sec, last_modified, date (time_t), crc32 (uint32), valid_msec, header_start, body_start (u_short)...
_CACHE_HEADER = struct.Struct("=Qqqqqqi HHH")


def cache_entries(cache_dir):
    """Every entry of an nginx proxy cache: dicts with key, status, valid_sec, date, path."""
    entries = []
    for root, _dirs, files in os.walk(cache_dir):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                data = f.read()
            if len(data) < _CACHE_HEADER.size:
                continue
            version, valid_sec, _upd, _err, _lm, date, _crc, _vms, header_start, body_start = \
                _CACHE_HEADER.unpack_from(data)
            key_at = data.find(b"\nKEY: ")
            if key_at < 0:
                continue
            key = data[key_at + 6:data.index(b"\n", key_at + 6)].decode()
            head = data[header_start:body_start].decode("latin-1")
            entries.append({"key": key, "status": head.split("\r\n", 1)[0], "valid_sec": valid_sec,
                            "date": date, "version": version, "path": path})
    return entries


# --- a Debian-like nginx with a Mastodon-like site, for the tests that run the proxy ---------------

APP_HOST = "mastodon.test"


def main_conf(nginx, layout):
    """The harness's nginx.conf (tests/services/nginx.py wrap_config) including a Debian-like layout:
    conf.d/*.conf and sites-enabled/*, with workers running as www-data as on Debian."""
    includes = "include %s/*.conf;\ninclude %s/*;" % (layout["conf_d"], layout["enabled"])
    return "user www-data;\n" + wrap_config(includes, nginx.prefix, kind="http")


def app_site(nginx, layout, http_port, tls, backend_port, app_cache, app_inactive="7d", host=APP_HOST):
    """The app's own site, shaped like Mastodon's shipped dist/nginx.conf: its ``proxy_cache_path``
    (``app_cache``, /var/cache/nginx on a real host) with ``keys_zone=CACHE``, a port-80 server
    (ACME + redirect) and the TLS server on ``nginx.port`` (443 on a real host) with
    ``server_name DOMAIN``, ``location ~ ^/system/`` serving public/system and ``location /`` ->
    ``@proxy`` -> the app backend (a stub server, ``backend_site()``) through the CACHE zone.
    The media proxy's own site (subdomain mode) shares these two listeners, told apart by SNI/Host."""
    return """map $http_upgrade $connection_upgrade {{
  default upgrade;
  ''      close;
}}

upstream backend {{
    server 127.0.0.1:{backend} fail_timeout=0;
}}

proxy_cache_path {app_cache} levels=1:2 keys_zone=CACHE:10m inactive={inactive} max_size=1g;

server {{
  listen 127.0.0.1:{http};
  server_name {host};
  root {public};
  location /.well-known/acme-challenge/ {{ allow all; }}
  location / {{ return 301 https://$host$request_uri; }}
}}

server {{
  listen 127.0.0.1:{https} ssl http2;
  server_name {host};

  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_certificate     {cert};
  ssl_certificate_key {key};

  keepalive_timeout    70;
  sendfile             on;
  client_max_body_size 99m;

  root {public};

  location / {{
    try_files $uri @proxy;
  }}

  location ~ ^/system/ {{
    add_header Cache-Control "public, max-age=2419200, immutable";
    add_header X-Content-Type-Options nosniff;
    add_header Content-Security-Policy "default-src 'none'; form-action 'none'";
    add_header X-Served-By "mastodon-system-location";
    try_files $uri =404;
  }}

  location @proxy {{
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_pass_header Server;
    proxy_pass http://backend;
    proxy_buffering on;
    proxy_redirect off;
    proxy_http_version 1.1;
    proxy_set_header Upgrade $http_upgrade;
    proxy_set_header Connection $connection_upgrade;
    proxy_cache CACHE;
    proxy_cache_valid 200 7d;
    proxy_cache_valid 410 24h;
    proxy_cache_use_stale error timeout updating http_500 http_502 http_503 http_504;
    add_header X-Cached $upstream_cache_status;
  }}
}}
""".format(backend=backend_port, app_cache=app_cache, inactive=app_inactive, http=http_port, host=host,
           public=layout["public"], https=nginx.port, cert=tls[0], key=tls[1])


def misskey_site(nginx, http_port, tls, app_port, app_cache, host):
    """Misskey's own site in the shape of the nginx example of Misskey's documentation (misskey-hub
    docs/admin/nginx): its ``cache1`` zone (``app_cache``), a port-80 server redirecting to https and
    the TLS server for ``host`` on ``nginx.port`` (443 on a real host) passing everything to the app
    on ``app_port`` (Misskey's :3000; here the /files/ stand-in). The media proxy's site (subdomain
    mode) shares these listeners, told apart by SNI/Host."""
    return """map $http_upgrade $connection_upgrade {{
    default upgrade;
    ''      close;
}}

proxy_cache_path {app_cache} levels=1:2 keys_zone=cache1:16m max_size=1g inactive=720m use_temp_path=off;

server {{
    listen 127.0.0.1:{http};
    server_name {host};
    location /.well-known/acme-challenge/ {{ allow all; }}
    location / {{ return 301 https://$server_name$request_uri; }}
}}

server {{
    listen 127.0.0.1:{https} ssl http2;
    server_name {host};

    ssl_session_timeout 1d;
    ssl_session_tickets off;
    ssl_certificate     {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;

    client_max_body_size 80m;

    location / {{
        proxy_pass http://127.0.0.1:{app};
        proxy_set_header Host $host;
        proxy_http_version 1.1;
        proxy_redirect off;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto https;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_cache cache1;
        proxy_cache_lock on;
        proxy_cache_use_stale updating;
        proxy_force_ranges on;
        add_header X-Cache $upstream_cache_status;
    }}
}}
""".format(app_cache=app_cache, http=http_port, host=host, https=nginx.port, cert=tls[0], key=tls[1], app=app_port)


APP_BACKEND_BODY = b"app backend\n"


def backend_site(backend_port):
    """A stub of the app backend (Mastodon's puma on :3000): every path answers APP_BACKEND_BODY."""
    return """server {{
    listen 127.0.0.1:{port};
    server_name app-backend.invalid;
    location / {{
        add_header X-App-Backend stub;
        add_header Cache-Control "public, max-age=60";
        return 200 "app backend\\n";
    }}
}}
""".format(port=backend_port)


def app_certs(directory, names):
    """One throwaway self-signed certificate per name (SNI picks the server): {name: (cert, key)}."""
    certs = {}
    for name in names:
        sub = os.path.join(directory, name)
        os.makedirs(sub, exist_ok=True)
        certs[name] = self_signed_cert(sub, [name])
    return certs


def nginx_dump(nginx):
    """``nginx -T`` of the harness's nginx: (ok, output)."""
    proc = subprocess.run(nginx._cmd("-T"), capture_output=True, text=True, timeout=30)
    return proc.returncode == 0, proc.stdout + proc.stderr
