"""The lean request path (plugins/module_utils/s3/lean.py): its signature is botocore's, its
requests are the ones botocore sends, its retries follow botocore's rules, and a copy run that only
needs its four operations never imports boto3. Loopback HTTP servers record what is sent; the real
Ceph RGW is in tests/integration/test_s3_lean_rgw.py."""

import datetime
import http.server
import io
import os
import subprocess
import sys
import threading
from urllib.parse import unquote

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import lean as s3_lean
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import LeanClient, describe_error, s3_client

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# AWS's documented SigV4 example for S3 ("GET Object", Signature Calculations for the Authorization
# Header: Transferring Payload in a Single Chunk).
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def test_aws_documented_get_object_example():
    headers = {"Host": "examplebucket.s3.amazonaws.com", "Range": "bytes=0-9",
               "x-amz-content-sha256": s3_lean.EMPTY_SHA256, "x-amz-date": "20130524T000000Z"}
    auth = s3_lean.sign("GET", "/test.txt", "", headers, s3_lean.EMPTY_SHA256, AWS_KEY, AWS_SECRET, "us-east-1",
                        "20130524T000000Z")
    assert auth == ("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                    "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                    "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")


def botocore_authorization(method, url, headers, body, payload_signing, amz_date, region="ewr1"):
    """What botocore's S3SigV4Auth puts in Authorization for this request."""
    from unittest import mock

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.config import Config
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    request.context["client_config"] = Config(s3={"payload_signing_enabled": payload_signing})
    when = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        S3SigV4Auth(Credentials(AWS_KEY, AWS_SECRET), "s3", region).add_auth(request)
    return request.headers["Authorization"], request.headers["X-Amz-Content-SHA256"]


KEYS = [
    "cache/media_attachments/files/110/000/001/original/a1b2c3.png",
    "media_attachments/files/000/000/001/original/with space+plus%percent~tilde.jpg",
    "custom_emojis/images/000/000/001/original/\u00e9moji-\u65e5\u672c.png",
    "odd/chars/!$&'()*,;=:@[]{}.bin",
]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("https", [True, False], ids=["https-unsigned-payload", "http-signed-payload"])
def test_put_signature_is_botocores(key, https):
    """The lean PUT's Authorization equals botocore's for the same request, path-style, keys with every
    class of character, over HTTPS (UNSIGNED-PAYLOAD) and HTTP (the body's SHA-256 signed)."""
    import hashlib

    body = b"media bytes \x00\xff" * 10
    lean = s3_lean.LeanS3("%s://s3.example.test:8443" % ("https" if https else "http"), AWS_KEY, AWS_SECRET, "ewr1")
    _host, _connect, path = lean._target("bucket-1", key)
    payload = s3_lean.UNSIGNED_PAYLOAD if https else hashlib.sha256(body).hexdigest()
    headers = {"Content-Type": "image/png", "Cache-Control": "public, max-age=315576000, immutable",
               "x-amz-acl": "public-read", "host": "s3.example.test:8443", "x-amz-date": "20261207T101500Z",
               "x-amz-content-sha256": payload}
    ours = s3_lean.sign("PUT", path, "", headers, payload, AWS_KEY, AWS_SECRET, "ewr1", "20261207T101500Z")
    url = "%s://s3.example.test:8443%s" % ("https" if https else "http", path)
    theirs, their_payload = botocore_authorization(
        "PUT", url, {k: v for k, v in headers.items() if k not in ("host", "x-amz-date", "x-amz-content-sha256")},
        body, not https, "20261207T101500Z")
    assert their_payload == payload
    assert ours == theirs
    assert unquote(path) == "/bucket-1/" + key


