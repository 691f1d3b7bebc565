# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lean request path of the copy engine: PutObject, HeadObject, HeadBucket and ListObjectsV2
sent with ``http.client`` and signed with AWS Signature Version 4, without boto3.

Why (issue 15): on a 2-core host the client's CPU decides the copy's wall time. botocore spends
most of a small object's CPU in its generic request pipeline (model-driven serialisation, event
hooks, the signer's copies of every header, urllib3), and importing boto3 and building a client
costs ~0.3 s before the first request, which is most of an incremental pass. This path sends the
same requests botocore sends for these four operations:

* SigV4 exactly as botocore's ``S3SigV4Auth`` computes it (tests/unit/test_s3_lean.py compares
  the two signatures, and AWS's documented example), ``UNSIGNED-PAYLOAD`` over HTTPS (the body is
  protected by TLS), the body's SHA-256 over plain HTTP;
* path-style (``/bucket/key``) or virtual-host (``bucket.host/key``) addressing;
* ``Expect: 100-continue`` (unsigned, as botocore's ``add_expect_header``) on a body sent apart from the
  headers (streamed over HTTPS, or larger than SMALL_BODY): the body follows the server's 100 Continue
  (or ``expect_wait`` seconds of silence, as botocore's AWSConnection); a final answer given instead
  (AccessDenied, a wrong key...) is read and reported, the body never sent and the connection not
  reused. A smaller body goes with the headers in one write (no round trip); an answer the server
  gave before closing on it is read after the failed send. Either way a refusal is botocore's
  ClientError with the server's code, never a connection error;
* one keep-alive connection per thread (``threading.local``), TLS with the CA bundle or the
  ``validate_certs`` choice of the botocore client;
* the forward proxy botocore would use (issue 24): ``s3_wire.proxy_for`` reads ``HTTPS_PROXY``,
  ``HTTP_PROXY`` and ``NO_PROXY`` (either case) with the standard-library functions botocore calls;
  an https endpoint is reached through a ``CONNECT`` tunnel (TLS end to end, ``Proxy-Authorization``
  on the CONNECT only), an http endpoint with absolute-URI requests carrying ``Proxy-Authorization``.
  A proxy reached over TLS itself (``https://`` proxy URL) is boto3's: ``s3.s3_client`` then makes
  no LeanS3. Messages name the proxy with its credentials masked;
* every attempt, retries included, waits for the ``pacer``'s turn and tells it the answer (s3.pace_client);
* botocore's retry rules ("standard" mode): throttling codes, 500/502/503/504 and connection
  errors are retried up to ``max_attempts`` times in all, with exponential backoff and full jitter
  (at most 20 s); a request on a kept-alive connection the server closed meanwhile is sent again at
  once on a new connection;
* errors raised as botocore's ``ClientError`` with the same ``response`` shape
  (``Error.Code``/``Message``, ``ResponseMetadata.HTTPStatusCode``), so every caller and
  ``s3.describe_error`` treat both paths alike; connection failures raise ``ConnectionError``.

Every other operation (multipart, CopyObject, ACLs, GetObject...) stays with boto3: see
``s3.LeanClient``, which imports boto3 only when one of those is first needed.

Plain Python, no Ansible import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import hashlib
import http.client
import random
import ssl
import threading
import time
from urllib.parse import unquote_plus, urlsplit
from xml.etree import ElementTree

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import parse_list_objects_v2
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.wire import (
    EMPTY_SHA256,
    UNSIGNED_PAYLOAD,
    Replay,
    canonical_query,
    connection,
    proxy_for,
    read_response,
    sign,
    uri_encode,
    wait_readable,
)

try:
    from botocore.exceptions import ClientError as _ClientError
except ImportError:  # pragma: no cover - the modules report the missing library
    _ClientError = None

# Bodies up to this size are read into memory and sent with the headers in one write; larger
# ones are streamed in CHUNK-sized writes (the multipart threshold bounds them anyway).
SMALL_BODY = 1024 * 1024
CHUNK = 256 * 1024
MAX_BACKOFF = 20.0
# How long a request with "Expect: 100-continue" waits for the interim answer before it sends the
# body anyway (botocore's AWSConnection waits 1 s).
EXPECT_WAIT = 1.0
# botocore's retryable error codes ("standard" retry mode, botocore/retries/standard.py).
THROTTLING_CODES = frozenset((
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
))
TRANSIENT_CODES = frozenset(("RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete"))
TRANSIENT_STATUS = frozenset((500, 502, 503, 504))
# LeanS3's ``proxy`` default: the one the environment names for the endpoint (s3_wire.proxy_for).
FROM_ENVIRONMENT = "environment"


class _BodyError(Exception):
    """The request body (the source file) could not be read: not the connection's fault, never retried.
    Never leaves this module: callers get ``source_error()``, an OSError."""

    def __init__(self, original):
        super(_BodyError, self).__init__(str(original))
        self.original = original

    def source_error(self):
        """The source's own error when it is an OSError, else an OSError that says what it was."""
        if isinstance(self.original, OSError):
            return self.original
        error = OSError("cannot read the source: %s: %s" % (type(self.original).__name__, self.original))
        error.__cause__ = self.original
        return error


def _read(body, size):
    try:
        return body.read(size)
    except Exception as exc:  # noqa: BLE001 - re-raised as the source's own error by request()
        raise _BodyError(exc) from exc


class LeanError(Exception):
    """Raised when botocore is not importable (ClientError is used otherwise)."""

    def __init__(self, response, operation_name):
        error = response.get("Error", {})
        super(LeanError, self).__init__("An error occurred (%s) when calling the %s operation: %s" % (
            error.get("Code", "Unknown"), operation_name, error.get("Message", "Unknown")))
        self.response = response
        self.operation_name = operation_name


def client_error(response, operation_name):
    """botocore's ClientError for ``response`` (the same object botocore raises), or LeanError."""
    if _ClientError is not None:
        return _ClientError(response, operation_name)
    return LeanError(response, operation_name)


# --- the client -----------------------------------------------------------------------------------

def _error_from(status, body, operation_name, headers):
    """botocore's error response dict for a non-2xx answer (a HEAD answer has no body: code = status)."""
    code, message = str(status), http.client.responses.get(status, "")
    if body:
        try:
            root = ElementTree.fromstring(body)
            code = root.findtext("Code") or code
            message = root.findtext("Message") or message
        except ElementTree.ParseError:
            pass
    return {"Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers,
                                 "RequestId": headers.get("x-amz-request-id", "")}}


def _url_decode(value):
    """botocore's decoding of ``encoding-type=url`` values (unquote_plus); most keys have nothing to decode."""
    return unquote_plus(value) if "%" in value or "+" in value else value


def is_retryable_response(status, code):
    return status in TRANSIENT_STATUS or status == 429 or code in THROTTLING_CODES or code in TRANSIENT_CODES


class LeanS3(object):
    """PutObject, HeadObject, HeadBucket and ListObjectsV2 with keyword arguments and results shaped
    like boto3's (the subset the copy engine uses). Thread-safe: one connection per thread."""

    operations = ("put_object", "head_object", "head_bucket", "list_objects_v2")

    def __init__(self, endpoint_url, access_key, secret_key, region, addressing_style="path", ca_bundle=None,
                 validate_certs=True, max_attempts=5, timeout=60, sleep=time.sleep, expect_wait=EXPECT_WAIT,
                 proxy=FROM_ENVIRONMENT):
        """``proxy``: an s3_wire.Proxy, None (direct), or FROM_ENVIRONMENT (botocore's choice, read now,
        as botocore reads it when its client is made). Raises ValueError for a proxy the lean path
        cannot use (over TLS itself): s3.s3_client makes a boto3 client for that case."""
        if addressing_style not in ("path", "virtual"):
            raise ValueError("the lean path knows path and virtual addressing, not %r" % addressing_style)
        if proxy == FROM_ENVIRONMENT:
            proxy = proxy_for(endpoint_url)
        if proxy is not None and proxy.scheme != "http":
            raise ValueError("the lean path reaches a proxy over plain HTTP only, not %s" % proxy.masked)
        self.proxy = proxy
        parts = urlsplit(endpoint_url)
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port
        self.base_path = parts.path.rstrip("/")
        self.netloc = parts.netloc.rsplit("@", 1)[-1]
        # The endpoint as messages name it.
        self.where = self.netloc + (" through the proxy %s" % proxy.masked if proxy is not None else "")
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.addressing_style = addressing_style
        self.max_attempts = max(1, int(max_attempts))
        self.timeout = timeout
        self.expect_wait = expect_wait
        self.unsigned_payload = self.scheme == "https"
        self._sleep = sleep
        self.pacer = None  # a rate_limit.RateLimiter (s3.pace_client)
        self._local = threading.local()
        self._keys = {}
        self._keys_lock = threading.Lock()
        self.context = None
        if self.scheme == "https":
            if ca_bundle:
                self.context = ssl.create_default_context(cafile=ca_bundle)
            elif validate_certs:
                self.context = ssl.create_default_context()
            else:
                self.context = ssl.create_default_context()
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE

    # -- addressing and connections --
    def _target(self, bucket, key=None):
        """(host header, connect host, encoded path) of a bucket or an object."""
        if self.addressing_style == "virtual":
            host = "%s.%s" % (bucket, self.netloc)
            connect = "%s.%s" % (bucket, self.host)
            path = self.base_path + "/" + (uri_encode(key) if key is not None else "")
        else:
            host, connect = self.netloc, self.host
            path = self.base_path + "/" + bucket + ("/" + uri_encode(key) if key is not None else "")
        return host, connect, path

    def _connection(self, connect_host):
        conns = getattr(self._local, "conns", None)
        if conns is None:
            conns = self._local.conns = {}
        conn = conns.get(connect_host)
        if conn is None:
            conn = conns[connect_host] = connection(self.scheme, connect_host, self.port, self.timeout, self.context,
                                                    self.proxy)
        return conn

    def _drop(self, connect_host):
        conn = getattr(self._local, "conns", {}).pop(connect_host, None)
        if conn is not None:
            conn.close()

    def close(self):
        for name in list(getattr(self._local, "conns", {})):
            self._drop(name)

    # -- one request --
    def _send_once(self, conn, method, url, headers, body, length):
        """Send one request on ``conn``; (status, lowercased headers, body bytes, early) where ``early``
        is True when the server gave its final answer before the body was sent (the connection is then
        out of step with the server and must not be reused)."""
        conn.putrequest(method, url, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        if headers.get("Expect") == "100-continue":
            conn.endheaders()
            early = self._await_continue(conn, method)
            if early is not None:
                return early
            self._send_body(conn, body, length)
        elif body is None or isinstance(body, bytes):
            try:
                conn.endheaders(body if body else None)
            except (BrokenPipeError, ConnectionResetError):
                # The server answered (403, 400...) and closed before it read the whole body: its
                # answer is in the receive buffer; without one, the connection error stands.
                early = self._early_answer(conn, method)
                if early is None:
                    raise
                return early
        else:
            conn.endheaders()
            self._send_body(conn, body, length)
        response = conn.getresponse()
        data = response.read()
        return response.status, dict((k.lower(), v) for k, v in response.getheaders()), data, False

    @staticmethod
    def _send_body(conn, body, length):
        if body is None or isinstance(body, bytes):
            if body:
                conn.send(body)
            return
        remaining = length
        while remaining > 0:
            chunk = _read(body, min(CHUNK, remaining))
            if not chunk:
                raise _BodyError(OSError("the source is shorter than the %d bytes announced (changed while copied?)"
                                         % length))
            conn.send(chunk)
            remaining -= len(chunk)

    def _await_continue(self, conn, method):
        """After headers with ``Expect: 100-continue`` (botocore's AWSConnection): wait up to
        ``expect_wait`` seconds for the server's interim answer. None when the body is to be sent (100
        Continue, or no answer in time: RFC 9110 lets a client go on); else the final answer (status,
        headers, body, True), given before the body was read (403 AccessDenied, 400...)."""
        sock = conn.sock
        pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted are not seen by poll
        if not (pending is not None and pending()) and not wait_readable(sock, self.expect_wait):
            return None
        raw = sock.makefile("rb", buffering=0)  # unbuffered: nothing past the status line is consumed here
        try:
            line = raw.readline(65537)
            parts = line.split(None, 2)
            if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1] == b"100":
                while raw.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # an interim answer's headers (none from S3, some proxies add one)
                return None
            return read_response(Replay(line, raw), method)
        finally:
            raw.close()

    @staticmethod
    def _early_answer(conn, method):
        """The answer a server sent before a failed send, or None."""
        if conn.sock is None:
            return None
        raw = conn.sock.makefile("rb", buffering=0)
        try:
            return read_response(raw, method)
        except (http.client.HTTPException, OSError):
            return None
        finally:
            raw.close()

    def request(self, operation_name, method, bucket, key=None, query=None, headers=None, body=None, length=0,
                payload_hash=None):
        """Sign, send (with botocore's retry rules), and return ``(status, headers, body)`` of a 2xx answer;
        raise ClientError for any other answer and ConnectionError when the endpoint cannot be reached."""
        host, connect_host, path = self._target(bucket, key)
        query_string = canonical_query(query) if query else ""
        url = path + ("?" + query_string if query_string else "")
        forwarded = self.proxy is not None and self.scheme == "http"
        if forwarded:  # an HTTP proxy is asked for the absolute URI (the signature covers the path)
            url = "http://" + host + url
        if payload_hash is None:
            payload_hash = UNSIGNED_PAYLOAD if self.unsigned_payload else EMPTY_SHA256
        start = None
        if hasattr(body, "tell") and not isinstance(body, bytes):
            try:
                start = body.tell()
            except (OSError, ValueError):  # not seekable (a pipe...): sent once, never re-sent
                start = None
        # botocore sends "Expect: 100-continue" with every file body (handlers.add_expect_header): a
        # server that refuses the request (AccessDenied, a wrong key...) answers before the body is
        # sent, instead of closing on a half-sent body (a broken pipe, not its answer). Here: every
        # body sent apart from the headers (streamed, or larger than SMALL_BODY); a smaller one goes
        # with the headers in one write (no round trip for the 100), its early answer read after a
        # failed send.
        expect = method in ("PUT", "POST") and length > 0 and (
            not isinstance(body, bytes) or length > SMALL_BODY)
        attempt = 0
        pacer = self.pacer
        while True:
            attempt += 1
            if pacer is not None:
                pacer.before_send()  # before signing: a long wait must not age the signature
            amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            signed = dict(headers or {})
            signed["host"] = host
            signed["x-amz-date"] = amz_date
            signed["x-amz-content-sha256"] = payload_hash
            with self._keys_lock:
                authorization = sign(method, path, query_string, signed, payload_hash, self.access_key, self.secret_key,
                                     self.region, amz_date, self._keys)
            sent = dict(signed)
            sent["Authorization"] = authorization
            if method in ("PUT", "POST") or length:
                sent["Content-Length"] = str(length)
            if expect:
                sent["Expect"] = "100-continue"
            sent["Host"] = sent.pop("host")
            if forwarded:
                sent.update(self.proxy.headers)
            conn = self._connection(connect_host)
            reused = conn.sock is not None
            try:
                status, rheaders, data, early = self._send_once(conn, method, url, sent, body, length)
            except _BodyError as exc:
                self._drop(connect_host)
                raise exc.source_error() from None
            except ssl.SSLCertVerificationError as exc:
                self._drop(connect_host)
                raise ConnectionError("TLS error talking to %s: %s (set ca_bundle, or validate_certs: false for a test "
                                      "endpoint)" % (self.where, exc)) from exc
            except (http.client.HTTPException, OSError) as exc:
                self._drop(connect_host)
                if attempt >= self.max_attempts or not self._rewind(body, start):
                    raise ConnectionError("cannot reach the S3 endpoint %s: %s: %s" % (
                        self.where, type(exc).__name__, exc)) from exc
                if not (reused and attempt == 1):  # a kept-alive connection the server closed: at once
                    self._backoff(attempt)
                continue
            if early or rheaders.get("connection", "").lower() == "close":
                self._drop(connect_host)
            error = None if 200 <= status < 300 else _error_from(status, data if method != "HEAD" else b"",
                                                                 operation_name, rheaders)
            if pacer is not None:
                pacer.observe(status, error and error["Error"]["Code"])
            if error is None:
                return status, rheaders, data
            if attempt < self.max_attempts and is_retryable_response(status, error["Error"]["Code"]) \
                    and self._rewind(body, start):
                if pacer is None or status not in (429, 503):  # a push-back: the pacer spaces the retry
                    self._backoff(attempt)
                continue
            raise client_error(error, operation_name)

    @staticmethod
    def _rewind(body, start):
        if body is None or isinstance(body, bytes):
            return True
        if start is None:
            return False
        try:
            body.seek(start)
        except (OSError, ValueError):
            return False
        return True

    def _backoff(self, attempt):
        # botocore's standard mode: full jitter, base 1 s, doubling, capped at 20 s.
        self._sleep(min(MAX_BACKOFF, random.random() * (2 ** (attempt - 1))))

    # -- the operations (boto3's names, arguments and result keys) --
    def put_object(self, Bucket, Key, Body=b"", ContentLength=None, ContentType=None, CacheControl=None,  # noqa: N803
                   ACL=None, ContentDisposition=None, ContentMD5=None):
        headers = {}
        if ContentType:
            headers["Content-Type"] = ContentType
        if CacheControl:
            headers["Cache-Control"] = CacheControl
        if ContentDisposition:
            headers["Content-Disposition"] = ContentDisposition
        if ContentMD5:
            headers["Content-MD5"] = ContentMD5
        if ACL:
            headers["x-amz-acl"] = ACL
        body = Body
        if isinstance(body, str):
            body = body.encode("utf-8")
        if isinstance(body, bytes):
            length = len(body)
        else:
            if ContentLength is None:
                raise ValueError("put_object with a file body needs ContentLength")
            length = int(ContentLength)
            if length <= SMALL_BODY or not self.unsigned_payload:
                # One read, one write: and over plain HTTP the payload's SHA-256 is signed.
                try:
                    data = _read(body, length)
                except _BodyError as exc:
                    raise exc.source_error() from None
                if len(data) != length:
                    raise OSError("the source is shorter than the %d bytes announced (changed while copied?)" % length)
                body = data
        payload_hash = None
        if isinstance(body, bytes) and not self.unsigned_payload:
            payload_hash = hashlib.sha256(body).hexdigest()
        _status, rheaders, _data = self.request("PutObject", "PUT", Bucket, Key, headers=headers, body=body,
                                                length=length, payload_hash=payload_hash)
        return {"ETag": rheaders.get("etag"), "ResponseMetadata": {"HTTPStatusCode": _status, "HTTPHeaders": rheaders}}

    def head_object(self, Bucket, Key):  # noqa: N803
        status, rheaders, _data = self.request("HeadObject", "HEAD", Bucket, Key)
        result = {"ContentLength": int(rheaders.get("content-length", 0)), "ETag": rheaders.get("etag"),
                  "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": rheaders}}
        for name, header in (("ContentType", "content-type"), ("CacheControl", "cache-control"),
                             ("ContentDisposition", "content-disposition")):
            if header in rheaders:
                result[name] = rheaders[header]
        return result

    def head_bucket(self, Bucket):  # noqa: N803
        status, rheaders, _data = self.request("HeadBucket", "HEAD", Bucket)
        return {"ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": rheaders}}

    def list_objects_v2(self, Bucket, MaxKeys=None, Prefix=None, Delimiter=None, StartAfter=None,  # noqa: N803
                        ContinuationToken=None):
        """One ListObjectsV2 page, asked with ``encoding-type=url`` (as botocore asks) and decoded back."""
        query = {"list-type": "2", "encoding-type": "url"}
        for name, value in (("max-keys", MaxKeys), ("prefix", Prefix), ("delimiter", Delimiter),
                            ("start-after", StartAfter), ("continuation-token", ContinuationToken)):
            if value is not None:
                query[name] = str(value)
        _status, _rheaders, data = self.request("ListObjectsV2", "GET", Bucket, query=query)
        page = parse_list_objects_v2(data)
        if page.get("EncodingType") == "url":
            for name in ("Prefix", "Delimiter", "StartAfter"):
                if name in page:
                    page[name] = _url_decode(page[name])
            for entry in page.get("Contents", ()):
                entry["Key"] = _url_decode(entry["Key"])
            for entry in page.get("CommonPrefixes", ()):
                entry["Prefix"] = _url_decode(entry["Prefix"])
        return page
