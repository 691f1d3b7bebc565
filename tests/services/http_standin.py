"""The lifecycle shared by the HTTP stand-ins of remote APIs (vultr_api_server, awx_api_server): a
ThreadingHTTPServer on 127.0.0.1 and a free port, in a daemon thread of the test process, that hands
every request (any method) to ``self.handle(request_handler)``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ThreadedHTTPStandIn:
    thread_name = "http-standin"
    httpd = None
    thread = None

    def handle(self, req):  # pragma: no cover - every stand-in defines it
        raise NotImplementedError

    def start(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _any(self):
                server.handle(self)

            do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name=self.thread_name, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(5)
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self.httpd.server_address[1]
