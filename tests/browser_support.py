"""A real browser on the migrated host (issue 23 item 3): Debian's Chromium, headless, driven through
ChromeDriver with Selenium (requirements/test.txt; the packages `chromium` and `chromium-driver` come from
scripts/bootstrap.sh, nothing is downloaded at run time).

* ``Browser``: ONE Chromium per test session (the ``browser`` fixture of tests/integration/conftest.py).
  Its only way out is a forward proxy in this process (tests/forward_proxy.py) that sends each
  ``CONNECT name:443`` to the nginx of the test now running (``route``): the page and the media keep the
  very origins a visitor sees (https://mastodon.test, https://s3.mastodon.test, no port), so the
  Content-Security-Policy's host sources and CORS's origins are compared as in production. The throwaway
  certificates of the test hosts are self-signed per host, so certificate errors are ignored (the Python
  tests check them); nothing else is relaxed.
* ``PageServer``: the app's pages (what Rails or Misskey's web server answers) with the app's
  Content-Security-Policy header, served through the app's own nginx site.
* ``mastodon_csp`` / ``misskey_csp``: the header each app sends, built as the app builds it.
* ``media_report``: what the page could do with the media: each image displayed (decoded, its size), each
  video played (currentTime moved), each fetch() and canvas getImageData() from the page's origin, and
  the CSP violations the page saw; ``Browser.console`` the console's messages.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path

from tests.forward_proxy import ForwardProxy

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "browser"
# A real H.264 (baseline) mp4 as Mastodon's transcoder writes them: 32x32 red, 0.5 s, 1.5 kB, no audio
# (ffmpeg -f lavfi -i color=c=red:s=32x32:d=0.5:r=10 -c:v libx264 -profile:v baseline -pix_fmt yuv420p
# -movflags +faststart -an).
MP4 = (FIXTURES / "red-32x32-0.5s-h264.mp4").read_bytes()


def png(width=1, height=1, rgba=(255, 0, 0, 255)):
    """A real PNG of one colour (RGBA, 8 bits), decodable by any browser."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    rows = b"".join(b"\x00" + bytes(rgba) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


# --------------------------------------------------------------------------- the apps' CSP headers

def _rails_source(source):
    """A source as Rails' ContentSecurityPolicy writes it (its MAPPINGS for the symbols)."""
    return {"self": "'self'", "none": "'none'", "data": "data:", "blob": "blob:", "https": "https:",
            "unsafe_inline": "'unsafe-inline'", "unsafe_eval": "'unsafe-eval'"}.get(source, source)


def _mastodon_host_to_url(host, use_https=True):
    """ContentSecurityPolicy#host_to_url: scheme://HOST, a path ended with "/" (nil for a blank host)."""
    if not host or not host.strip():
        return None
    scheme, rest = ("https" if use_https else "http"), host.strip()
    name, slash, path = rest.partition("/")
    if slash and path and not path.endswith("/"):
        path += "/"
    return "%s://%s%s" % (scheme, name, (slash + path) if slash else "")


def mastodon_media_hosts(env, web_domain, use_https=True):
    """ContentSecurityPolicy#media_hosts (app/lib/content_security_policy.rb, read at mastodon/mastodon
    09fa4add; the older initializer allowed any https: image): the assets host, the CDN host (S3_ALIAS_HOST,
    else S3_CLOUDFRONT_HOST, AZURE_ALIAS_HOST, S3_HOSTNAME), PAPERCLIP_ROOT_URL, EXTRA_MEDIA_HOSTS."""
    assets = _mastodon_host_to_url(web_domain, use_https)
    cdn = None
    for name in ("S3_ALIAS_HOST", "S3_CLOUDFRONT_HOST", "AZURE_ALIAS_HOST", "S3_HOSTNAME"):
        cdn = _mastodon_host_to_url(env.get(name), use_https)
        if cdn:
            break
    hosts = [assets, cdn]
    root = (env.get("PAPERCLIP_ROOT_URL") or "").strip()
    if root:
        hosts.append(assets.rstrip("/") + "/" + root.strip("/") + "/")
    hosts += [h for h in (env.get("EXTRA_MEDIA_HOSTS") or "").replace(",", " ").split() if h]
    return [h for h in hosts if h]


