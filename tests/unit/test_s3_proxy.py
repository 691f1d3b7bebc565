"""Issue 24 item 7: the lean S3 path (s3/lean.py) takes the forward proxy boto3 takes from the
environment (HTTPS_PROXY/HTTP_PROXY/NO_PROXY, either case), so small PUTs and boto3's multipart
uploads of one run leave by the same way. The choice is compared with botocore's own
(botocore.utils.get_environ_proxies + httpsession.ProxyConfiguration); what goes on the wire is seen
by loopback servers and by the real relaying proxy of tests/forward_proxy.py. The real Ceph RGW
behind that proxy: tests/integration/test_s3_proxy_rgw.py."""

import base64
import http.server
import os
import socket
import threading

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import lean as s3_lean
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import wire as s3_wire
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import LeanClient, S3ConfigError, s3_client
from tests.forward_proxy import ForwardProxy

KEY, SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PROXY_PASSWORD = "pr0xy:p@ss/w%rd"  # every character a URL's userinfo must percent-encode


@pytest.fixture
def env(monkeypatch):
    """No *_proxy variable of the machine's environment leaks into a test; the test sets its own."""
    for name in list(os.environ):
        if name.lower().endswith("_proxy"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)
    return monkeypatch


def botocore_choice(endpoint):
    """(proxy URL, proxy headers) botocore uses for requests to ``endpoint``."""
    from botocore.httpsession import ProxyConfiguration
    from botocore.utils import get_environ_proxies

    config = ProxyConfiguration(proxies=get_environ_proxies(endpoint))
    url = config.proxy_url_for(endpoint)
    return url, (config.proxy_headers_for(url) if url else {})


def described(proxy):
    return None if proxy is None else (proxy.scheme, proxy.host, proxy.port, proxy.headers)


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


VULTR = "https://ewr1.vultrobjects.com"
CASES = [
    # (environment, endpoint, expected: (scheme, host, port, headers) or None)
    ({}, VULTR, None),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128"}, VULTR, ("http", "proxy.example.test", 3128, {})),
    ({"https_proxy": "http://proxy.example.test:3128"}, VULTR, ("http", "proxy.example.test", 3128, {})),
    ({"HTTPS_PROXY": "http://upper.example.test:1", "https_proxy": "http://lower.example.test:2"}, VULTR,
     ("http", "lower.example.test", 2, {})),
    ({"HTTP_PROXY": "http://proxy.example.test:3128"}, VULTR, None),
    ({"HTTP_PROXY": "http://proxy.example.test:3128"}, "http://127.0.0.1:8000",
     ("http", "proxy.example.test", 3128, {})),
    ({"http_proxy": "http://proxy.example.test:3128", "HTTPS_PROXY": "http://tls.example.test:3129"},
     "http://s3.example.test", ("http", "proxy.example.test", 3128, {})),
    ({"HTTPS_PROXY": "proxy.example.test:3128"}, VULTR, ("http", "proxy.example.test", 3128, {})),
    ({"HTTPS_PROXY": "//proxy.example.test"}, VULTR, ("http", "proxy.example.test", 80, {})),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "NO_PROXY": "vultrobjects.com"}, VULTR, None),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "no_proxy": ".vultrobjects.com"}, VULTR, None),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "NO_PROXY": "localhost, ewr1.vultrobjects.com"}, VULTR, None),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "NO_PROXY": "sjc1.vultrobjects.com,example.test"}, VULTR,
     ("http", "proxy.example.test", 3128, {})),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "NO_PROXY": "*"}, VULTR, None),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "no_proxy": "127.0.0.1"}, "https://127.0.0.1:8443", None),
    ({"HTTPS_PROXY": "http://proxy.example.test:3128", "NO_PROXY": "s3.example.test:8443"},
     "https://s3.example.test:8443", None),
    ({"HTTPS_PROXY": "http://fos:%s@proxy.example.test:3128" % "pr0xy%3Ap%40ss%2Fw%25rd"}, VULTR,
     ("http", "proxy.example.test", 3128, {"Proxy-Authorization": basic("fos", PROXY_PASSWORD)})),
    ({"HTTPS_PROXY": "http://fos@proxy.example.test:3128"}, VULTR, ("http", "proxy.example.test", 3128, {})),
    ({"HTTPS_PROXY": "https://proxy.example.test"}, VULTR, ("https", "proxy.example.test", 443, {})),
]


@pytest.mark.parametrize("variables, endpoint, expected", CASES)
def test_the_proxy_is_the_one_botocore_takes(env, variables, endpoint, expected):
    """Same variables, same choice as botocore: HTTPS_PROXY for an https endpoint, HTTP_PROXY for http,
    the lowercase name first, NO_PROXY's hosts, domains, host:port and ``*``, a proxy given without a
    scheme, Proxy-Authorization from the URL's (percent-encoded) user name and password."""
    for name, value in variables.items():
        env.setenv(name, value)
    theirs_url, theirs_headers = botocore_choice(endpoint)
    ours = s3_wire.proxy_for(endpoint)
    assert described(ours) == expected
    if expected is None:
        assert theirs_url is None
    else:
        assert described(s3_wire.Proxy(theirs_url)) == expected and theirs_headers == ours.headers
    lean = s3_lean.LeanS3(endpoint, KEY, SECRET, "ewr1") if expected is None or expected[0] == "http" else None
    if lean is not None:
        assert described(lean.proxy) == expected