def test_list_signature_is_botocores():
    query = {"list-type": "2", "encoding-type": "url", "max-keys": "1000", "prefix": "cache/media attachments/",
             "start-after": "cache/a+b", "continuation-token": "1/x=="}
    canonical = s3_lean.canonical_query(query)
    headers = {"host": "s3.example.test", "x-amz-date": "20261207T101500Z",
               "x-amz-content-sha256": s3_lean.EMPTY_SHA256}
    ours = s3_lean.sign("GET", "/bucket-1", canonical, headers, s3_lean.EMPTY_SHA256, AWS_KEY, AWS_SECRET, "ewr1",
                        "20261207T101500Z")
    # A request without a body carries the empty body's SHA-256 (botocore with payload signing on).
    theirs, _payload = botocore_authorization("GET", "https://s3.example.test/bucket-1?" + canonical, {}, b"", True,
                                              "20261207T101500Z")
    assert ours == theirs


class Recorder(http.server.BaseHTTPRequestHandler):
    """A loopback S3 stand-in: records each request (method, path, headers, body) and answers from a script."""

    protocol_version = "HTTP/1.1"
    script = []
    seen = []

    def log_message(self, *args):
        pass

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, dict(self.headers), body))
        action = self.script.pop(0) if self.script else (200, {"ETag": '"abc"'}, b"")
        if action == "close":
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        status, headers, payload = action
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_PUT = do_GET = do_HEAD = handle_one  # noqa: N815


@pytest.fixture
def recorder():
    Recorder.script = []
    Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def lean_for(server, **kw):
    kw.setdefault("sleep", lambda s: None)
    return s3_lean.LeanS3("http://127.0.0.1:%d" % server.server_address[1], AWS_KEY, AWS_SECRET, "ewr1", **kw)


