"""A stand-in for Misskey's GET /files/:key route (Misskey itself does not run here).

Follows server/FileServerService.ts: the key is looked up in accessKey, thumbnailAccessKey and
webpublicAccessKey; unknown -> 404 (Misskey sends its dummy.png with Cache-Control max-age=86400);
storedInternal -> the file from files/ (the original with the row's type, a variant with its
sniffed type); stored in the bucket and not a link -> 204. (Expired remote links, which Misskey
downloads and proxies, are not needed by the tests.) Other paths: ``pages`` (path -> (headers, body)),
the web client's pages of the browser tests (tests/browser_support.py), else a 200 "misskey".
"""

import http.server
import os
import threading

import psycopg2

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import sniff_image_type


class FilesStandIn:
    def __init__(self, dsn, files_dir):
        self.dsn, self.files_dir = dsn, files_dir
        self.requests = []
        self.pages = {}
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                standin.requests.append(self.path)
                status, headers, body = standin.answer(self.path)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path):
        if path in self.pages:
            headers, body = self.pages[path]
            return 200, headers, body
        if not path.startswith("/files/"):
            return 200, {"Content-Type": "text/html"}, b"misskey"
        key = path[len("/files/"):].split("/", 1)[0].split("?", 1)[0]
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute('SELECT "storedInternal", "isLink", "accessKey", "type" FROM drive_file WHERE "accessKey" = %s'
                            ' OR "thumbnailAccessKey" = %s OR "webpublicAccessKey" = %s', (key, key, key))
                row = cur.fetchone()
        finally:
            conn.close()
        if row is None:
            return 404, {"Content-Type": "image/png", "Cache-Control": "max-age=86400"}, b"dummy.png"
        stored_internal, is_link, access_key, content_type = row
        if not stored_internal:
            return 204, {}, b""
        with open(os.path.join(self.files_dir, key), "rb") as handle:
            body = handle.read()
        if key != access_key:
            content_type = sniff_image_type(body[:16]) or "application/octet-stream"
        return 200, {"Content-Type": content_type}, body