def mastodon_csp(env, web_domain, use_https=True, media_hosts=None):
    """The Content-Security-Policy header Mastodon sends in production (RAILS_ENV=production), built as
    config/initializers/content_security_policy.rb of the media_hosts generation builds it from
    .env.production (``env``: its values) and LOCAL_DOMAIN/WEB_DOMAIN (``web_domain``). ``media_hosts``
    replaces ContentSecurityPolicy#media_hosts (the negative tests: a policy without the media host). The
    style-src nonce Rails adds per request is left out (no style in the tests' pages)."""
    assets = _mastodon_host_to_url(web_domain, use_https)
    media = mastodon_media_hosts(env, web_domain, use_https) if media_hosts is None else list(media_hosts)
    streaming = env.get("STREAMING_API_BASE_URL") or ("wss://" if use_https else "ws://") + web_domain
    directives = [
        ("base-uri", ["none"]),
        ("default-src", ["none"]),
        ("frame-ancestors", ["none"]),
        ("font-src", ["self", assets]),
        ("img-src", ["self", "data", "blob"] + media),
        ("style-src", ["self", assets]),
        ("media-src", ["self", "data"] + media),
        ("manifest-src", ["self", assets]),
        ("form-action", ["self"]),
        ("child-src", ["self", "blob", assets]),
        ("worker-src", ["self", "blob", assets]),
        ("connect-src", ["self", "data", "blob"] + media + [streaming]),
        ("script-src", ["self", assets, "'wasm-unsafe-eval'"]),
        ("frame-src", ["self", "https"]),
    ]
    return "; ".join("%s %s" % (name, " ".join(_rails_source(s) for s in sources)) for name, sources in directives)


# Misskey's web server (packages/backend/src/server/web/ClientServerService.ts, its onRequest hook) sends
# X-Frame-Options: DENY and, in the 13.x generation that has the hook's CSP, a policy of script-src,
# base-uri and object-src only: no img-src, media-src or connect-src, so media from any host are allowed
# by the page; CORS (fetch, canvas) is what decides. Later versions dropped the CSP (X-Frame-Options only).
MISSKEY_CSP = ("script-src 'self' 'unsafe-eval' https://challenges.cloudflare.com https://hcaptcha.com "
               "https://*.hcaptcha.com https://www.google.com/recaptcha/ https://www.gstatic.com/recaptcha/ "
               "https://www.recaptcha.net/recaptcha/; base-uri 'self'; object-src 'self';")


def misskey_headers(with_csp=True):
    headers = {"X-Frame-Options": "DENY"}
    if with_csp:
        headers["Content-Security-Policy"] = MISSKEY_CSP
    return headers


# --------------------------------------------------------------------------- the app's pages

def page_html(images=(), videos=(), cors_images=()):
    """An app page showing ``images`` and ``videos`` (URLs) as <img>/<video>, and ``cors_images`` as
    <img crossorigin="anonymous"> (what a canvas can read). No script: the checks run from WebDriver, which
    the page's script-src does not restrict; its fetch() and media loads are the page's, under its CSP."""
    def attr(url):
        return url.replace("&", "&amp;").replace('"', "&quot;")
    body = ['<img class="media" src="%s">' % attr(u) for u in images]
    body += ['<video class="media" muted playsinline preload="auto" src="%s"></video>' % attr(u) for u in videos]
    body += ['<img class="cors" crossorigin="anonymous" src="%s">' % attr(u) for u in cors_images]
    return ('<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>app</title>'
            '</head><body>%s</body></html>' % "".join(body)).encode()


