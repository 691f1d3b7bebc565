"""A local stand-in for the Vultr API v2 Object Storage endpoints (the one remote thing we fake).

It follows the real API's shapes (see plugins/module_utils/bucket/vultr_api.py for the sources):
bearer-token auth (401 ``{"error": ..., "status": 401}``), cursor pagination with ``per_page``,
``cursor`` and ``meta.links.next`` (pages are capped at ``max_per_page``, so a small cap makes
every list span several pages), cluster tiers, a create that answers ``pending`` and becomes
``active`` after ``polls_until_active`` GETs of the subscription, list, get and delete.

    with VultrAPIServer(api_key="k", s3_hostname="127.0.0.1:7480") as api:
        api.url  # http://127.0.0.1:PORT/v2

Runs in a thread of the test process on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

from tests.services.http_standin import ThreadedHTTPStandIn

# Shapes: govultr object_storage.go (ObjectStorageCluster has a name; ObjectStorageTier has
# locations, the clusters it is sold on) and the API reference (a subscription's "tier" object,
# its id in OBJSTORETIERID; POST /object-storage requires cluster_id and tier_id).
DEFAULT_CLUSTERS = [
    {"id": 2, "region": "ewr", "name": "New Jersey", "hostname": "ewr1.vultrobjects.com", "deploy": "yes"},
    {"id": 3, "region": "ams", "name": "Amsterdam", "hostname": "ams1.vultrobjects.com", "deploy": "yes"},
    {"id": 4, "region": "sjc", "name": "Silicon Valley", "hostname": "sjc1.vultrobjects.com", "deploy": "yes"},
    {"id": 5, "region": "sgp", "name": "Singapore", "hostname": "sgp1.vultrobjects.com", "deploy": "yes"},
    {"id": 6, "region": "ewr", "name": "New Jersey (legacy)", "hostname": "nj1.vultrobjects.com", "deploy": "no"},
    {"id": 9, "region": "blr", "name": "Bangalore", "hostname": "blr1.vultrobjects.com", "deploy": "yes"},
    {"id": 10, "region": "del", "name": "Delhi", "hostname": "del1.vultrobjects.com", "deploy": "yes"},
]

DEFAULT_TIERS = [
    {"id": 1, "sales_name": "Legacy", "sales_desc": "Legacy object storage", "slug": "tier_legacy",
     "price": 5, "bw_gb_price": 0.01, "disk_gb_price": 0.02, "ratelimit_ops_secs": 400,
     "ratelimit_ops_bytes": 314572800, "is_default": "no"},
    {"id": 2, "sales_name": "Standard", "sales_desc": "Standard object storage", "slug": "tier_010k_5000m",
     "price": 18, "bw_gb_price": 0.01, "disk_gb_price": 0.018, "ratelimit_ops_secs": 800,
     "ratelimit_ops_bytes": 629145600, "is_default": "yes"},
    {"id": 4, "sales_name": "Premium", "sales_desc": "Premium object storage", "slug": "tier_050k_10000m",
     "price": 36, "bw_gb_price": 0.01, "disk_gb_price": 0.036, "ratelimit_ops_secs": 1000,
     "ratelimit_ops_bytes": 1048576000, "is_default": "no"},
]


def _cursor(offset):
    return base64.b64encode(("next__%d" % offset).encode()).decode()


def _offset(cursor):
    try:
        return int(base64.b64decode(cursor.encode()).decode().split("__", 1)[1])
    except Exception:  # noqa: BLE001 - any garbage cursor is a 400, as the real API answers
        return None


class VultrAPIServer(ThreadedHTTPStandIn):
    thread_name = "vultr-api"

    def __init__(self, api_key="test-api-key", polls_until_active=2, max_per_page=2, clusters=None, tiers=None,
                 s3_hostname=None, s3_access_key=None, s3_secret_key=None, create_errors_after_commit=0):
        self.api_key = api_key
        self.polls_until_active = polls_until_active
        self.max_per_page = max_per_page
        self.clusters = [dict(c) for c in (clusters or DEFAULT_CLUSTERS)]
        self.tiers = [dict(t) for t in (tiers or DEFAULT_TIERS)]
        for tier in self.tiers:
            tier.setdefault("locations", [dict(c) for c in self.clusters if c.get("deploy") == "yes"])
        # The next N creates succeed but answer 500 (a proxy error behind which the subscription
        # exists and is billed): what a client must not "retry".
        self.create_errors_after_commit = create_errors_after_commit
        # What a new subscription answers; by default the cluster's host and random keys.
        self.s3_hostname = s3_hostname
        self.s3_access_key = s3_access_key
        self.s3_secret_key = s3_secret_key
        self.subscriptions = {}  # id -> dict
        self.polls = {}  # id -> GET count
        self.requests = []  # (method, path, query dict, authorized)
        self.lock = threading.Lock()

    @property
    def url(self):
        return "http://127.0.0.1:%d/v2" % self.port

    def count(self, method, path):
        return sum(1 for m, p, _q, _a in self.requests if m == method and p == path)

    # --- HTTP ------------------------------------------------------------------------------------
    def _send(self, req, status, doc=None):
        body = b"" if doc is None else json.dumps(doc).encode()
        req.send_response(status)
        if doc is not None:
            req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if body:
            req.wfile.write(body)

    def _error(self, req, status, message):
        self._send(req, status, {"error": message, "status": status})

    def _page(self, req, items, key, query):
        try:
            per_page = int(query.get("per_page", ["100"])[0])
        except ValueError:
            return self._error(req, 400, "Invalid per_page")
        per_page = max(1, min(per_page, 500, self.max_per_page))
        offset = 0
        if query.get("cursor"):
            offset = _offset(query["cursor"][0])
            if offset is None:
                return self._error(req, 400, "Invalid cursor")
        page = items[offset:offset + per_page]
        nxt = offset + per_page
        links = {"next": _cursor(nxt) if nxt < len(items) else "",
                 "prev": _cursor(max(0, offset - per_page)) if offset else ""}
        self._send(req, 200, {key: page, "meta": {"total": len(items), "links": links}})

    def handle(self, req):
        parts = urlsplit(req.path)
        path, query = parts.path, parse_qs(parts.query)
        authorized = req.headers.get("Authorization", "") == "Bearer %s" % self.api_key
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((req.command, path, query, authorized))
            if not authorized:
                return self._error(req, 401, "Invalid API token.")
            if not path.startswith("/v2/"):
                return self._error(req, 404, "Not found")
            route = path[len("/v2"):].rstrip("/")
            try:
                return self._route(req, route, query, raw)
            except Exception as exc:  # noqa: BLE001 - a bug in the fake must be visible, not hang
                return self._error(req, 500, "fake server error: %r" % exc)

    def _route(self, req, route, query, raw):
        m = req.command
        segs = route.strip("/").split("/")
        if segs[0] != "object-storage":
            return self._error(req, 404, "Not found")
        if route == "/object-storage/clusters" and m == "GET":
            return self._page(req, self.clusters, "clusters", query)
        if len(segs) == 4 and segs[1] == "clusters" and segs[3] == "tiers" and m == "GET":
            if not any(str(c["id"]) == segs[2] for c in self.clusters):
                return self._error(req, 404, "Invalid cluster")
            return self._send(req, 200, {"tiers": self.tiers})
        if route == "/object-storage/tiers" and m == "GET":
            return self._send(req, 200, {"tiers": self.tiers})
        if route == "/object-storage" and m == "GET":
            items = [self._public(s) for s in self.subscriptions.values()]
            return self._page(req, items, "object_storages", query)
        if route == "/object-storage" and m == "POST":
            return self._create(req, raw)
        if len(segs) == 2:
            sub_id = segs[1]
            if sub_id not in self.subscriptions:
                return self._error(req, 404, "Object storage not found.")
            if m == "GET":
                self.polls[sub_id] = self.polls.get(sub_id, 0) + 1
                if self.polls[sub_id] >= self.polls_until_active:
                    self.subscriptions[sub_id]["status"] = "active"
                return self._send(req, 200, {"object_storage": self._public(self.subscriptions[sub_id])})
            if m == "DELETE":
                del self.subscriptions[sub_id]
                return self._send(req, 204)
        return self._error(req, 405 if segs[0] == "object-storage" else 404, "Method not allowed")

    def _create(self, req, raw):
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            return self._error(req, 400, "Invalid JSON")
        cluster = next((c for c in self.clusters if c["id"] == data.get("cluster_id")), None)
        if cluster is None:
            return self._error(req, 400, "Invalid cluster_id")
        if cluster.get("deploy") != "yes":
            return self._error(req, 400, "Cluster is not available for deployment")
        tier_id = data.get("tier_id")
        tier = next((t for t in self.tiers if tier_id is not None and t["id"] == tier_id), None)
        if tier is None:
            return self._error(req, 400, "Invalid tier_id")
        label = data.get("label", "")
        if not isinstance(label, str):
            return self._error(req, 400, "Invalid label")
        sub_id = str(uuid.uuid4())
        sub = {
            "id": sub_id,
            "date_created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "cluster_id": cluster["id"],
            "region": cluster["region"],
            "location": cluster["hostname"].split(".")[0],
            "label": label,
            "status": "pending",
            "s3_hostname": self.s3_hostname or cluster["hostname"],
            "s3_access_key": self.s3_access_key or uuid.uuid4().hex[:20].upper(),
            "s3_secret_key": self.s3_secret_key or uuid.uuid4().hex + uuid.uuid4().hex[:8],
            "tier": dict({k: v for k, v in tier.items() if k not in ("id", "locations")}, OBJSTORETIERID=tier["id"]),
        }
        self.subscriptions[sub_id] = sub
        if self.create_errors_after_commit > 0:
            self.create_errors_after_commit -= 1
            return self._error(req, 500, "Internal server error")
        return self._send(req, 202, {"object_storage": self._public(sub)})

    @staticmethod
    def _public(sub):
        out = dict(sub)
        if out["status"] != "active":
            # Keys are handed out once the subscription is ready.
            out["s3_access_key"] = ""
            out["s3_secret_key"] = ""
        return out
