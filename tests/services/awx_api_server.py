"""A local stand-in for the parts of the AWX/AAP REST API v2 that extensions/awx/job_template.yml uses.

AWX cannot run here, so this follows the real shapes (awx/awx: ``awx/api/generics.py``,
``awx/api/views/__init__.py``, ``awx/api/serializers.py``, ``awx/api/pagination.py``):

- bearer-token auth, 401 ``{"detail": ...}``; 404 ``{"detail": "Not found."}``;
- list endpoints filter on any field by exact match (``?name=...&kind=cloud``) and paginate as
  ``{"count", "next", "previous", "results"}`` with ``page`` and ``page_size`` (``next`` is a path
  with the query, as AWX returns it);
- ``POST /api/v2/<kind>/`` answers 201 with the object, ``PATCH /api/v2/<kind>/<id>/`` 200 with it;
  field errors are 400 ``{"field": ["message"]}`` (DRF), integers and booleans are coerced as DRF
  does (``"2"`` is stored as ``2``);
- credential types: ``kind`` must be ``cloud`` or ``net``, (name, kind) is unique, and ``inputs``
  cannot change while a credential uses the type (403);
- ``/api/v2/job_templates/<id>/survey_spec/``: GET answers the spec (``{}`` when none), POST validates
  it as ``JobTemplateSurveySpec._validate_spec_data`` does (400 ``{"error": ...}``) and answers 200
  with an empty body, DELETE clears it;
- ``/api/v2/job_templates/<id>/credentials/``: GET lists the attached credentials; POST ``{"id": N}``
  attaches (204), ``{"id": N, "disassociate": true}`` detaches (204); attaching a second credential
  of the same type, or the same one again, is 400 ``{"error": "Cannot assign multiple <type>
  credentials."}`` and a credential of a kind a job cannot use is 400 too
  (``JobTemplateCredentialsList.is_valid_relation``).

    with AWXAPIServer(token="t") as awx:
        awx.add("projects", name="fediverse-object-storage")
        awx.url  # http://127.0.0.1:PORT

Runs in a thread of the test process on 127.0.0.1 and a free port. ``requests`` records every
(method, path, query, json body).
"""

from __future__ import annotations

import copy
import json
import threading
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.services.http_standin import ThreadedHTTPStandIn

KINDS = ("credential_types", "credentials", "projects", "inventories", "job_templates")
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                "integer": int, "float": (float, int)}
JOB_CREDENTIAL_KINDS = ("ssh", "vault", "cloud", "net", "kubernetes")

# Writable fields and their DRF types; anything else in a POST/PATCH body is ignored, as DRF does.
FIELDS = {
    "credential_types": {"name": str, "description": str, "kind": str, "inputs": dict, "injectors": dict},
    "job_templates": {
        "name": str, "description": str, "job_type": str, "inventory": "fk:inventories",
        "project": "fk:projects", "playbook": str, "job_slice_count": int, "forks": int, "verbosity": int,
        "limit": str, "job_tags": str, "skip_tags": str, "extra_vars": str, "timeout": int,
        "survey_enabled": bool, "become_enabled": bool, "diff_mode": bool, "allow_simultaneous": bool,
        "ask_tags_on_launch": bool, "ask_skip_tags_on_launch": bool, "ask_diff_mode_on_launch": bool,
        "ask_verbosity_on_launch": bool, "ask_variables_on_launch": bool, "ask_limit_on_launch": bool,
        "ask_inventory_on_launch": bool, "ask_credential_on_launch": bool, "ask_job_type_on_launch": bool,
    },
}
DEFAULTS = {
    "credential_types": {"description": "", "namespace": None, "managed": False, "inputs": {}, "injectors": {}},
    "job_templates": {"description": "", "job_type": "run", "inventory": None, "project": None, "playbook": "",
                      "job_slice_count": 1, "forks": 0, "verbosity": 0, "limit": "", "job_tags": "",
                      "skip_tags": "", "extra_vars": "", "timeout": 0, "survey_enabled": False,
                      "become_enabled": False, "diff_mode": False, "allow_simultaneous": False,
                      "ask_tags_on_launch": False, "ask_skip_tags_on_launch": False,
                      "ask_diff_mode_on_launch": False, "ask_verbosity_on_launch": False,
                      "ask_variables_on_launch": False, "ask_limit_on_launch": False,
                      "ask_inventory_on_launch": False, "ask_credential_on_launch": False,
                      "ask_job_type_on_launch": False},
}
TYPE_NAMES = {"credential_types": "credential_type", "credentials": "credential", "projects": "project",
              "inventories": "inventory", "job_templates": "job_template"}


