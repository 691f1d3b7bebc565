# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a bucket should look like, decided without any request: names, policies, CORS, ACL grants.

Plain Python (no Ansible import, no S3 request), unit-tested in tests/unit/test_bucket_utils.py:
bucket name rules (and a valid suggestion), the policy documents the ``policy`` option asks for,
their semantic comparison and the removal of anonymous Allow statements, the CORS rules, which
grants of an ACL are public, and an object's path-style URL. The S3 steps that apply them are in
plugins/module_utils/bucket/steps.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible sanity wants it

import copy
import json
import re

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    from urllib import quote

POLICY_VERSION = "2012-10-17"
PUBLIC_READ = "public-read"
PRIVATE = "private"
# Objects are public (or private) through their own ACL; the bucket policy grants nothing to
# anonymous users. Mastodon's model: it uploads with S3_PERMISSION=public-read and makes the
# media of a suspended account private by setting its objects' ACL - which a bucket policy Allow
# would override (measured on Ceph RGW: a policy Allow of s3:GetObject to "*" wins over a
# private object ACL).
OBJECT_ACL = "object-acl"
NAMED_POLICIES = (OBJECT_ACL, PUBLIC_READ, PRIVATE)
ALL_USERS_URIS = ("http://acs.amazonaws.com/groups/global/AllUsers",
                  "http://acs.amazonaws.com/groups/global/AuthenticatedUsers")

# The CORS rules Mastodon's documentation asks for: browsers on any origin may GET/HEAD media.
DEFAULT_CORS_RULES = [
    {
        "AllowedMethods": ["GET", "HEAD"],
        "AllowedOrigins": ["*"],
        "AllowedHeaders": ["*"],
        "MaxAgeSeconds": 3000,
    }
]

_IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


class BucketNameError(ValueError):
    """An invalid bucket name; the message says why and suggests a valid one."""


class PolicyError(ValueError):
    """A custom policy that is not a valid bucket policy document (checked before any request)."""


class CorsError(ValueError):
    """A ``cors`` value that is not understood."""


# --- bucket names -------------------------------------------------------------------------------

def bucket_name_problems(name):
    """Every reason why ``name`` is not a usable bucket name (an empty list when it is fine)."""
    problems = []
    if not isinstance(name, str) or not name:
        return ["the name is empty"]
    if len(name) < 3:
        problems.append("it has %d characters, at least 3 are needed" % len(name))
    if len(name) > 63:
        problems.append("it has %d characters, at most 63 are allowed" % len(name))
    if _IPV4.match(name):
        problems.append("it is formatted as an IP address")
    if "." in name:
        problems.append("it contains dots: a dotted name breaks HTTPS in virtual-host style "
                        "(the endpoint's wildcard certificate *.ewr1.vultrobjects.com covers one label only)")
    if any(c.isupper() for c in name):
        problems.append("it contains uppercase letters (only lowercase letters are allowed)")
    if "_" in name:
        problems.append("it contains underscores")
    others = sorted(set(c for c in name if not (c.isalnum() and c.isascii()) and c not in "._-"))
    if others:
        problems.append("it contains characters other than lowercase letters, digits and hyphens: %s"
                        % " ".join(repr(c) for c in others))
    if not (name[0].isascii() and name[0].isalnum()):
        problems.append("it does not start with a letter or a digit")
    if not (name[-1].isascii() and name[-1].isalnum()):
        problems.append("it does not end with a letter or a digit")
    return problems


def suggest_bucket_name(name):
    """A valid name close to ``name``: lowercased, dots/underscores/others turned into hyphens."""
    value = str(name or "").lower()
    value = re.sub(r"[^a-z0-9]+", "-", value)
    value = re.sub(r"-{2,}", "-", value).strip("-")
    value = value[:63].strip("-")
    if len(value) < 3:
        value = (value + "-media" if value else "media").strip("-")
    return value