class PageServer:
    """The app's web server (Rails/puma, Misskey) for the pages of a test: path -> (headers, body).
    Answers HTML with ``Cache-Control: max-age=0, private, must-revalidate`` as Rails does, so the app
    site's proxy_cache never keeps a page."""

    def __init__(self):
        self.pages = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                headers, body = server.pages.get(self.path.split("?", 1)[0], ({}, None))
                self.send_response(200 if body is not None else 404)
                for name, value in dict({"Content-Type": "text/html; charset=utf-8",
                                         "Cache-Control": "max-age=0, private, must-revalidate"}, **headers).items():
                    self.send_header(name, value)
                body = body if body is not None else b"not found"
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@contextlib.contextmanager
def nginx_edit(nginx, path, old, new):
    """``path`` with ``old`` replaced by ``new`` (which must be there) while the block runs, nginx reloaded;
    then the file byte for byte as it was, nginx reloaded again."""
    before = Path(path).read_bytes()
    text = before.decode()
    assert old in text, (path, old, text[-2000:])
    Path(path).write_text(text.replace(old, new))
    nginx.reload()
    try:
        yield
    finally:
        Path(path).write_bytes(before)
        nginx.reload()


# --------------------------------------------------------------------------- the browser

# Runs in the page (WebDriver's async script: not subject to the page's script-src). Every image displayed or
# not, every video played or not, each fetch() and the canvas read of each CORS image, the CSP violations.
_REPORT_JS = r"""
const done = arguments[arguments.length - 1];
const fetchUrls = arguments[0], timeoutMs = arguments[1];
const settle = (el, ok, bad) => new Promise(resolve => {
  const t = setTimeout(() => resolve({timeout: true}), timeoutMs);
  const fin = r => { clearTimeout(t); resolve(r); };
  ok(el, fin); bad(el, fin);
});
const imgDone = img => settle(img,
  (el, fin) => { if (el.complete && el.naturalWidth) fin({shown: true});
                 else el.addEventListener('load', () => fin({shown: el.naturalWidth > 0})); },
  (el, fin) => { if (el.complete && !el.naturalWidth) fin({shown: false});
                 el.addEventListener('error', () => fin({shown: false})); });
(async () => {
  const out = {images: [], videos: [], fetches: [], canvas: [], violations: window.__fosViolations || []};
  for (const img of document.querySelectorAll('img.media')) {
    const r = await imgDone(img);
    out.images.push({url: img.getAttribute('src'), shown: !!r.shown, width: img.naturalWidth});
  }
  for (const v of document.querySelectorAll('video')) {
    const r = await settle(v,
      (el, fin) => { el.addEventListener('timeupdate', () => { if (el.currentTime > 0) fin({played: true}); });
                     el.play().catch(e => fin({played: false, error: String(e)})); },
      (el, fin) => el.addEventListener('error', () => fin({played: false, error: 'media error ' + (el.error && el.error.code)})));
    out.videos.push({url: v.getAttribute('src'), played: !!r.played, error: r.error || null, width: v.videoWidth});
  }
  for (const url of fetchUrls) {
    try {
      const resp = await fetch(url);
      const body = await resp.arrayBuffer();
      out.fetches.push({url, ok: resp.ok, status: resp.status, bytes: body.byteLength,
                        type: resp.headers.get('content-type')});
    } catch (e) { out.fetches.push({url, ok: false, error: String(e)}); }
  }
  for (const img of document.querySelectorAll('img.cors')) {
    const r = await imgDone(img);
    const entry = {url: img.getAttribute('src'), shown: !!r.shown};
    try {
      const c = document.createElement('canvas'); c.width = img.naturalWidth || 1; c.height = img.naturalHeight || 1;
      const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
      entry.pixel = Array.from(ctx.getImageData(0, 0, 1, 1).data);
    } catch (e) { entry.error = String(e); }
    out.canvas.push(entry);
  }
  out.violations = (window.__fosViolations || []).slice();
  done(out);
})();
"""

# Installed before the page's own content runs (CDP Page.addScriptToEvaluateOnNewDocument, not subject to CSP):
# the page's securitypolicyviolation events, as the console would report them.
_VIOLATIONS_JS = """
window.__fosViolations = [];
document.addEventListener('securitypolicyviolation', e => window.__fosViolations.push(
  {blocked: e.blockedURI, directive: e.effectiveDirective}));
"""


