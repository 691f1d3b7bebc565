# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lean request path (s3/lean.py) puts on and reads off the wire: AWS Signature Version 4 for
S3, exactly as botocore's ``S3SigV4Auth`` computes it (tests/unit/test_s3_lean.py compares both
signatures and AWS's documented example), an HTTP answer read from a raw socket stream (the
early answer to ``Expect: 100-continue``), and the forward proxy a request goes through, chosen from
the environment as botocore chooses it (``proxy_for``, tests/unit/test_s3_proxy.py compares both).
Plain Python, no Ansible import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import hashlib
import hmac
import http.client
import io
import select
import socket
from base64 import b64encode
from urllib.parse import quote, unquote, urlsplit
from urllib.request import getproxies, proxy_bypass

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
ALGORITHM = "AWS4-HMAC-SHA256"


def uri_encode(value, slash=True):
    """S3's URI encoding: everything but A-Z a-z 0-9 - _ . ~ is %-encoded (``/`` kept when ``slash``)."""
    return quote(value, safe="/~" if slash else "~")


def canonical_query(params):
    """The canonical query string of ``params`` (a dict of str -> str): encoded, sorted by name."""
    pairs = sorted((uri_encode(str(k), slash=False), uri_encode(str(v), slash=False)) for k, v in params.items())
    return "&".join("%s=%s" % pair for pair in pairs)