def validate_bucket_name(name):
    """Raise BucketNameError (why, and a suggestion) unless ``name`` is a valid bucket name."""
    problems = bucket_name_problems(name)
    if problems:
        suggestion = suggest_bucket_name(name)
        raise BucketNameError(
            "invalid bucket name %r: %s. Bucket names are 3-63 characters of lowercase letters, digits and "
            "hyphens, starting and ending with a letter or digit, without dots. Try %r."
            % (name, "; ".join(problems), suggestion))
    return name


# --- policies -----------------------------------------------------------------------------------

def public_read_policy(name):
    """GetObject for everyone on every object of the bucket, and nothing else (not listable)."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "PublicReadGetObject",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": ["arn:aws:s3:::%s/*" % name],
            }
        ],
    }


def _as_list(value):
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def parse_policy(policy):
    """A policy document (dict) from a JSON string or a dict; PolicyError when it is not one."""
    if isinstance(policy, dict):
        doc = copy.deepcopy(policy)
    elif isinstance(policy, str):
        try:
            doc = json.loads(policy)
        except ValueError as exc:
            raise PolicyError("the policy is not valid JSON: %s" % exc) from None
    else:
        raise PolicyError("the policy must be 'object-acl', 'public-read', 'private', a JSON string or a dictionary, "
                          "not %s"
                          % type(policy).__name__)
    if not isinstance(doc, dict):
        raise PolicyError("the policy must be a JSON object with a Statement list")
    return doc


def check_policy(doc, name=None):
    """Validate a bucket policy document locally; return the list of warnings (not errors)."""
    warnings = []
    statements = doc.get("Statement")
    if not statements:
        raise PolicyError("the policy has no Statement")
    unknown = sorted(k for k in doc if k not in ("Version", "Statement", "Id"))
    if unknown:
        raise PolicyError("the policy has unknown top-level keys: %s" % ", ".join(unknown))
    if "Version" in doc and doc["Version"] not in ("2012-10-17", "2008-10-17"):
        raise PolicyError("the policy Version must be 2012-10-17 (or 2008-10-17), not %r" % doc["Version"])
    for index, st in enumerate(_as_list(statements)):
        where = "Statement %d" % (index + 1)
        if not isinstance(st, dict):
            raise PolicyError("%s is not an object" % where)
        if st.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError("%s: Effect must be Allow or Deny, not %r" % (where, st.get("Effect")))
        if "Action" not in st and "NotAction" not in st:
            raise PolicyError("%s has no Action" % where)
        if "Resource" not in st and "NotResource" not in st:
            raise PolicyError("%s has no Resource" % where)
        if "Principal" not in st and "NotPrincipal" not in st:
            raise PolicyError("%s has no Principal (a bucket policy must say who it applies to)" % where)
        for action in _as_list(st.get("Action")) + _as_list(st.get("NotAction")):
            if not isinstance(action, str) or not (action == "*" or action.lower().startswith("s3:")):
                raise PolicyError("%s: action %r is not an S3 action (s3:...)" % (where, action))
        if name:
            for res in _as_list(st.get("Resource")):
                if isinstance(res, str) and res != "*" and not (
                        res == "arn:aws:s3:::%s" % name or res.startswith("arn:aws:s3:::%s/" % name)):
                    warnings.append("%s: resource %s is not in bucket %s" % (where, res, name))
    return warnings


def _norm_principal(value):
    if value == "*":
        return {"AWS": ["*"]}
    if isinstance(value, dict):
        return dict((k, sorted(set(str(v) for v in _as_list(vals)))) for k, vals in value.items())
    return {"AWS": sorted(set(str(v) for v in _as_list(value)))}


def _norm_condition(value):
    out = {}
    for operator, tests in (value or {}).items():
        out[operator] = dict((key, sorted(set(str(v).lower() if isinstance(v, bool) else str(v)
                                              for v in _as_list(vals))))
                             for key, vals in (tests or {}).items())
    return out


def _norm_statement(st):
    out = {"Effect": st.get("Effect")}
    for key in ("Action", "NotAction"):
        if key in st:
            # IAM action names are case-insensitive.
            out[key] = sorted(set(str(a).lower() for a in _as_list(st[key])))
    for key in ("Resource", "NotResource"):
        if key in st:
            out[key] = sorted(set(str(r) for r in _as_list(st[key])))
    for key in ("Principal", "NotPrincipal"):
        if key in st:
            out[key] = _norm_principal(st[key])
    if st.get("Condition"):
        out["Condition"] = _norm_condition(st["Condition"])
    return out


def normalize_policy(policy):
    """The canonical form of a policy, for comparison only.

    Ignored: key order, statement order, duplicate statements, ``Sid``, ``Id``, a string versus a
    one-element list, the case of action names, ``Principal: "*"`` versus ``{"AWS": "*"}``, a
    missing ``Version`` (taken as 2012-10-17). ``None`` (no policy) stays ``None``.
    """
    if policy is None:
        return None
    doc = parse_policy(policy)
    statements = [_norm_statement(st) for st in _as_list(doc.get("Statement")) if isinstance(st, dict)]
    unique = dict((json.dumps(st, sort_keys=True), st) for st in statements)
    return {
        "Version": doc.get("Version") or POLICY_VERSION,
        "Statement": [unique[k] for k in sorted(unique)],
    }


def policies_equal(a, b):
    """True when two policies (dicts, JSON strings, or None for "no policy") grant the same."""
    return normalize_policy(a) == normalize_policy(b)


def _principal_is_anonymous(value):
    if value == "*":
        return True
    if isinstance(value, dict):
        return any("*" in [str(v) for v in _as_list(vals)] for vals in value.values())
    return "*" in [str(v) for v in _as_list(value)]


def is_anonymous_allow(statement):
    """True for a statement that allows something to everyone (``Principal: "*"`` or ``{"AWS": "*"}``)."""
    if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
        return False
    if "NotPrincipal" in statement:
        return True  # everyone but someone: anonymous users included
    return _principal_is_anonymous(statement.get("Principal"))


def strip_anonymous_allows(policy):
    """``(remaining policy or None, removed statements)``: ``policy`` without its anonymous Allows.

    Deny statements and statements for named principals are kept; a policy left without any
    statement becomes None (no policy).
    """
    if policy is None:
        return None, []
    doc = parse_policy(policy)
    kept, removed = [], []
    for st in _as_list(doc.get("Statement")):
        (removed if is_anonymous_allow(st) else kept).append(st)
    if not removed:
        return doc, []
    if not kept:
        return None, removed
    out = dict(doc)
    out["Statement"] = kept
    return out, removed


def actions_text(statements):
    actions = sorted(set(str(a) for st in statements for a in _as_list(st.get("Action") or st.get("NotAction"))))
    return ", ".join(actions) or "actions"


def desired_policy(policy, name):
    """The policy document the ``policy`` option asks for.

    None for ``private`` (no policy); the string ``object-acl`` is returned as is: the policy it
    wants depends on the bucket's current one (handle_policy strips the anonymous Allows).
    """
    if policy is None or policy == OBJECT_ACL:
        return OBJECT_ACL
    if policy == PUBLIC_READ:
        return public_read_policy(name)
    if policy == PRIVATE:
        return None
    doc = parse_policy(policy)
    check_policy(doc, name)
    return doc


# --- CORS ---------------------------------------------------------------------------------------

def desired_cors(cors):
    """``(manage, rules)`` for the ``cors`` option.

    ``default`` (or None/true): the GET/HEAD-from-anywhere rules; ``none``/false: no CORS
    configuration at all; ``keep``: leave whatever the bucket has; a list: these CORSRules.
    """
    if cors is None or cors is True or cors == "default":
        return True, copy.deepcopy(DEFAULT_CORS_RULES)
    if cors is False or cors in ("none", "false", "no", "off", ""):
        return True, None
    if cors == "keep":
        return False, None
    if isinstance(cors, dict) and "CORSRules" in cors:
        cors = cors["CORSRules"]
    if isinstance(cors, dict):
        cors = [cors]
    if isinstance(cors, list) and cors and all(isinstance(r, dict) for r in cors):
        for rule in cors:
            if not rule.get("AllowedMethods") or not rule.get("AllowedOrigins"):
                raise CorsError("every CORS rule needs AllowedMethods and AllowedOrigins: %r" % (rule,))
        return True, copy.deepcopy(cors)
    raise CorsError("cors must be 'default', 'none', 'keep', or a list of CORS rules, not %r" % (cors,))


def normalize_cors(rules):
    if not rules:
        return None
    out = []
    for rule in rules:
        norm = {}
        for key in ("AllowedMethods", "AllowedOrigins", "AllowedHeaders", "ExposeHeaders"):
            values = [str(v) for v in _as_list(rule.get(key))]
            if key == "AllowedMethods":
                values = [v.upper() for v in values]
            if values:
                norm[key] = sorted(set(values))
        if rule.get("MaxAgeSeconds") is not None:
            norm["MaxAgeSeconds"] = int(rule["MaxAgeSeconds"])
        out.append(norm)
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def cors_equal(a, b):
    return normalize_cors(a) == normalize_cors(b)


def cors_text(rules):
    """CORS rules in one line for a diff (None when there are none): each rule as
    ``GET, HEAD from * (headers *, max age 3000 s)``, rules joined by ``; ``."""
    parts = []
    for rule in normalize_cors(rules) or []:
        extras = ["%s %s" % (label, ", ".join(rule[key])) for key, label in
                  (("AllowedHeaders", "headers"), ("ExposeHeaders", "exposed headers")) if rule.get(key)]
        if "MaxAgeSeconds" in rule:
            extras.append("max age %d s" % rule["MaxAgeSeconds"])
        parts.append("%s from %s%s" % (", ".join(rule["AllowedMethods"]), ", ".join(rule["AllowedOrigins"]),
                                       " (%s)" % ", ".join(extras) if extras else ""))
    return "; ".join(parts) or None


# --- ACLs and URLs -------------------------------------------------------------------------------

def public_grants(grants):
    """The permissions the ``Grants`` of an ACL (GetBucketAcl or GetObjectAcl) give to everyone:
    AllUsers or AuthenticatedUsers. The one definition of a public grant, for buckets and objects; a
    grantee with one of these URIs and no ``Type`` counts too (the safe reading)."""
    found = []
    for grant in grants or ():
        grantee = grant.get("Grantee") or {}
        if grantee.get("Type", "Group") == "Group" and grantee.get("URI") in ALL_USERS_URIS:
            found.append(grant.get("Permission"))
    return found


def object_url(endpoint_url, bucket, key):
    """The path-style URL of an object (what an anonymous client fetches)."""
    return "%s/%s/%s" % (endpoint_url.rstrip("/"), bucket, quote(key, safe="/~"))


_MD5_ETAG = re.compile(r"\A[0-9a-f]{32}\Z")


def etag_md5(etag):
    """The MD5 (hex) an ETag stands for, or None when it is not a single-part MD5 (multipart: ``-N``)."""
    if not etag:
        return None
    value = etag.strip().strip('"').lower()
    return value if _MD5_ETAG.match(value) else None


def content_mismatch(size, md5, expected_size, etag):
    """None when ``size`` bytes with MD5 ``md5`` are the object (its ContentLength ``expected_size`` and,
    for a single-part upload, its ETag), else what differs. The one comparison of local bytes with an
    object (rollback's copy back, the Misskey restore and purge)."""
    if expected_size is not None and size != int(expected_size):
        return "%d bytes, the object has %d" % (size, int(expected_size))
    value = (etag or "").strip().strip('"').lower()
    if value and "-" not in value and value != md5:  # a single-part upload's ETag is its MD5
        return "the MD5 of the %d bytes (%s) is not the object's ETag (%s)" % (size, md5, value)
    return None