class Browser:
    """One headless Chromium (Debian's) driven by ChromeDriver, its traffic through a forward proxy that
    maps names to the nginx of the current test (``route``)."""

    ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
            "--ignore-certificate-errors")

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.proxy = ForwardProxy(connect_to={}).start()
        self.profile = tempfile.mkdtemp(prefix="fos-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in self.ARGS + ("--user-data-dir=" + self.profile, "--proxy-server=" + self.proxy.url()):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        t0 = time.monotonic()
        self.driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
        self.start_seconds = time.monotonic() - t0
        self.driver.set_script_timeout(60)
        self.driver.execute_cdp_cmd("Network.enable", {})
        self.driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        self.driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _VIOLATIONS_JS})

    def route(self, names, port, host="127.0.0.1"):
        """https://NAME/ (port 443) of each of ``names`` goes to host:port (the test's nginx) from now on."""
        self.proxy.connect_to = {"%s:443" % name: (host, port) for name in names}

    def open(self, url):
        self.console()  # drop what earlier pages logged
        self.driver.get(url)

    def report(self, fetch_urls=(), timeout_ms=15000):
        return self.driver.execute_async_script(_REPORT_JS, list(fetch_urls), timeout_ms)

    def console(self):
        """The console's messages since the last call: [(level, message)]."""
        return [(e["level"], e["message"]) for e in self.driver.get_log("browser")]

    def quit(self):
        try:
            self.driver.quit()
        finally:
            self.proxy.stop()
            shutil.rmtree(self.profile, ignore_errors=True)


def show(report, console):
    """The report and console as one readable block for assertion messages."""
    return json.dumps({"report": report, "console": console}, indent=1)


def blocked_by_csp(console):
    return [m for level, m in console if "Content Security Policy" in m]


def assert_all_displayed(report, console, images=0, videos=0, fetches=0, canvas=None):
    """Every image displayed, every video played, every fetch 200, each canvas read to ``canvas`` (RGBA of its
    first pixel), no CSP violation and no error in the console."""
    what = show(report, console)
    assert len(report["images"]) == images and all(i["shown"] for i in report["images"]), what
    assert len(report["videos"]) == videos and all(v["played"] for v in report["videos"]), what
    assert len(report["fetches"]) == fetches and all(f["ok"] for f in report["fetches"]), what
    if canvas is not None:
        assert report["canvas"] and all(c.get("pixel") == list(canvas) for c in report["canvas"]), what
    assert report["violations"] == [] and not blocked_by_csp(console), what
    assert not [m for level, m in console if level == "SEVERE"], what



# ---------------------------------------------------------- Mastodon (tests/integration/test_migrate.py)

# The media the page shows, by media_attachments row: a remote image without cache/ (schema 0), the small
# style of a remote video's row under cache/ (retired to cache.old: the bucket alone serves it), a local
# video, and the local image of the suspended account (private in the bucket).
MASTODON_ROWS = {"image": (5, "original"), "cached image": (108892712797543300, "small"),
                 "video": (11, "original"), "private image": (12, "original")}
RED = (255, 0, 0, 255)


def mastodon_media_keys(db_params):
    """{name: (key, content type, acl)} of MASTODON_ROWS, from their rows in the database as the copy reads
    them (module_utils/mastodon/layout.py row_objects: the keys Mastodon's URLs are made of)."""
    import psycopg2

    from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import layout

    conn = psycopg2.connect(**db_params)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT m.id, m.file_file_name, m.file_content_type, m.remote_url, m.file_storage_schema_version,"
                        " a.suspended_at IS NOT NULL FROM media_attachments m JOIN accounts a ON a.id = m.account_id"
                        " WHERE m.id = ANY(%s)", ([row_id for row_id, _style in MASTODON_ROWS.values()],))
            rows = {r[0]: r for r in cur.fetchall()}
    finally:
        conn.close()
    keys = {}
    for name, (row_id, style) in MASTODON_ROWS.items():
        rid, file_name, ctype, remote_url, schema, suspended = rows[row_id]
        objects = layout.row_objects(layout.MEDIA_FILES, {"id": rid, "file_name": file_name, "content_type": ctype},
                                     remote=bool(remote_url), storage_schema_version=schema, suspended=suspended).objects
        obj = [o for o in objects if o.key.split("/")[-2] == style][0]
        keys[name] = (obj.key, obj.content_type, obj.acl)
    return keys


