"""A real forward proxy for the tests (issue 24 item 7): a threaded HTTP proxy on 127.0.0.1 that relays
bytes between its clients and the servers they ask for, and counts what it relayed.

* ``CONNECT host:port`` (how a client reaches an https endpoint through a proxy): the proxy opens a
  TCP connection to host:port, answers ``200 Connection established`` and relays both directions
  untouched (TLS is end to end: the proxy never sees the requests). Each tunnel's target is appended
  to ``tunnels``.
* An absolute-URI request (``PUT http://host:port/bucket/key HTTP/1.1``, how a client reaches an http
  endpoint through a proxy): the proxy connects to host:port, sends the request in origin form
  (``PUT /bucket/key``) without the proxy's own headers and with ``Connection: close``, then relays
  both directions (the body, an interim ``100 Continue``, the answer) until the server closes. Each
  request is appended to ``forwarded`` as ``"METHOD absolute-URI"``.
* With ``credentials`` (user, password), a request without the matching
  ``Proxy-Authorization: Basic`` header is answered ``407`` and counted in ``refused``; the headers
  the proxy was sent are kept in ``auth_seen``.
* With ``connect_to`` ({"name:port": (host, port)}, like curl's --connect-to), a CONNECT to name:port
  goes to host:port instead (the browser tests: https://mastodon.test to the test's nginx).

Usage::

    with ForwardProxy(credentials=("user", "secret")) as proxy:
        os.environ["HTTPS_PROXY"] = proxy.url()       # http://user:secret@127.0.0.1:PORT
        ...
        assert proxy.tunnels == ["127.0.0.1:8443"]
"""

import base64
import select
import socket
import socketserver
import threading
from urllib.parse import quote, urlsplit

_HOP_BY_HOP = ("proxy-authorization", "proxy-connection", "connection", "keep-alive")


def _read_head(sock):
    """(head bytes without the blank line, bytes read past it); (b"", b"") when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b"", b""
        data += chunk
        if len(data) > 1024 * 1024:
            raise ValueError("request head too long")
    head, rest = data.split(b"\r\n\r\n", 1)
    return head, rest


def _relay(client, upstream):
    """Copy bytes both ways until the server closes (or the client closes and the server follows)."""
    sockets = [client, upstream]
    while True:
        readable, _w, _x = select.select(sockets, [], [], 60)
        if not readable:
            return  # idle for a minute: give up the connection
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if sock is upstream:
                if not data:
                    return
                client.sendall(data)
            else:
                if not data:
                    sockets = [upstream]
                    try:
                        upstream.shutdown(socket.SHUT_WR)
                    except OSError:
                        return
                    continue
                upstream.sendall(data)


class ForwardProxy(object):
    def __init__(self, credentials=None, connect_to=None):
        self.credentials = credentials
        self.connect_to = connect_to if connect_to is not None else {}
        self.tunnels = []
        self.forwarded = []
        self.refused = 0
        self.auth_seen = []
        self._lock = threading.Lock()
        self._open = set()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                proxy._handle(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = None

    # -- what a client sets in HTTPS_PROXY / HTTP_PROXY --
    def url(self, user=None, password=None):
        """``http://user:password@127.0.0.1:PORT`` (the proxy's own credentials unless others are given),
        user and password percent-encoded as a URL carries them."""
        if self.credentials is not None and user is None:
            user, password = self.credentials
        userinfo = ""
        if user is not None:
            userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "") + "@"
        return "http://%s127.0.0.1:%d" % (userinfo, self.port)

    def _authorized(self, headers):
        if self.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(("%s:%s" % self.credentials).encode("utf-8")).decode()
        return headers.get("proxy-authorization") == expected

    def _handle(self, client):
        with self._lock:
            self._open.add(client)
        upstream = None
        try:
            head, rest = _read_head(client)
            if not head:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ", 2)
            fields = [line.split(":", 1) for line in lines[1:] if ":" in line]
            headers = dict((name.strip().lower(), value.strip()) for name, value in fields)
            with self._lock:
                self.auth_seen.append(headers.get("proxy-authorization"))
            if not self._authorized(headers):
                with self._lock:
                    self.refused += 1
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                               b"Proxy-Authenticate: Basic realm=\"fos-test\"\r\nContent-Length: 0\r\n"
                               b"Connection: close\r\n\r\n")
                return
            if method == "CONNECT":
                host, port = target.rsplit(":", 1)
                host, port = self.connect_to.get(target, (host.strip("[]"), int(port)))
                upstream = socket.create_connection((host, int(port)), timeout=30)
                with self._lock:
                    self.tunnels.append(target)
                    self._open.add(upstream)
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            else:
                parts = urlsplit(target)
                if parts.scheme != "http" or not parts.hostname:
                    client.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    return
                upstream = socket.create_connection((parts.hostname, parts.port or 80), timeout=30)
                with self._lock:
                    self.forwarded.append("%s %s" % (method, target))
                    self._open.add(upstream)
                origin = (parts.path or "/") + ("?" + parts.query if parts.query else "")
                kept = [(name.strip(), value.strip()) for name, value in fields
                        if name.strip().lower() not in _HOP_BY_HOP]
                out = "%s %s %s\r\n" % (method, origin, version)
                out += "".join("%s: %s\r\n" % pair for pair in kept) + "Connection: close\r\n\r\n"
                upstream.sendall(out.encode("latin-1"))
            if rest:
                upstream.sendall(rest)
            _relay(client, upstream)
        except OSError:
            pass
        finally:
            for sock in (upstream, client):
                if sock is not None:
                    with self._lock:
                        self._open.discard(sock)
                    try:
                        sock.close()
                    except OSError:
                        pass

    # -- lifetime --
    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, name="forward-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:  # kept-alive tunnels of clients that are gone
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