class APIError(Exception):
    def __init__(self, status, doc):
        super().__init__(status, doc)
        self.status = status
        self.doc = doc


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _coerce(field, kind, value):
    """DRF's to_internal_value for the few field types used here."""
    if kind is int:
        if isinstance(value, bool):
            raise APIError(400, {field: ["A valid integer is required."]})
        try:
            return int(str(value).strip())
        except ValueError:
            raise APIError(400, {field: ["A valid integer is required."]}) from None
    if kind is bool:
        if value in (True, "true", "True", "TRUE", 1, "1", "on", "yes"):
            return True
        if value in (False, "false", "False", "FALSE", 0, "0", "off", "no"):
            return False
        raise APIError(400, {field: ["Must be a valid boolean."]})
    if kind is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise APIError(400, {field: ["Not a valid string."]})
        return str(value)
    if kind is dict:
        if not isinstance(value, dict):
            raise APIError(400, {field: ["Expected a dictionary of items but got type \"%s\"." % type(value).__name__]})
        return value
    raise AssertionError(kind)


class AWXAPIServer(ThreadedHTTPStandIn):
    thread_name = "awx-api"

    def __init__(self, token="test-awx-token", max_page_size=200):
        self.token = token
        self.max_page_size = max_page_size
        self.objects = {k: {} for k in KINDS}  # kind -> id -> object
        self.surveys = {}  # job template id -> survey spec
        self.attached = {}  # job template id -> [credential ids]
        self.next_id = 1
        self.requests = []  # (method, path, query, body)
        self.lock = threading.Lock()

    # --- seeding and inspection ------------------------------------------------------------------
    def add(self, collection, **fields):
        """Create an object directly (projects, inventories, credentials: the playbook only finds them)."""
        with self.lock:
            obj = dict(DEFAULTS.get(collection, {}), **fields)
            return self._store(collection, obj)

    def _store(self, kind, obj):
        obj_id = self.next_id
        self.next_id += 1
        obj.update(id=obj_id, type=TYPE_NAMES[kind], created=_now(), modified=_now())
        obj["url"] = "/api/v2/%s/%d/" % (kind, obj_id)
        obj["related"] = {}
        if kind == "job_templates":
            for sub in ("survey_spec", "credentials", "launch"):
                obj["related"][sub] = "%s%s/" % (obj["url"], sub)
            self.surveys[obj_id] = {}
            self.attached[obj_id] = []
        self.objects[kind][obj_id] = obj
        return copy.deepcopy(obj)

    def find(self, collection, **match):
        return [copy.deepcopy(o) for o in self.objects[collection].values()
                if all(o.get(k) == v for k, v in match.items())]

    def writes(self):
        """The requests that could change something (every method but GET)."""
        return [(m, p) for m, p, _q, _b in self.requests if m != "GET"]

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # --- HTTP ------------------------------------------------------------------------------------
    @staticmethod
    def _send(req, status, doc=None):
        body = b"" if doc is None else json.dumps(doc).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if body:
            req.wfile.write(body)

    def handle(self, req):
        parts = urlsplit(req.path)
        path, query = parts.path, parse_qs(parts.query)
        length = int(req.headers.get("Content-Length") or 0)
        raw = req.rfile.read(length) if length else b""
        with self.lock:
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            self.requests.append((req.command, path, query, body))
            try:
                if req.headers.get("Authorization", "") != "Bearer %s" % self.token:
                    raise APIError(401, {"detail": "Authentication credentials were not provided."})
                if isinstance(body, str):
                    raise APIError(400, {"detail": "JSON parse error - %s" % body[:40]})
                status, doc = self._route(req.command, path, query, body)
            except APIError as exc:
                status, doc = exc.status, exc.doc
            except Exception as exc:  # noqa: BLE001 - a bug in the fake must be visible, not hang
                status, doc = 500, {"detail": "fake server error: %r" % exc}
            self._send(req, status, doc)

    def _route(self, method, path, query, body):
        if not path.startswith("/api/v2/") or not path.endswith("/"):
            raise APIError(404, {"detail": "Not found."})
        segs = path[len("/api/v2/"):].strip("/").split("/")
        kind = segs[0]
        if kind not in KINDS:
            raise APIError(404, {"detail": "Not found."})
        if len(segs) == 1:
            if method == "GET":
                return 200, self._page(path, query, list(self.objects[kind].values()))
            if method == "POST" and kind in FIELDS:
                return 201, self._create(kind, body or {})
            raise APIError(405, {"detail": 'Method "%s" not allowed.' % method})
        obj = self.objects[kind].get(int(segs[1])) if segs[1].isdigit() else None
        if obj is None:
            raise APIError(404, {"detail": "Not found."})
        if len(segs) == 2:
            if method == "GET":
                return 200, copy.deepcopy(obj)
            if method == "PATCH" and kind in FIELDS:
                return 200, self._update(kind, obj, body or {})
            raise APIError(405, {"detail": 'Method "%s" not allowed.' % method})
        if kind == "job_templates" and len(segs) == 3 and segs[2] == "survey_spec":
            return self._survey(method, obj, body)
        if kind == "job_templates" and len(segs) == 3 and segs[2] == "credentials":
            if method == "GET":
                creds = [self.objects["credentials"][i] for i in self.attached[obj["id"]]]
                return 200, self._page(path, query, creds)
            if method == "POST":
                return self._attach(obj, body)
            raise APIError(405, {"detail": 'Method "%s" not allowed.' % method})
        raise APIError(404, {"detail": "Not found."})

    def _page(self, path, query, items):
        params = {k: v[-1] for k, v in query.items()}
        try:
            page = int(params.pop("page", "1"))
            size = min(int(params.pop("page_size", "25")), self.max_page_size)
        except ValueError:
            raise APIError(404, {"detail": "Invalid page."}) from None
        params.pop("order_by", None)
        matches = [o for o in sorted(items, key=lambda o: o["id"])
                   if all(str(o.get(k, "")).lower() == v.lower() if isinstance(o.get(k), bool) else str(o.get(k)) == v
                          for k, v in params.items())]
        start = (page - 1) * size
        if page < 1 or (start >= len(matches) and page != 1):
            raise APIError(404, {"detail": "Invalid page."})

        def link(n):
            return "%s?%s" % (path, urlencode(dict(params, page=n, page_size=size)))

        return {"count": len(matches), "next": link(page + 1) if start + size < len(matches) else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": copy.deepcopy(matches[start:start + size])}

    # --- objects ---------------------------------------------------------------------------------
    def _clean(self, kind, body, partial):
        if not isinstance(body, dict):
            raise APIError(400, {"detail": "Invalid data. Expected a dictionary, but got %s." % type(body).__name__})
        out = {}
        for field, ftype in FIELDS[kind].items():
            if field not in body:
                continue
            value = body[field]
            if isinstance(ftype, str):  # a foreign key, by id
                target = ftype.split(":", 1)[1]
                if value is None:
                    out[field] = None
                    continue
                pk = _coerce(field, int, value)
                if pk not in self.objects[target]:
                    raise APIError(400, {field: ['Invalid pk "%s" - object does not exist.' % value]})
                out[field] = pk
            else:
                out[field] = _coerce(field, ftype, value)
        if not partial and not out.get("name"):
            raise APIError(400, {"name": ["This field is required."]})
        return out

    def _check(self, kind, obj, this_id=None):
        others = [o for o in self.objects[kind].values() if o["id"] != this_id]
        if kind == "credential_types":
            if obj.get("kind") not in ("cloud", "net"):
                raise APIError(400, {"kind": ["Must be 'cloud' or 'net', not %s" % obj.get("kind")]})
            if any(o["name"] == obj["name"] and o["kind"] == obj["kind"] for o in others):
                raise APIError(400, {"__all__": ["Credential type with this Name and Kind already exists."]})
        if kind == "job_templates":
            if obj.get("job_slice_count", 1) < 1:
                raise APIError(400, {"job_slice_count": ["Ensure this value is greater than or equal to 0."]})
            if any(o["name"] == obj["name"] for o in others):
                raise APIError(400, {"__all__": ["Job Template with this (Organization, Name) combination already exists."]})
            if not obj.get("project") or not obj.get("playbook"):
                raise APIError(400, {"project": ["Job Templates must have a project assigned."]})

    def _create(self, kind, body):
        fields = self._clean(kind, body, partial=False)
        obj = dict(DEFAULTS[kind], **fields)
        self._check(kind, obj)
        return self._store(kind, obj)

    def _update(self, kind, obj, body):
        fields = self._clean(kind, body, partial=True)
        new = dict(obj, **fields)
        self._check(kind, new, obj["id"])
        if kind == "credential_types" and new["inputs"] != obj["inputs"] and \
                any(c.get("credential_type") == obj["id"] for c in self.objects["credentials"].values()):
            raise APIError(403, {"detail": "Modifications to inputs are not allowed for credential types that are in use"})
        new["modified"] = _now()
        obj.clear()
        obj.update(new)
        return copy.deepcopy(obj)

    # --- survey spec -----------------------------------------------------------------------------
    def _survey(self, method, jt, body):
        if method == "GET":
            return 200, copy.deepcopy(self.surveys[jt["id"]])
        if method == "DELETE":
            self.surveys[jt["id"]] = {}
            return 200, None
        if method != "POST":
            raise APIError(405, {"detail": 'Method "%s" not allowed.' % method})
        spec = copy.deepcopy(body)
        error = self._survey_error(spec)
        if error:
            raise APIError(400, {"error": error})
        self.surveys[jt["id"]] = spec
        return 200, None

    @staticmethod
    def _survey_error(new_spec):  # noqa: C901 - mirrors JobTemplateSurveySpec._validate_spec_data
        if not isinstance(new_spec, dict):
            return "Field 'name' is missing from survey spec."
        for field, expect, label in (("name", str, "string"), ("description", str, "string"), ("spec", list, "list of items")):
            if field not in new_spec:
                return "Field '%s' is missing from survey spec." % field
            if not isinstance(new_spec[field], expect):
                return "Expected %s for field '%s', received %s type." % (label, field, type(new_spec[field]).__name__)
        if not new_spec["spec"]:
            return "'spec' doesn't contain any items."
        seen = set()
        for idx, item in enumerate(new_spec["spec"]):
            if not isinstance(item, dict):
                return "Survey question %d is not a json object." % idx
            for name in ("type", "question_name", "variable", "required"):
                if name not in item:
                    return "'%s' missing from survey question %d" % (name, idx)
                if not isinstance(item[name], bool if name == "required" else str):
                    return "'%s' in survey question %d expected to be %s." % (
                        name, idx, "boolean" if name == "required" else "string")
            if item["variable"] in seen:
                return "'variable' '%s' duplicated in survey question %d." % (item["variable"], idx)
            seen.add(item["variable"])
            qtype = item["type"]
            if qtype not in SURVEY_TYPES:
                return "'%s' in survey question %d is not one of '%s' allowed question types." % (
                    qtype, idx, ", ".join(SURVEY_TYPES))
            if item.get("default", "") != "" and not isinstance(item["default"], SURVEY_TYPES[qtype]):
                return "Default value %s in survey question %d expected to be %s." % (
                    item["default"], idx, qtype if qtype in ("integer", "float") else "string")
            for key in ("min", "max"):
                if item.get(key) is not None and not isinstance(item[key], int):
                    return "The %s limit in survey question %d expected to be integer." % (key, idx)
            if qtype in ("multiselect", "multiplechoice"):
                if "choices" not in item:
                    return "Survey question %d of type %s must specify choices." % (idx, qtype)
                if isinstance(item["choices"], str):
                    item["choices"] = "\n".join(c for c in item["choices"].splitlines() if c.strip() != "")
                if "default" in item:
                    if isinstance(item["default"], str):
                        item["default"] = "\n".join(c for c in item["default"].splitlines() if c.strip() != "")
                        defaults = item["default"].splitlines()
                    else:
                        defaults = item["default"]
                    if qtype == "multiplechoice" and len(defaults) > 1:
                        return "Multiple Choice (Single Select) can only have one default value."
                    if any(d not in item["choices"] for d in defaults):
                        return "Default choice must be answered from the choices listed."
        return None

    # --- credentials of a job template -----------------------------------------------------------
    def _attach(self, jt, body):
        if not isinstance(body, dict):
            raise APIError(400, "invalid type for post data")
        sub_id = body.get("id")
        if sub_id is not None and (isinstance(sub_id, bool) or not isinstance(sub_id, int)):
            raise APIError(400, {"msg": '"id" field must be an integer.'})
        if not sub_id:
            raise APIError(400, {"msg": '"id" is required'})  # creating a credential here: not modelled
        cred = self.objects["credentials"].get(sub_id)
        if cred is None:
            raise APIError(400, {"detail": "Not found."})  # get_object_or_400
        attached = self.attached[jt["id"]]
        if body.get("disassociate"):
            if sub_id in attached:
                attached.remove(sub_id)
            return 204, None
        ctype = self.objects["credential_types"].get(cred.get("credential_type"), {})
        if any(self.objects["credentials"][i].get("credential_type") == cred.get("credential_type") for i in attached):
            raise APIError(400, {"error": "Cannot assign multiple %s credentials." % ctype.get("name", "?")})
        if ctype.get("kind") not in JOB_CREDENTIAL_KINDS:
            raise APIError(400, {"error": "Cannot assign a Credential of kind `%s`." % ctype.get("kind")})
        attached.append(sub_id)
        return 204, None
