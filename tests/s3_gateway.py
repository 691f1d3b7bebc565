"""A Vultr-like gateway in front of the test Ceph RGW: a real nginx that terminates TLS, limits the
request rate with ``limit_req`` and answers over it with 503 and an S3 ``SlowDown`` XML body, as
Vultr's gateway does (issue 22). Used by tests/integration/test_media_copy_gateway.py and by the
benchmark (bench/gateway.py).

nginx's limit_req (ngx_http_limit_req_module): at most ``rate`` requests per second on average,
``burst`` requests above that taken at once (``nodelay``), anything beyond refused at once; a refused
request does not count against the limit. Its access log has one line per request: the status and the
method, so the gateway's own count of requests and of 503s can be compared with a client's.
"""

import os

from tests.services.ceph import make_ca_and_server_cert

SLOW_DOWN = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>"
             "<Message>Please reduce your request rate.</Message></Error>")

CONFIG = """# tests/s3_gateway.py: a rate-limited TLS gateway in front of Ceph RGW
worker_processes {workers};
pid {p}/nginx.pid;
error_log {p}/logs/error.log;
events {{
    worker_connections 1024;
}}
http {{
    log_format gateway '$status $request_method';
    access_log {p}/logs/access.log gateway;
    client_body_temp_path {p}/tmp/client_body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;
    limit_req_zone $server_name zone=s3:1m rate={rate}r/s;
    limit_req_status 503;
    limit_req_log_level info;
    upstream rgw {{
        server {upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        server_name localhost;
        ssl_certificate {crt};
        ssl_certificate_key {key};
        client_max_body_size 0;
        proxy_request_buffering off;
        error_page 503 @slowdown;
        location / {{
            limit_req zone=s3 burst={burst} nodelay;
            proxy_pass http://rgw;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
        }}
        location @slowdown {{
            default_type application/xml;
            return 503 '{slow_down}';
        }}
    }}
}}
"""


class Gateway(object):
    """One gateway: ``endpoint`` (https://127.0.0.1:port), ``ca_bundle``, ``counts()``."""

    def __init__(self, nginx, rgw, rate, burst, workers=1):
        self.nginx = nginx
        self.rate = rate
        self.burst = burst
        tls = nginx.path("tls")
        os.makedirs(tls, exist_ok=True)
        self.ca_bundle, crt, key = make_ca_and_server_cert(tls, names=("localhost",))
        self.access_log = nginx.path("logs", "access.log")
        nginx.write_config(CONFIG.format(
            p=nginx.prefix, workers=int(workers), rate=int(rate), burst=int(burst), port=nginx.port, crt=crt,
            key=key, upstream=rgw.http_endpoint.split("://", 1)[1], slow_down=SLOW_DOWN))

    @property
    def endpoint(self):
        return "https://127.0.0.1:%d" % self.nginx.port

    def start(self):
        self.nginx.start()
        return self

    def reset_log(self):
        """Empty the access log (between runs): nginx keeps writing to the same open file."""
        with open(self.access_log, "w"):
            pass

    def counts(self):
        """``(requests, 503 answers)`` in the access log so far."""
        requests = refused = 0
        with open(self.access_log) as fh:
            for line in fh:
                requests += 1
                refused += line.startswith("503 ")
        return requests, refused