def test_put_sends_botocores_headers_and_the_exact_body(recorder):
    lean = lean_for(recorder)
    data = os.urandom(3 * s3_lean.SMALL_BODY // 2)
    result = lean.put_object(Bucket="b", Key="a b/c+d.png", Body=io.BytesIO(data), ContentLength=len(data),
                             ContentType="image/png", CacheControl="public, max-age=1", ACL="public-read")
    assert result["ETag"] == '"abc"'
    method, path, headers, body = Recorder.seen[0]
    assert (method, path, body) == ("PUT", "/b/a%20b/c%2Bd.png", data)
    assert headers["Content-Type"] == "image/png" and headers["x-amz-acl"] == "public-read"
    assert headers["Cache-Control"] == "public, max-age=1" and headers["Content-Length"] == str(len(data))
    import hashlib

    assert headers["x-amz-content-sha256"] == hashlib.sha256(data).hexdigest()  # plain HTTP: signed payload
    assert "SignedHeaders=cache-control;content-type;host;x-amz-acl;x-amz-content-sha256;x-amz-date" in \
        headers["Authorization"]


def test_a_source_shorter_than_announced_is_an_error_of_the_source_not_retried(recorder):
    lean = lean_for(recorder)
    with pytest.raises(OSError, match="shorter than the 100 bytes"):
        lean.put_object(Bucket="b", Key="k", Body=io.BytesIO(b"x" * 60), ContentLength=100)
    assert Recorder.seen == []


def test_retries_follow_botocores_rules(recorder):
    """503 SlowDown and 500 are retried with backoff, 403 is not; a connection closed by the server is
    re-sent at once on a new connection; errors are botocore ClientErrors with the same shape."""
    sleeps = []
    lean = lean_for(recorder, sleep=sleeps.append, max_attempts=3)
    slow = (503, {}, b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>")
    Recorder.script = [slow, (500, {}, b""), (200, {"ETag": '"e1"'}, b"")]
    assert lean.put_object(Bucket="b", Key="k", Body=b"abc")["ETag"] == '"e1"'
    assert [s[3] for s in Recorder.seen] == [b"abc"] * 3 and len(sleeps) == 2
    assert all(0 <= s <= 2 for s in sleeps)

    Recorder.seen[:] = []
    Recorder.script = [slow, slow, slow]
    with pytest.raises(Exception) as info:
        lean.put_object(Bucket="b", Key="k", Body=b"abc")
    assert type(info.value).__name__ == "ClientError"
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert len(Recorder.seen) == 3

    Recorder.seen[:] = []
    Recorder.script = [(403, {}, b"<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>")]
    with pytest.raises(Exception) as info:
        lean.put_object(Bucket="b", Key="k", Body=b"abc")
    assert len(Recorder.seen) == 1
    assert "secret key does not match" in describe_error(info.value)

    # HEAD errors have no body: the code is the status, as botocore reports it.
    Recorder.script = [(404, {}, b"")]
    with pytest.raises(Exception) as info:
        lean.head_object(Bucket="b", Key="gone")
    assert info.value.response["Error"]["Code"] == "404"

    # The server closes a kept-alive connection: sent again at once, no backoff.
    Recorder.seen[:] = []
    sleeps[:] = []
    Recorder.script = [(200, {"ETag": '"1"'}, b""), "close", (200, {"ETag": '"2"'}, b"")]
    lean.put_object(Bucket="b", Key="k", Body=b"one")
    assert lean.put_object(Bucket="b", Key="k", Body=io.BytesIO(b"two"), ContentLength=3)["ETag"] == '"2"'
    assert [s[3] for s in Recorder.seen] == [b"one", b"two", b"two"] and sleeps == []


def test_unreachable_endpoint_is_a_connection_error_after_the_attempts():
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    sleeps = []
    lean = s3_lean.LeanS3("http://127.0.0.1:%d" % port, AWS_KEY, AWS_SECRET, "ewr1", max_attempts=3,
                          sleep=sleeps.append)
    with pytest.raises(ConnectionError, match="cannot reach the S3 endpoint"):
        lean.head_bucket(Bucket="b")
    assert len(sleeps) == 2


def test_list_decodes_url_encoded_keys_as_botocore_does(recorder):
    page = (b'<?xml version="1.0"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
            b"<Name>b</Name><Prefix>a%20b/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>"
            b"<EncodingType>url</EncodingType><IsTruncated>false</IsTruncated>"
            b"<Contents><Key>a%20b/c%2Bd+e.png</Key><LastModified>2026-12-07T10:00:00.000Z</LastModified>"
            b"<ETag>&quot;x&quot;</ETag><Size>12</Size><StorageClass>STANDARD</StorageClass></Contents>"
            b"</ListBucketResult>")
    Recorder.script = [(200, {}, page)]
    result = lean_for(recorder).list_objects_v2(Bucket="b", Prefix="a b/", MaxKeys=1000)
    assert result["Prefix"] == "a b/"
    assert [(c["Key"], c["Size"]) for c in result["Contents"]] == [("a b/c+d e.png", 12)]
    assert Recorder.seen[0][1] == "/b?encoding-type=url&list-type=2&max-keys=1000&prefix=a%20b%2F"


def test_lean_client_serves_four_operations_and_builds_boto3_only_for_the_others(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "")
    client = s3_client("http://127.0.0.1:9", access_key="ak", secret_key="sk", lean=True)
    assert isinstance(client, LeanClient)
    assert client.put_object == client.lean.put_object and client.list_objects_v2 == client.lean.list_objects_v2
    assert not client.boto_loaded
    assert callable(client.copy_object) and client.boto_loaded
    # addressing_style auto, or no keys: a plain boto3 client.
    assert not isinstance(s3_client("http://127.0.0.1:9", access_key="ak", secret_key="sk",
                                    addressing_style="auto", lean=True), LeanClient)


def test_a_copy_run_on_the_lean_path_never_imports_boto3(recorder):
    """The engine with a LeanClient copies, heads and lists through s3_lean only: boto3 stays unimported
    (that import and the client cost ~0.3 s of an incremental pass)."""
    code = r"""
import io, sys
sys.path[:0] = [%r, %r]
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.engine import CopyEngine
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import FilesystemSource
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import MediaObject, RowObjects
import tempfile, os
root = tempfile.mkdtemp()
os.makedirs(os.path.join(root, "cache/a"))
open(os.path.join(root, "cache/a/x.png"), "wb").write(b"12345")
client = s3_client("http://127.0.0.1:%d", access_key="ak", secret_key="sk", lean=True)
client.head_bucket(Bucket="b")
engine = CopyEngine(client, "b", FilesystemSource(root), concurrency=2)
row = RowObjects("media_attachments.file", 1, [MediaObject("media_attachments.file", "cache/a/x.png", "image/png", None, 1)])
result = engine.run(iter([row]), rows_total=1)
assert result["totals"]["copied"] == 1, result
print(sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "s3transfer", "urllib3")))
""" % (os.path.join(REPO, ".cache", "collections"), REPO, recorder.server_address[1])
    listing = (b'<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name>'
               b"<IsTruncated>false</IsTruncated><EncodingType>url</EncodingType></ListBucketResult>")
    Recorder.script = [(200, {}, b""), (200, {}, listing), (200, {"ETag": '"e"'}, b"")]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert [(s[0], s[1].split("?")[0]) for s in Recorder.seen] == [("HEAD", "/b"), ("GET", "/b"),
                                                                     ("PUT", "/b/cache/a/x.png")]
    assert Recorder.seen[2][3] == b"12345"


class EarlyRefuser(object):
    """A loopback S3 stand-in that answers 403 AccessDenied as soon as it has a request's headers,
    without reading its body, then closes (AWS S3 and proxies do so; the unread body makes the kernel
    reset the connection). With ``continue_ok`` it answers 100 Continue to ``Expect: 100-continue``
    instead, reads the body and answers 200; ``silent`` ignores the Expect header (an older server)."""

    DENIED = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"

    def __init__(self, continue_ok=False, silent=False):
        import socket

        self.continue_ok = continue_ok
        self.silent = silent
        self.requests = []  # (headers dict, body bytes received before the answer)
        self.sock = socket.socket()
        # A small receive buffer: a body that does not fit is still being sent when the answer comes.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with conn:
                self.handle(conn)

    def handle(self, conn):
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
        head, rest = buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        self.requests.append((headers, rest))
        if self.continue_ok:
            length = int(headers["Content-Length"])
            if headers.get("Expect") == "100-continue" and not self.silent:
                conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            while len(rest) < length:
                data = conn.recv(65536)
                if not data:
                    return
                rest += data
            self.requests[-1] = (headers, rest)
            conn.sendall(b'HTTP/1.1 200 OK\r\nETag: "ok"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
            return
        conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(self.DENIED), self.DENIED))

    def close(self):
        self.sock.close()


@pytest.fixture
def refuser():
    made = []

    def factory(**kw):
        server = EarlyRefuser(**kw)
        made.append(server)
        return server

    yield factory
    for server in made:
        server.close()


def lean_on(server, streamed=False, **kw):
    kw.setdefault("sleep", lambda s: None)
    lean = s3_lean.LeanS3("http://127.0.0.1:%d" % server.port, AWS_KEY, AWS_SECRET, "ewr1", **kw)
    if streamed:
        lean.unsigned_payload = True  # the HTTPS path (UNSIGNED-PAYLOAD, body streamed), on loopback HTTP
    return lean


SIZES = [(40 * 1024, False), (900 * 1024, False), (3 * 1024 * 1024, False), (3 * 1024 * 1024 + 5, True)]


@pytest.mark.parametrize("size,streamed", SIZES, ids=["40KiB", "900KiB", "3MiB-one-body", "3MiB-streamed"])
def test_an_early_refusal_is_access_denied_after_one_request(refuser, size, streamed):
    """Issue 20, finding 7: the server answers 403 before it reads the body, then closes. The lean path
    reports botocore's ClientError AccessDenied after one request (no retry: AccessDenied is not
    retryable), not "cannot reach the S3 endpoint" after five; a body sent apart from the headers waits
    for 100 Continue (Expect: 100-continue, as botocore sends it) and is never sent here."""
    from botocore.exceptions import ClientError

    server = refuser()
    lean = lean_on(server, streamed=streamed)
    data = os.urandom(size)
    with pytest.raises(ClientError) as info:
        lean.put_object(Bucket="b", Key="k", Body=io.BytesIO(data), ContentLength=size)
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "access denied" in describe_error(info.value)
    assert len(server.requests) == 1
    headers, received = server.requests[0]
    if size > s3_lean.SMALL_BODY:
        assert headers.get("Expect") == "100-continue" and received == b""
    else:
        assert "Expect" not in headers  # one write, no round trip: the early answer is read after the send
    # The next request goes out on a new connection and gets its own answer.
    with pytest.raises(ClientError):
        lean.put_object(Bucket="b", Key="k2", Body=io.BytesIO(data), ContentLength=size)
    assert len(server.requests) == 2


@pytest.mark.parametrize("silent", [False, True], ids=["100-continue", "server-ignores-expect"])
def test_expect_continue_sends_the_body_after_100_or_after_the_wait(refuser, silent):
    server = refuser(continue_ok=True, silent=silent)
    lean = lean_on(server, streamed=True, expect_wait=0.2 if silent else 30)
    data = os.urandom(2 * s3_lean.SMALL_BODY + 3)
    import time

    started = time.monotonic()
    assert lean.put_object(Bucket="b", Key="k", Body=io.BytesIO(data), ContentLength=len(data))["ETag"] == '"ok"'
    assert time.monotonic() - started < 10  # with 100 Continue, no wait for expect_wait (30 s)
    headers, received = server.requests[0]
    assert headers["Expect"] == "100-continue" and received == data and len(server.requests) == 1
    assert "expect" not in headers["Authorization"].split("SignedHeaders=")[1].split(",")[0].split(";")


def test_the_engine_counts_an_early_refusal_failed_with_access_denied(refuser, tmp_path):
    from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.engine import CopyEngine
    from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import FilesystemSource
    from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import (
        MediaObject,
        RowObjects,
    )

    server = refuser()
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "big.mp4").write_bytes(os.urandom(3 * s3_lean.SMALL_BODY))
    client = LeanClient(lean_on(server, streamed=True), lambda: None)
    engine = CopyEngine(client, "b", FilesystemSource(str(tmp_path)), concurrency=1, skip_existing=False,
                        sleep=lambda s: None)
    row = RowObjects("media_attachments.file", 1, [MediaObject("media_attachments.file", "cache/big.mp4", "video/mp4",
                                                               None, 1)])
    result = engine.run(iter([row]), rows_total=1)
    assert result["totals"]["failed"] == 1
    reason = result["failed_sample"][0]["reason"]
    assert "AccessDenied" in reason and "cannot reach" not in reason, reason
    assert len(server.requests) == 1