def install_real_media(system_root, keys):
    """Before the migration: the files of ``keys`` on disk become real media (a red PNG, the mp4), so what the
    copy puts in the bucket is decodable; returns {name: bytes}."""
    bodies = {}
    for name, (key, ctype, _acl) in keys.items():
        bodies[name] = MP4 if ctype == "video/mp4" else png(2, 2, RED)
        path = os.path.join(system_root, key)
        mode = os.stat(path).st_mode & 0o777
        Path(path).write_bytes(bodies[name])
        os.chmod(path, mode)
    return bodies


PAGES = "/fos-browser/"


@contextlib.contextmanager
def app_pages(host):
    """A PageServer behind the app's own site: the app backend (tests/nginx_proxy_support.py backend_site, puma's
    stand-in) passes PAGES to it while the block runs (its configuration restored byte for byte afterwards)."""
    server = PageServer()
    stub = os.path.join(host.layout["conf_d"], "app-backend-stub.conf")
    try:
        with nginx_edit(host.nginx, stub, "    location / {",
                        "    location %s {\n        proxy_pass http://127.0.0.1:%d;\n    }\n    location / {"
                        % (PAGES, server.port)):
            yield server
    finally:
        server.stop()


def check_mastodon_in_browser(browser, host, mode, keys, env, app_host, proxy_host):
    """After migrate.yml (tests/integration/test_migrate.py, each proxy mode): a page of the app's site with the
    CSP Mastodon sends now (``env``: .env.production's values, S3_ALIAS_HOST) shows the images, plays the
    video, fetch()es an image, nothing blocked; the suspended account's image does not display; in subdomain
    mode the same page under a CSP without the media host is blocked (the console says so)."""
    url = {name: "https://%s/%s" % (env["S3_ALIAS_HOST"], key) for name, (key, _c, _a) in keys.items()}
    public = ["image", "cached image"]
    t0 = time.monotonic()
    browser.route([app_host, proxy_host], host.https_port)
    with app_pages(host) as pages:
        csp = mastodon_csp(env, app_host)
        pages.pages[PAGES + "media"] = ({"Content-Security-Policy": csp},
                                        page_html(images=[url[n] for n in public], videos=[url["video"]]))
        pages.pages[PAGES + "private"] = ({"Content-Security-Policy": csp},
                                          page_html(images=[url["image"], url["private image"]]))
        browser.open("https://%s%smedia" % (app_host, PAGES))
        report = browser.report(fetch_urls=[url["image"]])
        console = browser.console()
        assert_all_displayed(report, console, images=2, videos=1, fetches=1)
        assert all(i["width"] == 2 for i in report["images"]) and report["videos"][0]["width"] == 32, show(report, console)
        assert report["fetches"][0]["type"] == "image/png", show(report, console)

        # The suspended account's image (private in the bucket): not displayed beside a public one, and not for
        # the CSP (the proxy answers 404, which the Python tests check).
        browser.open("https://%s%sprivate" % (app_host, PAGES))
        report = browser.report(fetch_urls=[url["private image"]], timeout_ms=5000)
        console = browser.console()
        assert [i["shown"] for i in report["images"]] == [True, False], show(report, console)
        assert not report["fetches"][0]["ok"] and report["violations"] == [], show(report, console)

        if mode == "subdomain":
            # The same page under a policy without the media host (what an S3_ALIAS_HOST Mastodon does not know
            # gives): blocked, and the console says which directive.
            without = [h for h in mastodon_media_hosts(env, app_host) if proxy_host not in h]
            pages.pages[PAGES + "without-media-host"] = (
                {"Content-Security-Policy": mastodon_csp(env, app_host, media_hosts=without)},
                page_html(images=[url[n] for n in public], videos=[url["video"]]))
            browser.open("https://%s%swithout-media-host" % (app_host, PAGES))
            report = browser.report(fetch_urls=[url["image"]], timeout_ms=5000)
            console = browser.console()
            assert not any(i["shown"] for i in report["images"]) and not report["videos"][0]["played"], show(report, console)
            assert not report["fetches"][0]["ok"], show(report, console)
            # (the fetch's violation event may come after the report: the console has it)
            assert {"img-src", "media-src"} <= {v["directive"] for v in report["violations"]}, show(report, console)
            for directive in ("img-src", "media-src", "connect-src"):
                assert any('directive: "%s ' % directive in m for m in blocked_by_csp(console)), show(report, console)
    print("browser check (%s): %.1f s" % (mode, time.monotonic() - t0))


