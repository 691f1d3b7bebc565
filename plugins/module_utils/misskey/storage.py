# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Misskey's post-switch check: write an object exactly as Misskey would, fetch it through baseUrl.

The settings are read back from where Misskey reads them (the ``meta`` row for v11 and later, the
``drive:`` section of ``default.yml`` for v10) and turned into the S3 client Misskey builds
(``S3Service.getS3Client`` / ``misc/s3.ts``): endpoint ``http(s)://objectStorageEndpoint``
(v11+: ``objectStoragePort`` is not used by the client; v10's minio client takes ``port``),
path style from ``objectStorageS3ForcePathStyle``, the stored region. The object gets the headers
Misskey's uploads carry (Content-Type, ``Cache-Control: max-age=31536000, immutable``,
``Content-Disposition: inline``, ACL public-read when ``setPublicRead``), key
``${prefix}/<name>``, URL ``${baseUrl}/${key}``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import http.client
import socket
import ssl
import uuid
from urllib.parse import quote, urlsplit

from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.atomic import read_config
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import MisskeyConfigError, parse_yaml
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    BotoCoreError,
    ClientError,
    describe_error,
    s3_client,
)

CACHE_CONTROL = "max-age=31536000, immutable"
# A 1x1 transparent PNG: a browser-safe type Misskey keeps its extension for.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")
PNG_TYPE = "image/png"


def settings_from_meta(stored):
    """Canonical settings from the meta row's object storage columns (as misskey_db.read_storage gives them)."""
    if not stored.get("useObjectStorage"):
        raise MisskeyConfigError("Misskey's meta row has useObjectStorage = false: the switch is not in effect")
    endpoint = stored.get("objectStorageEndpoint")
    return dict(
        bucket=stored.get("objectStorageBucket"),
        prefix=stored.get("objectStoragePrefix") or "",
        base_url=stored.get("objectStorageBaseUrl"),
        endpoint_url="%s://%s" % ("https" if stored.get("objectStorageUseSSL", True) else "http", endpoint)
        if endpoint else None,
        region=stored.get("objectStorageRegion"),
        # v11 had no column: its client always used path style with an endpoint.
        path_style=bool(stored.get("objectStorageS3ForcePathStyle", True)) if endpoint else False,
        set_public_read=bool(stored.get("objectStorageSetPublicRead", False)),
        access_key=stored.get("objectStorageAccessKey"),
        secret_key=stored.get("objectStorageSecretKey"),
        region_required=True,
    )


def settings_from_drive(drive):
    """Canonical settings from a v10 ``drive:`` mapping (storage minio)."""
    if not isinstance(drive, dict) or drive.get("storage") != "minio":
        raise MisskeyConfigError("default.yml's drive: is not storage 'minio': the switch is not in effect")
    config = drive.get("config") or {}
    host = config.get("endPoint")
    port = config.get("port")
    scheme = "https" if config.get("useSSL", True) else "http"
    return dict(
        bucket=drive.get("bucket"),
        prefix=drive.get("prefix") or "",
        base_url=drive.get("baseUrl"),
        endpoint_url=("%s://%s%s" % (scheme, host, ":%d" % int(port) if port else "")) if host else None,
        region=config.get("region"),
        path_style=bool(config.get("s3ForcePathStyle", True)),
        set_public_read=bool(config.get("setPublicRead", False)),
        access_key=config.get("accessKey"),
        secret_key=config.get("secretKey"),
        region_required=False,
    )


def check_key(settings, name=None):
    name = name or "fediverse-object-storage-check-%s.png" % uuid.uuid4().hex
    prefix = (settings.get("prefix") or "").strip("/")
    return "%s/%s" % (prefix, name) if prefix else name


def object_url(settings, key):
    return "%s/%s" % (settings["base_url"].rstrip("/"), quote(key))


