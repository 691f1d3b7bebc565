# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The steps of the ``media_copy`` module, in the amazon.aws spirit: the module is a thin wrapper.

Plain Python (no Ansible import). Each step takes the module's ``params`` (and the clients or
connections the previous steps made) and raises ``MediaCopyError`` with a message an admin can act
on - and, once the copy ran, its result - which the module turns into ``fail_json``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import os
import stat

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import engine as engine_lib
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import record as record_lib
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db as db_lib
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.selection import DEFAULT_MARGIN
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import (
    RETIRED_CACHE,
    FilesystemSource,
    S3Source,
    same_account,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import (
    TIER_RATES,
    RateLimiter,
    tier_rate,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import anchor_parent
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    VULTR_DOMAIN,
    S3ConfigError,
    describe_error,
    probe_bucket,
    resolve_endpoint,
    s3_argument_spec,
    s3_client,
)


class MediaCopyError(Exception):
    """A step failed: ``msg`` for the admin, ``result`` (the copy's result so far, maybe empty)."""

    def __init__(self, msg, result=None):
        super(MediaCopyError, self).__init__(msg)
        self.msg = msg
        self.result = result or {}


def argument_spec():
    spec = s3_argument_spec()
    spec.update(db_lib.db_argument_spec())
    spec.update(
        source=dict(type="str", default="filesystem", choices=["filesystem", "s3"]),
        system_root=dict(type="path", default="/home/mastodon/live/public/system"),
        source_endpoint=dict(type="str"),
        source_bucket=dict(type="str"),
        source_access_key=dict(type="str", no_log=True),
        source_secret_key=dict(type="str", no_log=True),
        source_key_prefix=dict(type="str", default="", no_log=False),
        bucket=dict(type="str", required=True),
        key_prefix=dict(type="str", default="", no_log=False),
        scope=dict(type="list", elements="str", choices=["cache", "local"], default=["cache"]),
        include_backups=dict(type="bool", default=False),
        acl=dict(type="str", default=engine_lib.DEFAULT_ACL),
        cache_control=dict(type="str", default=engine_lib.DEFAULT_CACHE_CONTROL),
        concurrency=dict(type="int", default=engine_lib.DEFAULT_CONCURRENCY),
        max_requests_per_second=dict(type="float", default=0),
        tier=dict(type="str", default=""),
        multipart_threshold=dict(type="bytes", default="15MB"),
        skip_existing=dict(type="bool", default=True),
        mode=dict(type="str", default="copy", choices=["copy", "verify", "copy_back"]),
        limit=dict(type="int"),
        shard_index=dict(type="int", default=0),
        shard_count=dict(type="int", default=1),
        progress_file=dict(type="path"),
        ignore_failures=dict(type="bool", default=False),
        record_dir=dict(type="path"),
        since_last_run=dict(type="bool", default=False),
        since_last_run_margin=dict(type="int", default=DEFAULT_MARGIN),
    )
    return spec


def check_params(p, check_mode=False):
    """Bad input gets a clear error before anything happens."""
    if p["progress_file"] and not check_mode:
        progress = os.path.abspath(p["progress_file"])
        try:
            directory, base = anchor_parent(progress)
        except FileNotFoundError:
            raise MediaCopyError("progress_file %s: its directory does not exist" % progress) from None
        except OSError as exc:
            raise MediaCopyError("progress_file %s: %s" % (progress, exc.strerror or exc)) from None
        with directory:
            st = directory.lstat(base)
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise MediaCopyError("progress_file %s is a symbolic link: refusing to write through it" % progress)
    if p["concurrency"] < 1:
        raise MediaCopyError("concurrency must be at least 1")
    if p["max_requests_per_second"] < 0:
        raise MediaCopyError("max_requests_per_second must be 0 (no cap) or more")
    if p["tier"] and tier_rate(p["tier"]) is None:
        raise MediaCopyError("tier %r is not a Vultr Object Storage tier; the tiers are %s" % (
            p["tier"], ", ".join("%s (%d requests/s)" % (name, rate) for name, rate in sorted(
                TIER_RATES.items(), key=lambda item: item[1]))))
    if p["shard_count"] < 1 or not 0 <= p["shard_index"] < p["shard_count"]:
        raise MediaCopyError("shard_index must be between 0 and shard_count - 1 (got %s of %s)"
                             % (p["shard_index"], p["shard_count"]))
    if p["limit"] is not None and p["limit"] < 0:
        raise MediaCopyError("limit must be 0 or more")
    if p["multipart_threshold"] < engine_lib.MIN_PART_SIZE:
        raise MediaCopyError("multipart_threshold must be at least 5 MiB (the S3 minimum part size)")
    if p["source"] == "s3" and not p["source_bucket"]:
        raise MediaCopyError("source=s3 needs source_bucket")
    if p["since_last_run"] and not p["record_dir"]:
        raise MediaCopyError("since_last_run needs record_dir (where the last run's record is)")
    if p["since_last_run_margin"] < 0:
        raise MediaCopyError("since_last_run_margin must be 0 or more seconds")
    if p["mode"] == "copy_back" and p["source"] != "filesystem":
        raise MediaCopyError("mode=copy_back writes to system_root: it needs source=filesystem")


def make_limiter(p):
    """The run's one limiter (s3/rate_limit.py): adaptive (AIMD), capped by ``max_requests_per_second``,
    starting from the Vultr tier's rate when ``tier`` is given (else from the cap, else unpaced until the
    gateway first answers 503 SlowDown). Attached to the S3 clients (s3.pace_client), so every request
    the run sends, retries included, passes it."""
    tier = tier_rate(p.get("tier"))
    cap = p["max_requests_per_second"] or 0
    if tier and not cap:
        cap = tier  # the provider's documented limit: never paced above it
    return RateLimiter(cap, adaptive=True, start=tier or cap)


def is_vultr(endpoint):
    try:
        host = resolve_endpoint(endpoint).split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
    except S3ConfigError:
        return False
    return host == VULTR_DOMAIN or host.endswith("." + VULTR_DOMAIN)


def estimate_rate(p, last_pacing=None):
    """``(requests/s, where it comes from)`` a copy would hold, or ``(None, why not)``: the lower of
    the tier's limit and ``max_requests_per_second``, lowered to the rate the last complete run held
    (the copy record's) when that is lower; without a limit, the last run's rate; on a Vultr endpoint
    without either, the lowest tier's (standard)."""
    limits = []
    if tier_rate(p.get("tier")):
        limits.append((tier_rate(p["tier"]), "the %s tier's limit" % str(p["tier"]).strip().lower()))
    if p["max_requests_per_second"]:
        limits.append((float(p["max_requests_per_second"]), "max_requests_per_second"))
    held = (last_pacing or {}).get("held_rate")
    limit = min(limits) if limits else None
    if held and (limit is None or held < limit[0]):
        return float(held), "the rate the last run held"
    if limit is not None:
        return limit
    if is_vultr(p["endpoint"]):
        return TIER_RATES["standard"], "Vultr's standard tier limit (assumed: set tier)"
    return None, "no rate known: set max_requests_per_second or tier, or run a copy once with record_dir"


def estimate(p, engine, result, last_pacing=None):
    """Check mode's plan: the objects and bytes to copy, the requests a copy sends (the listing and
    lookups this run sent, plus one PUT per object or the parts of a multipart upload), the time (this
    run's own, which a copy spends again, plus the writes at the rate it would hold: ``estimate_rate``),
    and the storage the bucket will need (every object found at the source, already there or not)."""
    rate, rate_from = estimate_rate(p, last_pacing)
    requests = engine.limiter.requests + engine.planned_requests
    # What this run took (connections, listing, reading the database) a copy takes again, plus its writes.
    seconds = result["seconds"] + engine.planned_requests / rate if rate else None
    return {
        "objects": result["totals"]["copied"],
        "bytes": result["bytes"],
        "requests": requests,
        "rate": round(rate, 1) if rate else None,
        "rate_from": rate_from,
        "seconds": round(seconds, 1) if rate else None,
        "bucket_bytes": engine.source_bytes,
    }


def handle_database(p):
    """Connect and count the rows to process: ``(connection, {kind: rows})``."""
    try:
        params = db_lib.connection_params_from(p)
        conn = db_lib.connect(**params)
        counts = db_lib.count_rows(conn, p["scope"], p["include_backups"], p["shard_index"], p["shard_count"], p["limit"])
    except (db_lib.DBError, ValueError, OSError) as exc:
        raise MediaCopyError("database: %s" % exc) from None
    return conn, counts


def check_bucket(client, bucket, endpoint, what):
    """The bucket exists and the keys may use it, or MediaCopyError with the precise reason."""
    try:
        probe_bucket(client, bucket)
    except Exception as exc:  # noqa: BLE001 - every failure is reported with describe_error
        raise MediaCopyError("%s: %s" % (what, describe_error(exc, endpoint, bucket))) from None


def handle_source(p, client, limiter=None):
    """The source the objects are read from (copy/sources.py), checked before anything is copied."""
    if p["source"] == "filesystem":
        # A cache file retired to cache.old by an earlier run is read (and counted) there, not missing.
        source = FilesystemSource(p["system_root"], retired_prefixes=RETIRED_CACHE)
        try:
            source.anchor()  # once, before anything is read: a link the app user could swap is refused here
        except OSError as exc:
            raise MediaCopyError("system_root %s is not a directory that can be read safely: %s"
                                 % (p["system_root"], exc)) from None
        return source
    endpoint = p["source_endpoint"] or p["endpoint"]
    access_key = p["source_access_key"] or p["access_key"]
    secret_key = p["source_secret_key"] or p["secret_key"]
    same = same_account(endpoint, p["source_access_key"], p["endpoint"], p["access_key"]) and (
        not p["source_secret_key"] or p["source_secret_key"] == p["secret_key"])
    if same:
        source_client = client
    else:
        try:
            source_client = s3_client(endpoint, access_key=access_key, secret_key=secret_key,
                                      addressing_style=p["addressing_style"], ca_bundle=p["ca_bundle"],
                                      validate_certs=p["validate_certs"], max_pool_connections=p["concurrency"] + 2,
                                      lean=True, pacer=limiter)
        except S3ConfigError as exc:
            raise MediaCopyError("source: %s" % exc) from None
    check_bucket(source_client, p["source_bucket"], endpoint, "source bucket")
    return S3Source(source_client, p["source_bucket"], p["source_key_prefix"], same_account=same)


def start_record(p, conn, check_mode=False):
    """The copy record of this copy run (module_utils/copy/record.py), or None without record_dir."""
    if not p["record_dir"] or p["mode"] != "copy":
        return None
    try:
        bound = record_lib.binding(
            p["endpoint"], p["bucket"], p["key_prefix"], p["scope"], p["include_backups"], p["shard_index"],
            p["shard_count"], record_lib.source_binding(p["source"], p["system_root"], p["source_endpoint"] or p["endpoint"],
                                                        p["source_bucket"], p["source_key_prefix"]),
            db_lib.connection_params_from(p))
        run_record = record_lib.RunRecord(p["record_dir"], bound, p["since_last_run"], p["since_last_run_margin"],
                                          write=not check_mode and p["limit"] is None)
        run_record.begin(conn)
    except (db_lib.DBError, ValueError) as exc:
        raise MediaCopyError("copy record: %s" % exc) from None
    except db_lib.PGError as exc:
        raise MediaCopyError("database: %s" % exc) from None
    return run_record


def handle_copy(p, client, source, conn, counts, check_mode=False, limiter=None):
    """Run the copy (or verify, or count in check mode); the module's result.

    Without a copy record the engine gets every row, lists the bucket itself and follows nothing.
    With one (``record_dir``), the record chooses the rows (``changed``), the index of the bucket
    (a HeadIndex in an incremental run: the rows go through its ``prefetch``) and follows the run
    (its ``tracker``, the engine's tracer).

    ``limiter``: the run's limiter (``make_limiter``), attached to the clients; made here when not given.
    The result says the pace held (``pacing``) and, in check mode, the plan (``estimate``).
    """
    run_record = start_record(p, conn, check_mode)
    changed = run_record.selection if run_record is not None else None
    if run_record is not None and run_record.incremental:
        try:
            counts = db_lib.count_rows(conn, p["scope"], p["include_backups"], p["shard_index"], p["shard_count"],
                                       p["limit"], changed=changed)
        except db_lib.DBError as exc:
            raise MediaCopyError("database: %s" % exc) from None
    if limiter is None:
        limiter = make_limiter(p)
    rows = db_lib.iter_rows_objects(conn, p["scope"], p["include_backups"], p["shard_index"], p["shard_count"], p["limit"],
                                    changed=changed)
    index = tracer = None
    if run_record is not None:
        tracer = run_record.tracker
        index = run_record.choose_index(client, p["bucket"], p["key_prefix"], limiter, p["concurrency"],
                                        sum(counts.values()), p["skip_existing"])
        if index is not None:
            rows = index.prefetch(rows)
    engine = engine_lib.CopyEngine(
        client, p["bucket"], source, key_prefix=p["key_prefix"], acl=p["acl"], cache_control=p["cache_control"],
        concurrency=p["concurrency"], limiter=limiter, multipart_threshold=p["multipart_threshold"],
        skip_existing=p["skip_existing"], mode=p["mode"], check_mode=check_mode, progress_file=p["progress_file"],
        index=index, tracer=tracer)
    try:
        result = engine.run(rows, rows_total=sum(counts.values()))
    except db_lib.DBError as exc:
        raise MediaCopyError("database: %s" % exc, engine.result()) from None
    except Exception as exc:  # noqa: BLE001 - listing the destination/source failed
        if hasattr(exc, "response"):
            raise MediaCopyError("S3: %s" % describe_error(exc, p["endpoint"], p["bucket"]), engine.result()) from None
        raise
    finally:
        conn.close()
    result["rows_total"] = counts
    result["pacing"] = limiter.report()
    if check_mode and p["mode"] == "copy":
        result["estimate"] = estimate(p, engine, result, run_record.last_pacing() if run_record is not None else None)
    if run_record is not None:
        run_record.finish(result["pacing"])
        result["copy_record"] = run_record.report()
    result["full"] = p["shard_count"] == 1 and p["limit"] is None
    return result


def handle_copy_back(p, client, conn, counts, check_mode=False, limiter=None):
    """mode=copy_back: bucket -> system_root for every DB-referenced object missing on disk."""
    from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import back as back_lib

    engine = engine_lib.CopyEngine(client, p["bucket"], None, key_prefix=p["key_prefix"], mode="copy",
                                   concurrency=p["concurrency"], limiter=limiter or make_limiter(p),
                                   check_mode=check_mode, progress_file=p["progress_file"])
    stats = engine.stats
    stats.rows_total = sum(counts.values())
    engine.progress.start()
    try:
        index = engine.build_index()
        stats.phase = "copying back"
        rows = db_lib.iter_rows_objects(conn, p["scope"], p["include_backups"], p["shard_index"], p["shard_count"],
                                        p["limit"])
        back_lib.copy_back(client, p["bucket"], p["system_root"], rows, key_prefix=p["key_prefix"], stats=stats,
                           concurrency=p["concurrency"], check_mode=check_mode, index=index,
                           limiter=engine.limiter)
    except db_lib.DBError as exc:
        raise MediaCopyError("database: %s" % exc, engine.result()) from None
    except back_lib.CopyBackError as exc:
        raise MediaCopyError("copy back: %s" % exc, engine.result()) from None
    except Exception as exc:  # noqa: BLE001 - listing the bucket failed
        if hasattr(exc, "response"):
            raise MediaCopyError("S3: %s" % describe_error(exc, p["endpoint"], p["bucket"]), engine.result()) from None
        raise
    finally:
        stats.phase = "done"
        engine.progress.stop()
        conn.close()
    result = engine.result()
    result["mode"] = "copy_back"
    result["different_on_disk"] = stats.different_on_disk
    result["different_on_disk_sample"] = list(stats.different_on_disk_sample)
    result["rows_total"] = counts
    result["pacing"] = engine.limiter.report()
    result["full"] = p["shard_count"] == 1 and p["limit"] is None
    return result


def check_result(p, result):
    """MediaCopyError when a verify could not read every source, or objects failed (unless ignored)."""
    failed = result["totals"]["failed"]
    if p["mode"] == "verify" and failed:
        raise MediaCopyError(
            "verify failed: %d source file(s) could not be read (e.g. %s): an object whose source cannot be read "
            "is not verified. Fix the permissions or the disk, then retry."
            % (failed, "; ".join("%s: %s" % (f["key"], f["reason"]) for f in result["failed_sample"][:3])), result)
    different = result.get("different_on_disk") or 0
    if p["mode"] == "copy_back" and different and not p["ignore_failures"]:
        raise MediaCopyError(
            "copy back: %d file(s) on disk differ in size from their object in the bucket (%s): they were not "
            "overwritten, and the app would serve them once switched back (a copy back of an earlier version "
            "killed mid-file left such truncated files). Check each one: when the bucket's object is the right "
            "content, move the file on disk away (or delete it) and run the rollback again; it writes the object "
            "back. (%d object(s) failed in all, see failed_sample.)"
            % (different, "; ".join("%s: %d bytes on disk, %d in the bucket" % (d["key"], d["size"], d["bucket_size"])
                                    for d in result.get("different_on_disk_sample", [])[:5]), failed), result)
    if failed and not p["ignore_failures"]:
        raise MediaCopyError("%d object(s) could not be copied (see failed_sample); the others were copied. "
                             "Run again to retry, or set ignore_failures." % failed, result)