# ---------------------------------------------------------- Misskey (tests/integration/test_migrate_misskey_move.py)

def misskey_file_urls(dsn, file_id):
    """(url, accessKey) of a drive_file row, as Misskey hands them out."""
    import psycopg2

    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute('SELECT "url", "accessKey" FROM drive_file WHERE "id" = %s', (file_id,))
            return cur.fetchone()
    finally:
        conn.close()


def _files_containing(directories, text):
    found = set()
    for directory in directories:
        for name in sorted(os.listdir(directory)):
            path = os.path.realpath(os.path.join(directory, name))
            if os.path.isfile(path) and text in Path(path).read_text():
                found.add(path)
    return sorted(found)


def check_misskey_in_browser(browser, host, url, old_url, app_host, proxy_host, snippet):
    """After the file move (tests/integration/test_migrate_misskey_move.py): a page of Misskey's web server with
    Misskey's headers shows the moved image from its URL in the DB (``url``) and from its old /files/KEY URL
    (``old_url``: through the /files/ fallback's redirect), a fetch() of it and a canvas getImageData() of it
    from the app's origin succeed (CORS). Then the same page fails without the proxy's CORS header, and with
    the fallback's redirect broken (``snippet``: its file)."""
    t0 = time.monotonic()
    browser.route([app_host, proxy_host], host.nginx.port)
    page = "https://%s/fos-browser/media" % app_host
    host.standin.pages["/fos-browser/media"] = (dict(misskey_headers(), **{"Content-Type": "text/html; charset=utf-8"}),
                                                page_html(images=[url, old_url], cors_images=[url, old_url]))
    browser.open(page)
    report = browser.report(fetch_urls=[url])
    console = browser.console()
    assert_all_displayed(report, console, images=2, fetches=1, canvas=RED)
    assert report["fetches"][0]["type"] == "image/png", show(report, console)

    # Without the proxy's Access-Control-Allow-Origin: the fetch() and the CORS image fail (the console says CORS).
    cors = 'add_header Access-Control-Allow-Origin "*";'
    sites = _files_containing([host.layout["enabled"], host.layout["snippets"], host.layout["conf_d"]], cors)
    assert sites, "no CORS header in the proxy's configuration"
    with contextlib.ExitStack() as stack:
        for path in sites:
            stack.enter_context(nginx_edit(host.nginx, path, cors, "# (CORS header removed by the test)"))
        browser.open(page)
        report = browser.report(fetch_urls=[url], timeout_ms=5000)
        console = browser.console()
        assert [i["shown"] for i in report["images"]] == [True, True], show(report, console)  # plain <img>: no CORS
        assert not report["fetches"][0]["ok"] and all("pixel" not in c for c in report["canvas"]), show(report, console)
        assert any("CORS policy" in m for _level, m in console), show(report, console)

    # The redirect broken (Misskey's 404 for a moved key passed through): the old URL no longer displays.
    with nginx_edit(host.nginx, snippet, "error_page 404 = @fediverse_misskey_files_moved;", "# (redirect removed)"):
        browser.open(page)
        report = browser.report(timeout_ms=5000)
        console = browser.console()
        assert [i["shown"] for i in report["images"]] == [True, False], show(report, console)

    # Put back: displayed again.
    browser.open(page)
    report = browser.report(fetch_urls=[url])
    assert_all_displayed(report, browser.console(), images=2, fetches=1, canvas=RED)
    print("browser check (misskey): %.1f s" % (time.monotonic() - t0))