def test_credentials_are_masked_everywhere(env):
    url = "http://fos:pr0xy%3Ap%40ss%2Fw%25rd@proxy.example.test:3128"
    proxy = s3_wire.Proxy(url)
    assert proxy.masked == "http://***:***@proxy.example.test:3128"
    from botocore.httpsession import mask_proxy_url

    assert mask_proxy_url(url) == proxy.masked
    for shown in (repr(proxy), str(proxy), proxy.masked):
        assert "pr0xy" not in shown and "fos" not in shown
    assert s3_wire.mask_proxy_url("http://proxy.example.test:3128") == "http://proxy.example.test:3128"
    # A proxy that is not a URL is refused before any request, without its password.
    env.setenv("HTTPS_PROXY", "http://fos:s3cret@proxy.example.test:31x8")
    with pytest.raises(S3ConfigError) as info:
        s3_client(VULTR, access_key=KEY, secret_key=SECRET, lean=True)
    assert "s3cret" not in str(info.value) and "***:***@proxy.example.test" in str(info.value)


def test_a_proxy_over_tls_is_left_to_boto3(env):
    """The lean path speaks plain HTTP to a proxy; an https:// proxy URL (TLS to the proxy) gets a boto3
    client for every call, so all requests of the run still go through that proxy."""
    env.setenv("HTTPS_PROXY", "https://proxy.example.test:3129")
    client = s3_client(VULTR, access_key=KEY, secret_key=SECRET, lean=True)
    assert not isinstance(client, LeanClient)
    assert client.meta.endpoint_url == VULTR
    env.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    client = s3_client(VULTR, access_key=KEY, secret_key=SECRET, lean=True)
    assert isinstance(client, LeanClient) and client.lean.proxy.host == "proxy.example.test"
    env.setenv("NO_PROXY", "vultrobjects.com")
    assert s3_client(VULTR, access_key=KEY, secret_key=SECRET, lean=True).lean.proxy is None


class _Origin(http.server.BaseHTTPRequestHandler):
    """An HTTP server standing where the proxy is: records the request line and headers it is sent."""

    protocol_version = "HTTP/1.1"
    seen = []

    def log_message(self, *args):
        pass

    def do_PUT(self):  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Expect") == "100-continue":
            self.send_response_only(100)
            self.end_headers()
        body = self.rfile.read(length)
        self.seen.append((self.requestline, dict(self.headers), body))
        self.send_response(200)
        self.send_header("ETag", '"e"')
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def origin():
    _Origin.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Origin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Origin.seen
    server.shutdown()
    server.server_close()


def test_an_http_endpoint_is_asked_with_the_absolute_uri(env, origin):
    """Over plain HTTP the request goes to the proxy with the absolute URI, Proxy-Authorization with it
    (not signed: the proxy drops it), Host and the SigV4 signature those of the endpoint."""
    server, seen = origin
    env.setenv("http_proxy", "http://fos:pr0xy%%3Ap%%40ss%%2Fw%%25rd@127.0.0.1:%d" % server.server_address[1])
    client = s3_client("http://s3.example.test:8000", access_key=KEY, secret_key=SECRET, lean=True)
    client.put_object(Bucket="media", Key="cache/a b.png", Body=b"png bytes", ContentType="image/png")
    requestline, headers, body = seen[-1]
    assert requestline == "PUT http://s3.example.test:8000/media/cache/a%20b.png HTTP/1.1"
    assert headers["Host"] == "s3.example.test:8000" and body == b"png bytes"
    assert headers["Proxy-Authorization"] == basic("fos", PROXY_PASSWORD)
    assert "proxy-authorization" not in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert not client.boto_loaded
    # NO_PROXY naming the endpoint: straight to it (here: nowhere to connect, so an error naming it).
    env.setenv("NO_PROXY", "s3.example.test")
    direct = s3_client("http://s3.example.test:8000", access_key=KEY, secret_key=SECRET, lean=True)
    assert direct.lean.proxy is None and direct.lean.where == "s3.example.test:8000"


def test_an_https_endpoint_is_reached_through_a_connect_tunnel(env):
    """Over HTTPS: CONNECT host:port to the proxy with Proxy-Authorization, then TLS with the endpoint
    through the tunnel (the endpoint receives a TLS ClientHello, the proxy never sees a request). A
    proxy that refuses the credentials (407) gives an error that names the proxy, masked."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    first_bytes = []

    def accept():
        conn, _addr = listener.accept()
        with conn:
            first_bytes.append(conn.recv(5))

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    with ForwardProxy(credentials=("fos", PROXY_PASSWORD)) as proxy:
        env.setenv("HTTPS_PROXY", proxy.url())
        client = s3_client("https://127.0.0.1:%d" % port, access_key=KEY, secret_key=SECRET, lean=True)
        client.lean.max_attempts = 1
        with pytest.raises(ConnectionError) as info:
            client.head_bucket(Bucket="media")
        acceptor.join(10)
        assert proxy.tunnels == ["127.0.0.1:%d" % port] and proxy.forwarded == []
        assert proxy.auth_seen == [basic("fos", PROXY_PASSWORD)]
        assert first_bytes and first_bytes[0][:1] == b"\x16"  # a TLS handshake record, end to end
        assert "through the proxy http://***:***@127.0.0.1:%d" % proxy.port in str(info.value)

        env.setenv("HTTPS_PROXY", proxy.url("fos", "not-the-password"))
        wrong = s3_client("https://127.0.0.1:%d" % port, access_key=KEY, secret_key=SECRET, lean=True)
        wrong.lean.max_attempts = 1
        with pytest.raises(ConnectionError) as info:
            wrong.put_object(Bucket="media", Key="k", Body=b"x")
        message = str(info.value)
        assert proxy.refused == 1 and "407" in message, message
        assert "not-the-password" not in message and "http://***:***@127.0.0.1:%d" % proxy.port in message
    listener.close()
