# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lean request path (s3_lean.py) puts on and reads off the wire: AWS Signature Version 4 for
S3, exactly as botocore's ``S3SigV4Auth`` computes it (tests/unit/test_s3_lean.py compares both
signatures and AWS's documented example), and an HTTP answer read from a raw socket stream (the
early answer to ``Expect: 100-continue``). Plain Python, no Ansible import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import hashlib
import hmac
import http.client
import io
import select
from urllib.parse import quote

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