def _signing_key(secret_key, datestamp, region, service="s3"):
    key = hmac.new(("AWS4" + secret_key).encode("utf-8"), datestamp.encode("utf-8"), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key


def _canonical_value(value):
    return " ".join(str(value).split())


def sign(method, path, query, headers, payload_hash, access_key, secret_key, region, amz_date, key_cache=None):
    """The Authorization header of one request (SigV4, service s3).

    ``path`` is the encoded path as sent; ``query`` the canonical query string; ``headers`` the
    headers to sign (``host`` and ``x-amz-date``/``x-amz-content-sha256`` among them), names in any
    case. ``key_cache`` (a dict) keeps the day's signing key.
    """
    names = sorted((name.lower(), _canonical_value(value)) for name, value in headers.items())
    canonical_headers = "".join("%s:%s\n" % pair for pair in names)
    signed_headers = ";".join(name for name, _value in names)
    canonical_request = "\n".join((method, path, query, canonical_headers, signed_headers, payload_hash))
    datestamp = amz_date[:8]
    scope = "%s/%s/s3/aws4_request" % (datestamp, region)
    string_to_sign = "\n".join((ALGORITHM, amz_date, scope,
                                hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()))
    cache_key = (datestamp, region)
    key = key_cache.get(cache_key) if key_cache is not None else None
    if key is None:
        key = _signing_key(secret_key, datestamp, region)
        if key_cache is not None:
            key_cache.clear()
            key_cache[cache_key] = key
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    return "%s Credential=%s/%s, SignedHeaders=%s, Signature=%s" % (
        ALGORITHM, access_key, scope, signed_headers, signature)


# --- reading an answer off a raw stream -----------------------------------------------------------

class Replay(io.RawIOBase):
    """A raw stream that gives ``head`` (bytes already read off the socket) and then the socket's."""

    def __init__(self, head, raw):
        super(Replay, self).__init__()
        self._head = head
        self._raw = raw

    def readable(self):
        return True

    def readinto(self, buffer):
        if self._head:
            size = min(len(buffer), len(self._head))
            buffer[:size] = self._head[:size]
            self._head = self._head[size:]
            return size
        return self._raw.readinto(buffer)


class _Source(object):
    """What http.client.HTTPResponse needs of a socket: ``makefile``."""

    def __init__(self, raw):
        self._raw = raw

    def makefile(self, mode="rb", *args, **kwargs):
        return io.BufferedReader(self._raw)


def wait_readable(sock, timeout):
    """True when ``sock`` has something to read within ``timeout`` seconds (poll: no FD_SETSIZE limit)."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(timeout * 1000))
    return bool(select.select([sock], [], [], timeout)[0])  # pragma: no cover - platforms without poll


def read_response(raw, method):
    """(status, lowercased headers, body, True) of the whole answer readable from ``raw``."""
    response = http.client.HTTPResponse(_Source(raw), method=method)
    response.begin()
    data = response.read()
    return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data, True


# --- the forward proxy (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) ----------------------------------------

def mask_proxy_url(url):
    """``url`` with its user name and password replaced by ``***`` (botocore's mask_proxy_url), for
    every message that names the proxy."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    userinfo, hostport = parts.netloc.rsplit("@", 1)
    masked = "***:***" if ":" in userinfo else "***"
    return parts._replace(netloc=masked + "@" + hostport).geturl()


class Proxy(object):
    """A forward proxy: ``scheme``, ``host``, ``port``, the ``headers`` it is sent
    (``Proxy-Authorization: Basic`` from the URL's user name and password, as botocore's
    ``ProxyConfiguration.proxy_headers_for``) and ``masked`` (the URL without its credentials). Its
    repr is the masked URL: the password never reaches a message."""

    def __init__(self, url):
        self.masked = mask_proxy_url(url)
        parts = urlsplit(url)
        self.scheme = parts.scheme.lower()
        self.host = parts.hostname
        try:
            port = parts.port
        except ValueError:
            port = -1
        if not self.host or port == -1 or self.scheme not in ("http", "https"):
            raise ValueError("the proxy %s is not a valid http:// or https:// URL" % self.masked)
        self.port = port or (443 if self.scheme == "https" else 80)
        self.headers = {}
        try:
            username, password = unquote(parts.username), unquote(parts.password)
        except (AttributeError, TypeError):
            username = password = None
        if username and password:
            credentials = ("%s:%s" % (username, password)).encode("utf-8")
            self.headers["Proxy-Authorization"] = "Basic " + b64encode(credentials).strip().decode()

    def __repr__(self):
        return "Proxy(%s)" % self.masked

    __str__ = __repr__


def _fix_proxy_url(url):
    """botocore's ProxyConfiguration._fix_proxy_url: a proxy given without a scheme is http://."""
    if url.startswith("http:") or url.startswith("https:"):
        return url
    if url.startswith("//"):
        return "http:" + url
    return "http://" + url


def proxy_for(endpoint_url):
    """The Proxy requests to ``endpoint_url`` go through, or None: botocore's choice, with the same
    standard-library functions (botocore.utils.get_environ_proxies and
    httpsession.ProxyConfiguration.proxy_url_for). None when ``urllib.request.proxy_bypass`` says
    the endpoint's ``host:port`` is to be reached directly (``NO_PROXY``/``no_proxy``: a host, a
    domain suffix, ``*``); else the entry of ``urllib.request.getproxies()`` for the endpoint's scheme
    (``https_proxy``/``HTTPS_PROXY`` for https, ``http_proxy``/``HTTP_PROXY`` for http; the lowercase
    name wins when both are set; ``HTTP_PROXY`` is ignored under CGI). Raises ValueError for a proxy
    that is not a URL (its credentials masked)."""
    parts = urlsplit(endpoint_url)
    try:
        if proxy_bypass(parts.netloc):
            return None
    except (TypeError, socket.gaierror):
        pass
    url = getproxies().get(parts.scheme)
    if not url:
        return None
    return Proxy(_fix_proxy_url(url))


def connection(scheme, host, port, timeout, context, proxy=None):
    """The (unopened) http.client connection to ``host:port``: direct, or through ``proxy`` (a Proxy
    over plain HTTP). For https: TCP to the proxy, ``CONNECT host:port`` with the proxy's headers,
    then TLS with the endpoint through the tunnel (SNI and the certificate check are the endpoint's).
    For http: a connection to the proxy, which the caller asks with the absolute URI."""
    if proxy is None and scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    if proxy is None:
        return http.client.HTTPConnection(host, port, timeout=timeout)
    if scheme == "https":
        conn = http.client.HTTPSConnection(proxy.host, proxy.port, timeout=timeout, context=context)
        conn.set_tunnel(host, port or 443, headers=dict(proxy.headers))
        return conn
    return http.client.HTTPConnection(proxy.host, proxy.port, timeout=timeout)