class BrokenSource(io.RawIOBase):
    def __init__(self, error):
        super(BrokenSource, self).__init__()
        self.error = error

    def readable(self):
        return True

    def readinto(self, buffer):
        raise self.error


@pytest.mark.parametrize("size,streamed", [(1000, False), (3 * 1024 * 1024, True)], ids=["small", "streamed"])
def test_a_source_read_error_is_the_sources_oserror_not_retried(refuser, size, streamed):
    """Issue 20, finding 7: a body whose read fails (EIO...) raises that OSError, whatever the size
    (below 1 MiB the private _BodyError escaped), and is not retried as a network error."""
    import errno

    server = refuser(continue_ok=True)
    lean = lean_on(server, streamed=streamed)
    error = OSError(errno.EIO, "Input/output error")
    with pytest.raises(OSError) as info:
        lean.put_object(Bucket="b", Key="k", Body=BrokenSource(error), ContentLength=size)
    assert info.value is error
    assert len(server.requests) == (1 if streamed else 0)
    # A read error that is no OSError (a closed file...) comes out as an OSError too.
    closed = io.BytesIO(b"x" * size)
    closed.close()
    with pytest.raises(OSError, match="cannot read the source: ValueError"):
        lean.put_object(Bucket="b", Key="k", Body=closed, ContentLength=size)
