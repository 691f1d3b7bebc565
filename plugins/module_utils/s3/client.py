# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one S3 client factory of the collection.

Every module builds its boto3 client here, so that the things that bite on Vultr (Ceph RGW)
are handled once:

* ``endpoint`` may be a URL, a bare host name or a Vultr cluster shortcut such as ``ewr1``;
* path-style addressing by default (what Mastodon uses with ``S3_ENDPOINT``), virtual-host on
  request;
* a CA bundle or ``validate_certs: false`` for private endpoints;
* adaptive retries (503 SlowDown, 5xx, connection errors) and a connection pool sized for the
  copy engine's workers;
* ``request_checksum_calculation``/``response_checksum_validation`` = ``when_required``:
  botocore >= 1.36 otherwise sends CRC32 trailers that Ceph RGW rejects over HTTPS with
  ``MissingContentLength``;
* over HTTPS, ``payload_signing_enabled: false``: PutObject/UploadPart bodies are sent as
  ``UNSIGNED-PAYLOAD`` (TLS protects the body), which saves a SHA-256 pass over every byte on the
  client. Over plain HTTP the payload stays signed;
* one proxy for both request paths: boto3 takes ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` from the
  environment, and the lean path (s3/lean.py) makes the same choice (s3_wire.proxy_for); a proxy
  it cannot use (an ``https://`` proxy URL) makes ``lean`` give a plain boto3 client.

Plain Python: importable without Ansible, unit-tested in tests/unit.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import os
import re
import threading

# The lean request path (s3_lean, s3_wire, s3_listing, rate_limit: ~1,100 lines) is imported where a
# client is made, not here: what only resolves endpoints or words errors (the s3_endpoint filter,
# Misskey's settings) does not load it.

# boto3 itself is imported when a boto3 client is first made (~0.3 s with the client): a copy run
# whose requests all take the lean path (s3/lean.py) never pays it. botocore's exceptions are cheap.
try:
    import botocore.exceptions
    from botocore.exceptions import BotoCoreError, ClientError
    if importlib.util.find_spec("boto3") is None:
        raise ImportError("No module named 'boto3'")
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity test
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = exc
    BotoCoreError = ClientError = Exception

# What a caller catches around any S3 call: botocore's own errors and the service's answers.
S3_ERRORS = (BotoCoreError, ClientError)

VULTR_DOMAIN = "vultrobjects.com"
# A Vultr cluster shortcut: three letters and a number, which becomes <name>.vultrobjects.com.
_VULTR_SHORTCUT = re.compile(r"^[a-z]{3}[0-9]+$")
# The Object Storage clusters Vultr documents (docs.vultr.com, "What are the available Vultr Object
# Storage locations"). A shortcut outside this list is refused at once with the list (a typo such as
# ewr9 would otherwise be a host name that never resolves, found after the S3 client's retries); a
# cluster newer than this list is given by its host name (fra1.vultrobjects.com) or URL.
VULTR_CLUSTERS = ("ams1", "ams2", "atl1", "atl2", "blr1", "blr2", "chi3", "del1", "ewr1", "ewr2",
                  "lax1", "lhr1", "nrt1", "sea1", "sgp1", "sgp2", "sjc1", "syd1")
_HOSTNAME = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]+)?(/.*)?$")

ADDRESSING_STYLES = ("path", "virtual", "auto")

# The default of the Mastodon code base and what Vultr documents for its clusters.
DEFAULT_REGION = "us-east-1"

# Error codes whose meaning an admin needs in plain words.
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId": "the access key is not known to the endpoint",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "InvalidToken": "the credentials are not valid",
    "ExpiredToken": "the credentials have expired",
}


class S3ConfigError(ValueError):
    """Bad client settings (endpoint, addressing style...): raised before any request."""


def resolve_endpoint(endpoint):
    """Return the endpoint URL for ``endpoint``.

    >>> resolve_endpoint("ewr1")
    'https://ewr1.vultrobjects.com'
    >>> resolve_endpoint("sgp1.vultrobjects.com")
    'https://sgp1.vultrobjects.com'
    >>> resolve_endpoint("http://127.0.0.1:8000/")
    'http://127.0.0.1:8000'
    """
    if endpoint is None or not str(endpoint).strip():
        raise S3ConfigError("an S3 endpoint is required: a URL, a host name, or a Vultr cluster such as 'ewr1'")
    value = str(endpoint).strip()
    if _VULTR_SHORTCUT.match(value):
        if value not in VULTR_CLUSTERS:
            raise S3ConfigError(
                "%r is not a Vultr Object Storage cluster; the clusters are %s (for another endpoint give its "
                "host name, such as %s.%s, or its URL)" % (value, ", ".join(VULTR_CLUSTERS), value, VULTR_DOMAIN))
        return "https://%s.%s" % (value, VULTR_DOMAIN)
    if "://" in value:
        scheme = value.split("://", 1)[0].lower()
        if scheme not in ("http", "https"):
            raise S3ConfigError("endpoint %r: the scheme must be http or https" % value)
        rest = value.split("://", 1)[1]
        if not rest or not _HOSTNAME.match(rest):
            raise S3ConfigError("endpoint %r is not a valid URL" % value)
        return value.rstrip("/")
    if not _HOSTNAME.match(value):
        raise S3ConfigError("endpoint %r is neither a URL, a host name nor a Vultr cluster name" % value)
    return ("https://" + value).rstrip("/")


def region_for(endpoint, region=None):
    """The signing region: the one given, else the Vultr cluster name, else us-east-1."""
    if region:
        return region
    url = resolve_endpoint(endpoint)
    host = url.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    if host.endswith("." + VULTR_DOMAIN):
        return host.split(".", 1)[0]
    return DEFAULT_REGION


def client_config(addressing_style="path", max_attempts=10, retry_mode="adaptive",
                  max_pool_connections=10, connect_timeout=10, read_timeout=120,
                  checksum_when_required=True, unsigned_payload=False):
    """The botocore Config used by every client of the collection.

    ``unsigned_payload`` sends request bodies as ``UNSIGNED-PAYLOAD``: only for HTTPS endpoints
    (s3_client decides), since botocore would honour it over plain HTTP too.
    """
    if not HAS_BOTO3:
        raise S3ConfigError("boto3 is required: %s" % BOTO3_IMPORT_ERROR)
    from botocore.config import Config

    if addressing_style not in ADDRESSING_STYLES:
        raise S3ConfigError("addressing_style must be one of %s, not %r" % (", ".join(ADDRESSING_STYLES), addressing_style))
    kwargs = dict(
        signature_version="s3v4",
        s3=dict({"addressing_style": addressing_style}, **({"payload_signing_enabled": False} if unsigned_payload else {})),
        retries={"max_attempts": int(max_attempts), "mode": retry_mode},
        max_pool_connections=int(max_pool_connections),
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
    if checksum_when_required:
        kwargs["request_checksum_calculation"] = "when_required"
        kwargs["response_checksum_validation"] = "when_required"
    try:
        return Config(**kwargs)
    except TypeError:
        # botocore < 1.36 knows neither option, and does not send the checksums Ceph rejects.
        kwargs.pop("request_checksum_calculation", None)
        kwargs.pop("response_checksum_validation", None)
        return Config(**kwargs)


def s3_client(endpoint, access_key=None, secret_key=None, region=None, addressing_style="path",
              ca_bundle=None, validate_certs=True, max_attempts=10, retry_mode="adaptive",
              max_pool_connections=10, connect_timeout=10, read_timeout=120,
              checksum_when_required=True, lean=False, pacer=None):
    """Build a boto3 S3 client.

    ``access_key``/``secret_key`` fall back to ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``.
    ``ca_bundle`` wins over ``validate_certs``; ``validate_certs=False`` disables TLS checks.
    ``lean``: a LeanClient (same calls and results): PutObject, HeadObject, HeadBucket and
    ListObjectsV2 go through s3_lean.LeanS3 and boto3 is imported only for anything else; with
    ``addressing_style: auto``, without explicit keys, or when the environment names an ``https://``
    proxy for the endpoint (TLS to the proxy: urllib3's, not the lean path's), a plain boto3 client.
    Both paths take the proxy botocore takes from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY).
    ``pacer``: a rate_limit.RateLimiter every HTTP attempt of the client goes through (``pace_client``);
    botocore's own client-side rate limiter (retry mode ``adaptive``) is then left off (mode ``standard``).
    """
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.wire import proxy_for

    url = resolve_endpoint(endpoint)
    access_key = access_key or os.environ.get("AWS_ACCESS_KEY_ID")
    secret_key = secret_key or os.environ.get("AWS_SECRET_ACCESS_KEY")
    if ca_bundle and not os.path.isfile(ca_bundle):
        raise S3ConfigError("ca_bundle %s does not exist" % ca_bundle)
    try:
        proxy = proxy_for(url)
    except ValueError as exc:
        raise S3ConfigError(str(exc)) from None
    if lean and access_key and secret_key and addressing_style in ("path", "virtual") and (
            proxy is None or proxy.scheme == "http"):
        if not HAS_BOTO3:
            raise S3ConfigError("boto3 is required: %s" % BOTO3_IMPORT_ERROR)
        from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.lean import LeanS3

        fast = LeanS3(url, access_key, secret_key, region_for(endpoint, region), addressing_style=addressing_style,
                      ca_bundle=ca_bundle, validate_certs=validate_certs, timeout=read_timeout, proxy=proxy)
        return pace_client(LeanClient(fast, lambda: s3_client(
            endpoint, access_key=access_key, secret_key=secret_key, region=region, addressing_style=addressing_style,
            ca_bundle=ca_bundle, validate_certs=validate_certs, max_attempts=max_attempts, retry_mode=retry_mode,
            max_pool_connections=max_pool_connections, connect_timeout=connect_timeout, read_timeout=read_timeout,
            checksum_when_required=checksum_when_required, pacer=pacer)), pacer)
    if pacer is not None and retry_mode == "adaptive":
        retry_mode = "standard"
    config = client_config(addressing_style=addressing_style, max_attempts=max_attempts,
                           retry_mode=retry_mode, max_pool_connections=max_pool_connections,
                           connect_timeout=connect_timeout, read_timeout=read_timeout,
                           checksum_when_required=checksum_when_required,
                           unsigned_payload=url.startswith("https://"))
    verify = ca_bundle if ca_bundle else bool(validate_certs)
    import boto3

    session = boto3.session.Session(aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                                    region_name=region_for(endpoint, region))
    return pace_client(session.client("s3", endpoint_url=url, config=config, verify=verify), pacer)


def pace_client(client, pacer):
    """Attach ``pacer`` (a rate_limit.RateLimiter) to ``client``: every HTTP attempt it sends, retries
    included, first waits for its turn (``pacer.before_send``), and every answer is told back
    (``pacer.observe``: a 503 SlowDown slows the pace). A LeanClient's lean path calls the pacer itself
    (s3_lean.LeanS3.pacer); a boto3 client through botocore's ``before-send`` and ``response-received``
    events (one of each per attempt). The pacer is then ``wired``: callers' ``acquire()`` counts nothing
    twice. Returns ``client``."""
    if pacer is None or client is None:
        return client
    lean = getattr(client, "lean", None)
    if isinstance(client, LeanClient):
        lean.pacer = pacer
    else:
        def before_send(**kwargs):
            pacer.before_send()

        def received(response_dict=None, parsed_response=None, **kwargs):
            if response_dict is None:
                return  # no answer (a connection error): neither accepted nor a push-back
            error = (parsed_response or {}).get("Error") or {}
            pacer.observe(response_dict.get("status_code"), error.get("Code"))

        client.meta.events.register("before-send.s3", before_send, unique_id="fediverse-pacer-send")
        client.meta.events.register("response-received.s3", received, unique_id="fediverse-pacer-received")
    pacer.wired = True
    return client


class LeanClient(object):
    """Answers like a boto3 S3 client. ``put_object``, ``head_object``, ``head_bucket`` and
    ``list_objects_v2`` are s3_lean.LeanS3's; any other attribute (operations, ``exceptions``,
    ``meta``...) is the boto3 client's, made on first use by ``make_boto`` (boto3 imported then).
    """

    def __init__(self, lean, make_boto):
        self.lean = lean
        self._make_boto = make_boto
        self._boto = None
        self._boto_lock = threading.Lock()
        for name in lean.operations:
            setattr(self, name, getattr(lean, name))

    @property
    def boto(self):
        """The boto3 client behind the lean path (built once, thread-safe)."""
        from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import use_fast_timestamps

        with self._boto_lock:
            if self._boto is None:
                self._boto = self._make_boto()
                use_fast_timestamps(self._boto)
            return self._boto

    @property
    def boto_loaded(self):
        return self._boto is not None

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.boto, name)


def error_code(exc):
    """The S3 error code of a botocore ClientError ('' for anything else)."""
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def http_status(exc):
    response = getattr(exc, "response", None) or {}
    return response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def is_not_found(exc):
    return error_code(exc) in ("404", "NoSuchKey", "NoSuchBucket", "NotFound", "NoSuchBucketPolicy") or http_status(exc) == 404


def probe_bucket(client, name):
    """Returns when the bucket exists and these keys may use it, else raises the precise ClientError.

    HeadBucket answers 400/403/404 without a body (botocore's code is then just "403"), so such an
    answer is asked again with one ListObjectsV2, whose error carries the real code (NoSuchBucket,
    SignatureDoesNotMatch, InvalidAccessKeyId, AccessDenied, ...).
    """
    try:
        client.head_bucket(Bucket=name)
        return
    except ClientError as exc:
        if http_status(exc) not in (400, 403, 404):
            raise
    client.list_objects_v2(Bucket=name, MaxKeys=0)


def describe_error(exc, endpoint=None, bucket=None):
    """One line an admin can act on, for any error raised by a client of this module."""
    where = " at %s" % endpoint if endpoint else ""
    code = error_code(exc)
    if code in _CREDENTIAL_CODES:
        return "S3 credentials rejected%s: %s (%s). Check access_key/secret_key." % (where, _CREDENTIAL_CODES[code], code)
    if code == "AccessDenied":
        return "access denied%s%s: the keys are valid but may not do this (AccessDenied)" % (
            where, " on bucket %s" % bucket if bucket else "")
    if code == "NoSuchBucket":
        return "bucket %s does not exist%s (NoSuchBucket)" % (bucket or "", where)
    if code == "BucketAlreadyExists":
        return ("bucket name %s is taken by another account%s (BucketAlreadyExists): bucket names are "
                "unique across the whole service, choose another" % (bucket or "", where))
    if code:
        message = getattr(exc, "response", {}).get("Error", {}).get("Message") or ""
        return "S3 error %s%s%s" % (code, where, ": " + message if message else "")
    if HAS_BOTO3:
        if isinstance(exc, botocore.exceptions.SSLError):
            return "TLS error talking to %s: %s (set ca_bundle, or validate_certs: false for a test endpoint)" % (
                endpoint or "the endpoint", exc)
        if isinstance(exc, botocore.exceptions.EndpointConnectionError):
            return "cannot reach the S3 endpoint %s: %s" % (endpoint or "", exc)
        if isinstance(exc, botocore.exceptions.NoCredentialsError):
            return "no S3 credentials: give access_key and secret_key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)"
    return "%s%s: %s" % (type(exc).__name__, where, exc)


# --- Ansible glue (kept tiny: the modules stay thin) -------------------------------------------

def s3_argument_spec():
    """The connection options every S3 module of the collection takes (see doc_fragments/s3.py)."""
    from ansible.module_utils.basic import env_fallback

    return dict(
        endpoint=dict(type="str", required=True),
        region=dict(type="str"),
        access_key=dict(type="str", no_log=True, aliases=["aws_access_key_id"],
                        fallback=(env_fallback, ["AWS_ACCESS_KEY_ID"])),
        secret_key=dict(type="str", no_log=True, aliases=["aws_secret_access_key"],
                        fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY"])),
        addressing_style=dict(type="str", default="path", choices=list(ADDRESSING_STYLES)),
        ca_bundle=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
    )


def client_from_module(module, max_pool_connections=10, prefix="", lean=False, pacer=None):
    """Build the client from a module's params; fail_json with a clear message on bad settings.
    ``lean``, ``pacer``: see s3_client.

    ``prefix`` selects a second set of options (``source_`` for the source of a bucket-to-bucket copy).
    """
    params = module.params
    if not HAS_BOTO3:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(msg=missing_required_lib("boto3"), exception=str(BOTO3_IMPORT_ERROR))
    try:
        return s3_client(
            params[prefix + "endpoint"],
            access_key=params.get(prefix + "access_key"),
            secret_key=params.get(prefix + "secret_key"),
            region=params.get(prefix + "region"),
            addressing_style=params.get(prefix + "addressing_style") or "path",
            ca_bundle=params.get(prefix + "ca_bundle"),
            validate_certs=params.get(prefix + "validate_certs", True),
            max_pool_connections=max_pool_connections,
            lean=lean,
            pacer=pacer,
        )
    except S3ConfigError as exc:
        module.fail_json(msg=str(exc))


def client_and_endpoint(module, max_pool_connections=10, prefix="", **fail_extra):
    """``(client, endpoint URL)`` from a module's params: the endpoint resolved once, before the client
    is made; a bad endpoint fails the module (``fail_extra``: more return values of that failure)."""
    try:
        endpoint_url = resolve_endpoint(module.params[prefix + "endpoint"])
    except S3ConfigError as exc:
        module.fail_json(msg=str(exc), **fail_extra)
    return client_from_module(module, max_pool_connections, prefix), endpoint_url