def validate(settings):
    missing = [name for name in ("bucket", "base_url", "endpoint_url", "access_key", "secret_key") if not settings.get(name)]
    if missing:
        raise MisskeyConfigError("Misskey's stored object storage settings lack %s" % ", ".join(missing))
    if settings["region_required"] and not settings.get("region"):
        raise MisskeyConfigError("objectStorageRegion is NULL: Misskey 13.10 and later (aws-sdk v3) fail every upload "
                                 "with \"Region is missing\"; set a region (the migration sets one)")


def fetch(url, connect_to=None, ca_bundle=None, validate_certs=True, timeout=20):
    """GET ``url`` -> (status, content type, body). ``connect_to`` ("host:port") replaces the address
    connected to, keeping the URL's host for Host and TLS (SNI, certificate check)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        context = ssl.create_default_context(cafile=ca_bundle) if ca_bundle else ssl.create_default_context()
        if not validate_certs and not ca_bundle:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(parts.hostname, port, context=context, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(parts.hostname, port, timeout=timeout)
    if connect_to:
        host, _sep, target_port = connect_to.rpartition(":")
        address = (host.strip("[]"), int(target_port))
        conn._create_connection = lambda _address, timeout=None, source_address=None: socket.create_connection(
            address, timeout)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("GET", path, headers={"Host": parts.netloc, "User-Agent": "fediverse.object_storage"})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type") or "", response.read()
    finally:
        conn.close()


def read_drive(path):
    """The ``drive:`` mapping of a v10 ``default.yml``."""
    data = parse_yaml(read_config(path), path)
    return data.get("drive")


def run_check(settings, ca_bundle=None, validate_certs=True, connect_to=None, key_name=None, fetch_ca_bundle=None):
    """Write the check object with Misskey's settings, fetch it through baseUrl, remove it.

    Returns a dict (key, url, status, content_type, ok, message). S3 and network errors become
    ``ok: False`` with the reason; the object is removed in every case.
    """
    validate(settings)
    key = check_key(settings, key_name)
    url = object_url(settings, key)
    result = dict(key=key, url=url, endpoint=settings["endpoint_url"], bucket=settings["bucket"],
                  region=settings.get("region"), path_style=settings["path_style"], status=None, content_type=None,
                  ok=False)
    client = s3_client(settings["endpoint_url"], access_key=settings["access_key"], secret_key=settings["secret_key"],
                       region=settings.get("region") or "us-east-1",
                       addressing_style="path" if settings["path_style"] else "virtual",
                       ca_bundle=ca_bundle, validate_certs=validate_certs, max_attempts=2)
    put = dict(Bucket=settings["bucket"], Key=key, Body=PNG, ContentType=PNG_TYPE, CacheControl=CACHE_CONTROL,
               ContentDisposition="inline; filename=\"%s\"" % key.rsplit("/", 1)[-1])
    if settings["set_public_read"]:
        put["ACL"] = "public-read"
    try:
        client.put_object(**put)
    except (BotoCoreError, ClientError) as exc:
        reason = describe_error(exc, settings["endpoint_url"], settings["bucket"])
        result["message"] = "Misskey's settings cannot upload: " + reason
        return result
    try:
        try:
            status, content_type, body = fetch(url, connect_to=connect_to, ca_bundle=fetch_ca_bundle or ca_bundle,
                                               validate_certs=validate_certs)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result["message"] = "cannot fetch %s: %s" % (url, exc)
            return result
        result.update(status=status, content_type=content_type)
        if status != 200:
            result["message"] = "%s answered %d, not 200: baseUrl does not serve the bucket's objects" % (url, status)
        elif content_type.split(";")[0].strip() != PNG_TYPE:
            result["message"] = "%s answered with Content-Type %r, not %s" % (url, content_type, PNG_TYPE)
        elif body != PNG:
            result["message"] = "%s answered other bytes than the object written" % url
        else:
            result.update(ok=True, message="written with Misskey's settings and fetched through baseUrl")
        return result
    finally:
        try:
            client.delete_object(Bucket=settings["bucket"], Key=key)
        except (BotoCoreError, ClientError):  # pragma: no cover - reported by the next run's leftovers at worst
            result["leftover"] = key
