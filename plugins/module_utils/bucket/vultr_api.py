# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Vultr API v2 calls the collection needs: Object Storage clusters, tiers and subscriptions.

Shapes (https://www.vultr.com/api/#tag/s3, the vultr.cloud collection and govultr):

* ``GET  /object-storage/clusters`` -> ``{"clusters": [{id, region, name, hostname, deploy}], "meta": ...}``
* ``GET  /object-storage/clusters/{id}/tiers`` -> ``{"tiers": [{id, sales_name, slug, is_default, locations, ...}]}``
* ``GET  /object-storage`` -> ``{"object_storages": [...], "meta": {"total", "links": {"next", "prev"}}}``
  (lists are paginated: ``per_page`` and ``cursor`` query parameters, ``meta.links.next`` is the
  cursor of the next page, empty on the last one)
* ``POST /object-storage`` ``{cluster_id, tier_id, label}`` -> ``{"object_storage": {id, status, ...}}``
* ``GET  /object-storage/{id}`` -> ``{"object_storage": {id, status, s3_hostname, s3_access_key, ...,
  "tier": {"OBJSTORETIERID": N, sales_name, slug, ...}}}`` (the tier is an object, its id is
  ``OBJSTORETIERID``; govultr's ObjectStorageTier and the API reference)
* ``DELETE /object-storage/{id}`` -> 204
* errors: ``{"error": "...", "status": N}``; 401 for a bad key, 429 when rate limited.

A create (POST) is never retried: a 5xx or a time-out may hide a subscription that was created
(and is billed). After such an ambiguous failure the subscription is looked up by label and
cluster; it is used when found, else the module fails and says so.

The HTTP layer is ``ansible.module_utils.urls.open_url`` (no extra dependency on the target); the
rest is plain Python, unit-testable with any ``opener``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

import json
import time

try:
    from urllib.error import HTTPError, URLError
    from urllib.parse import urlencode
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urllib import urlencode

    from urllib2 import HTTPError, URLError

DEFAULT_API_URL = "https://api.vultr.com/v2"
USER_AGENT = "fediverse.object_storage (Ansible)"
RETRY_STATUSES = (429, 500, 502, 503, 504)
# Only these are retried: a POST that failed with a 5xx may still have created something.
RETRY_METHODS = ("GET", "HEAD", "DELETE")


class VultrAPIError(Exception):
    def __init__(self, message, status=None, ambiguous=False):
        super(VultrAPIError, self).__init__(message)
        self.status = status
        # True when the request may have taken effect (5xx, time-out, connection lost).
        self.ambiguous = ambiguous


def _default_opener(url, method, data, headers, timeout, validate_certs):
    from ansible.module_utils.urls import open_url

    response = open_url(url, method=method, data=data, headers=headers, timeout=timeout,
                        validate_certs=validate_certs, follow_redirects="safe")
    return response.getcode(), response.read()


class VultrAPI(object):
    """A small client for the Vultr API v2 (bearer token)."""

    def __init__(self, api_key, api_url=DEFAULT_API_URL, validate_certs=True, timeout=30, retries=5,
                 per_page=100, opener=None, sleep=time.sleep):
        if not api_key:
            raise VultrAPIError("a Vultr API key is required (api_key, or the VULTR_API_KEY environment variable)")
        self.api_key = api_key
        self.api_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.validate_certs = validate_certs
        self.timeout = timeout
        self.retries = max(1, int(retries))
        self.per_page = per_page
        self.opener = opener or _default_opener
        self.sleep = sleep

    def request(self, method, path, data=None, query=None):
        url = self.api_url + path
        if query:
            url += "?" + urlencode(sorted((k, v) for k, v in query.items() if v not in (None, "")))
        headers = {
            "Authorization": "Bearer %s" % self.api_key,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        body = None
        if data is not None:
            body = json.dumps(data)
            headers["Content-Type"] = "application/json"
        for attempt in range(self.retries):
            try:
                status, raw = self.opener(url, method, body, headers, self.timeout, self.validate_certs)
            except HTTPError as exc:
                status = exc.code
                try:
                    raw = exc.read()
                except Exception:  # pragma: no cover - a body that cannot be read
                    raw = b""
            except URLError as exc:
                raise VultrAPIError("cannot reach the Vultr API at %s: %s" % (self.api_url, getattr(exc, "reason", exc)),
                                    ambiguous=method not in RETRY_METHODS) from None
            except OSError as exc:  # a time-out or a connection lost mid-request
                raise VultrAPIError("cannot reach the Vultr API at %s: %s" % (self.api_url, exc),
                                    ambiguous=method not in RETRY_METHODS) from None
            if status in RETRY_STATUSES and attempt + 1 < self.retries and method in RETRY_METHODS:
                self.sleep(min(2 ** attempt, 10))
                continue
            break
        return self._decode(method, path, status, raw)

    def _decode(self, method, path, status, raw):
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        doc = {}
        if raw:
            try:
                doc = json.loads(raw)
            except ValueError:
                doc = {"error": raw.strip()[:200]}
        if 200 <= status < 300:
            return doc
        detail = doc.get("error") if isinstance(doc, dict) else None
        detail = detail or "HTTP %s" % status
        if status == 401:
            raise VultrAPIError("the Vultr API rejected the API key (401 Unauthorized: %s): check api_key or "
                                "VULTR_API_KEY, and that the key's IP access control allows this host" % detail, status)
        if status == 403:
            raise VultrAPIError("the Vultr API key may not do this (403 Forbidden: %s)" % detail, status)
        if status == 429:
            raise VultrAPIError("the Vultr API is rate limiting us (429): %s" % detail, status)
        raise VultrAPIError("Vultr API %s %s failed (HTTP %s): %s" % (method, path, status, detail), status,
                            ambiguous=status >= 500)

    def list(self, path, key):
        """Every item of a paginated list, following ``meta.links.next``."""
        items = []
        cursor = None
        seen = set()
        while True:
            doc = self.request("GET", path, query={"per_page": self.per_page, "cursor": cursor})
            items.extend(doc.get(key) or [])
            cursor = ((doc.get("meta") or {}).get("links") or {}).get("next")
            if not cursor or cursor in seen:
                return items
            seen.add(cursor)

    # --- the Object Storage calls -------------------------------------------------------------
    def clusters(self):
        return self.list("/object-storage/clusters", "clusters")

    def cluster_tiers(self, cluster_id):
        return self.request("GET", "/object-storage/clusters/%s/tiers" % cluster_id).get("tiers") or []

    def subscriptions(self):
        return self.list("/object-storage", "object_storages")

    def get(self, subscription_id):
        return self.request("GET", "/object-storage/%s" % subscription_id).get("object_storage") or {}

    def create(self, cluster_id, tier_id, label):
        """POST once (never retried); the API requires ``tier_id``."""
        if tier_id is None:
            raise VultrAPIError("no tier to create Object Storage %s with (the API requires tier_id)" % label)
        data = {"cluster_id": cluster_id, "tier_id": tier_id, "label": label}
        return self.request("POST", "/object-storage", data=data).get("object_storage") or {}

    def delete(self, subscription_id):
        self.request("DELETE", "/object-storage/%s" % subscription_id)


# --- plain functions over the API's data ----------------------------------------------------------

def _cluster_desc(c):
    return "%s (id %s, region %s%s)" % (c.get("hostname"), c.get("id"), c.get("region"),
                                        "" if c.get("deploy", "yes") == "yes" else ", closed to new deployments")


def find_cluster(clusters, cluster=None, region=None):
    """The cluster named by ``cluster`` (hostname, short name such as ewr1, or id) or ``region`` (ewr)."""
    if cluster:
        wanted = str(cluster).strip().lower()
        if "://" in wanted:  # an endpoint URL such as https://ewr1.vultrobjects.com/
            wanted = wanted.split("://", 1)[1]
        wanted = wanted.split("/", 1)[0]
        for c in clusters:
            hostname = str(c.get("hostname", "")).lower()
            if wanted in (hostname, hostname.split(".", 1)[0], str(c.get("id"))):
                return c
        raise VultrAPIError("no Object Storage cluster %r; the clusters are: %s"
                            % (cluster, "; ".join(_cluster_desc(c) for c in clusters) or "none"))
    if region:
        wanted = str(region).strip().lower()
        matches = [c for c in clusters if str(c.get("region", "")).lower() == wanted]
        open_ones = [c for c in matches if c.get("deploy", "yes") == "yes"]
        if len(open_ones) == 1:
            return open_ones[0]
        if not matches:
            raise VultrAPIError("no Object Storage cluster in region %r; the clusters are: %s"
                                % (region, "; ".join(_cluster_desc(c) for c in clusters) or "none"))
        if not open_ones:
            raise VultrAPIError("the Object Storage clusters of region %r accept no new deployments: %s"
                                % (region, "; ".join(_cluster_desc(c) for c in matches)))
        raise VultrAPIError("region %r has several clusters, choose one with cluster: %s"
                            % (region, "; ".join(_cluster_desc(c) for c in open_ones)))
    raise VultrAPIError("give either cluster (e.g. ewr1.vultrobjects.com) or region (e.g. ewr)")


def _is_default(tier):
    value = tier.get("is_default")
    return value is True or str(value).lower() in ("yes", "true", "1")


def pick_tier(tiers, tier=None):
    """The tier named ``tier`` (sales name, slug or id, case-insensitive), else the default one."""
    if not tiers:
        return None
    names = "; ".join("%s (slug %s, id %s%s)" % (t.get("sales_name"), t.get("slug"), t.get("id"),
                                                 ", default" if _is_default(t) else "") for t in tiers)
    if tier:
        wanted = str(tier).strip().lower()
        for t in tiers:
            if wanted in (str(t.get("sales_name", "")).lower(), str(t.get("slug", "")).lower(), str(t.get("id"))):
                return t
        raise VultrAPIError("no tier %r on this cluster; the tiers are: %s" % (tier, names))
    defaults = [t for t in tiers if _is_default(t)]
    if len(defaults) == 1:
        return defaults[0]
    raise VultrAPIError("the cluster has no single default tier, choose one with tier: %s" % names)


def find_subscription(subscriptions, label, cluster_id):
    """The one subscription with this label on this cluster (None if there is none)."""
    found = [s for s in subscriptions
             if s.get("label") == label and str(s.get("cluster_id")) == str(cluster_id)]
    if len(found) > 1:
        raise VultrAPIError("%d Object Storage subscriptions are labelled %r on cluster %s (ids %s): labels must be "
                            "unique for this module to find its subscription"
                            % (len(found), label, cluster_id, ", ".join(str(s.get("id")) for s in found)))
    return found[0] if found else None


def wait_active(api, subscription, timeout=600, interval=5, clock=time.time, sleep=time.sleep):
    """Poll until the subscription's status is ``active``; return its last state."""
    deadline = clock() + timeout
    current = subscription
    while current.get("status") != "active":
        if clock() >= deadline:
            raise VultrAPIError("Object Storage %s (%s) is still %r after %s seconds (wait_timeout)"
                                % (current.get("label"), current.get("id"), current.get("status"), timeout))
        sleep(interval)
        current = api.get(current["id"])
        if not current:
            raise VultrAPIError("Object Storage %s disappeared while waiting for it" % subscription.get("id"))
    return current


PUBLIC_KEYS = ("id", "label", "status", "region", "cluster_id", "tier_id", "date_created", "s3_hostname", "location")


def tier_id_of(subscription):
    """The tier id of a subscription: ``tier.OBJSTORETIERID`` (the API), else ``tier_id``."""
    tier = (subscription or {}).get("tier")
    if isinstance(tier, dict) and tier.get("OBJSTORETIERID") is not None:
        return tier["OBJSTORETIERID"]
    return (subscription or {}).get("tier_id")


def result_of(subscription):
    sub = dict(subscription or {})
    if tier_id_of(sub) is not None:
        sub["tier_id"] = tier_id_of(sub)
    return dict(
        object_storage=dict((k, sub[k]) for k in PUBLIC_KEYS if k in sub),
        s3_hostname=sub.get("s3_hostname", ""),
        s3_access_key=sub.get("s3_access_key", ""),
        s3_secret_key=sub.get("s3_secret_key", ""),
    )


def handle_present(api, label, cluster=None, region=None, tier=None, wait=True, wait_timeout=600,
                   wait_interval=5, check_mode=False, sleep=time.sleep, clock=time.time):
    """Find or create the subscription ``label`` on the cluster; return (changed, result)."""
    target = find_cluster(api.clusters(), cluster, region)
    existing = find_subscription(api.subscriptions(), label, target["id"])
    warnings = []
    if existing:
        chosen = pick_tier(api.cluster_tiers(target["id"]), tier) if tier else None
        current_tier = tier_id_of(existing)
        if chosen and current_tier is not None and str(current_tier) != str(chosen.get("id")):
            warnings.append("Object Storage %s is on tier id %s, not %s: the module does not change tiers"
                            % (label, current_tier, chosen.get("sales_name")))
        if wait and existing.get("status") != "active" and not check_mode:
            existing = wait_active(api, existing, wait_timeout, wait_interval, clock, sleep)
        elif not existing.get("s3_secret_key") and existing.get("id"):
            existing = api.get(existing["id"]) or existing
        result = result_of(existing)
        result.update(cluster=target, warnings=warnings,
                      diff=dict(before=dict(result["object_storage"]), after=dict(result["object_storage"])))
        return False, result
    chosen = pick_tier(api.cluster_tiers(target["id"]), tier)
    planned = dict(label=label, cluster_id=target["id"], region=target.get("region"),
                   tier_id=chosen.get("id") if chosen else None, s3_hostname=target.get("hostname"))
    if check_mode:
        result = result_of(dict(planned, status="pending"))
        result.update(cluster=target, tier=chosen, warnings=warnings, diff=dict(before={}, after=planned))
        return True, result
    created = create_once(api, target["id"], planned["tier_id"], label, sleep)
    if wait:
        created = wait_active(api, created, wait_timeout, wait_interval, clock, sleep)
    result = result_of(created)
    result.update(cluster=target, tier=chosen, warnings=warnings, diff=dict(before={}, after=result["object_storage"]))
    return True, result


def create_once(api, cluster_id, tier_id, label, sleep=time.sleep, lookups=3):
    """POST the subscription once; after an ambiguous failure, find it by label and cluster."""
    try:
        return api.create(cluster_id, tier_id, label)
    except VultrAPIError as exc:
        if not exc.ambiguous:
            raise
        error = exc
    for attempt in range(lookups):
        try:
            found = find_subscription(api.subscriptions(), label, cluster_id)
        except VultrAPIError:
            found = None
        if found:
            return found
        if attempt + 1 < lookups:
            sleep(min(2 ** attempt, 10))
    raise VultrAPIError("creating Object Storage %s failed without a clear answer (%s) and no subscription with this "
                        "label exists on cluster %s: nothing was created. It was not retried, so that no second paid "
                        "subscription can appear; run the task again." % (label, error, cluster_id), error.status)


def handle_absent(api, label, cluster=None, region=None, check_mode=False):
    target = find_cluster(api.clusters(), cluster, region)
    existing = find_subscription(api.subscriptions(), label, target["id"])
    if not existing:
        return False, dict(result_of(None), cluster=target, diff=dict(before={}, after={}))
    before = result_of(existing)["object_storage"]
    if not check_mode:
        api.delete(existing["id"])
    result = result_of(None)
    result.update(cluster=target, diff=dict(before=before, after={}))
    return True, result
