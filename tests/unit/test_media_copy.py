"""plugins/module_utils/copy/steps.py, the steps of the media_copy module: its options, the checks of
its input before anything happens, the source it reads, and when a finished run fails the task.

The steps that talk to PostgreSQL and the bucket (handle_database, handle_copy, handle_copy_back) run
against the real services in tests/integration/test_media_copy_rgw.py and the files next to it.
"""

import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import steps
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.sources import FilesystemSource

MB = 1024 * 1024


def params(**over):
    """The module's parameters as Ansible hands them over: every option's default, then ``over``."""
    p = {name: spec.get("default") for name, spec in steps.argument_spec().items()}
    p.update(bucket="media", endpoint="https://s3.example", multipart_threshold=15 * MB)
    p.update(over)
    return p


def test_argument_spec_has_the_copy_options_and_the_connections():
    spec = steps.argument_spec()
    assert spec["bucket"]["required"] is True
    assert spec["mode"]["choices"] == ["copy", "verify", "copy_back"] and spec["mode"]["default"] == "copy"
    assert spec["scope"]["default"] == ["cache"] and spec["source"]["default"] == "filesystem"
    assert spec["source_secret_key"]["no_log"] is True and spec["source_access_key"]["no_log"] is True
    assert {"endpoint", "access_key", "secret_key", "ca_bundle"} <= set(spec)  # s3_argument_spec
    assert {"db_host", "db_name", "db_password"} <= set(spec)  # db_argument_spec


def test_check_params_accepts_the_defaults():
    steps.check_params(params())


@pytest.mark.parametrize("over, message", [
    ({"concurrency": 0}, "concurrency must be at least 1"),
    ({"max_requests_per_second": -1}, "max_requests_per_second must be 0"),
    ({"shard_count": 0}, "shard_index must be between 0 and shard_count - 1"),
    ({"shard_index": 2, "shard_count": 2}, r"shard_index must be between 0 and shard_count - 1 \(got 2 of 2\)"),
    ({"shard_index": -1, "shard_count": 2}, "shard_index must be between"),
    ({"limit": -1}, "limit must be 0 or more"),
    ({"multipart_threshold": 5 * MB - 1}, "at least 5 MiB"),
    ({"source": "s3"}, "source=s3 needs source_bucket"),
    ({"since_last_run": True}, "since_last_run needs record_dir"),
    ({"since_last_run_margin": -1}, "since_last_run_margin must be 0 or more"),
    ({"mode": "copy_back", "source": "s3", "source_bucket": "old"}, "copy_back .* needs source=filesystem"),
])
def test_check_params_refuses_bad_input(over, message):
    with pytest.raises(steps.MediaCopyError, match=message):
        steps.check_params(params(**over))


def test_check_params_edges_that_are_fine():
    steps.check_params(params(limit=0, multipart_threshold=5 * MB, shard_index=1, shard_count=2,
                              max_requests_per_second=0, since_last_run=True, record_dir="/var/lib/x"))


def test_check_params_progress_file(tmp_path):
    progress = tmp_path / "progress.json"
    steps.check_params(params(progress_file=str(progress)))  # absent: written later
    with pytest.raises(steps.MediaCopyError, match="its directory does not exist"):
        steps.check_params(params(progress_file=str(tmp_path / "absent" / "progress.json")))
    os.symlink(str(tmp_path / "elsewhere"), str(progress))
    with pytest.raises(steps.MediaCopyError, match="is a symbolic link: refusing to write through it"):
        steps.check_params(params(progress_file=str(progress)))
    steps.check_params(params(progress_file=str(progress)), check_mode=True)  # check mode writes no file


def test_handle_source_filesystem_is_anchored_before_anything_is_read(tmp_path):
    (tmp_path / "system").mkdir()
    source = steps.handle_source(params(system_root=str(tmp_path / "system")), None)
    assert isinstance(source, FilesystemSource)
    (tmp_path / "system" / "cache").mkdir()
    os.rename(str(tmp_path / "system"), str(tmp_path / "moved"))  # anchored: the directory, not the name
    assert source.size("cache") is None  # a directory is not an object; read in the anchored directory
    with pytest.raises(steps.MediaCopyError, match="is not a directory that can be read safely"):
        steps.handle_source(params(system_root=str(tmp_path / "system")), None)


def test_handle_source_s3_with_a_bad_endpoint():
    with pytest.raises(steps.MediaCopyError, match="^source: endpoint 'ftp://old.example'"):
        steps.handle_source(params(source="s3", source_bucket="old", source_endpoint="ftp://old.example",
                                   source_access_key="other", source_secret_key="other"), None)


def test_no_record_without_record_dir_or_outside_copy_mode():
    assert steps.start_record(params(), None) is None
    assert steps.start_record(params(record_dir="/nonexistent", mode="verify"), None) is None


def result(failed=0, different=0):
    return {"totals": {"failed": failed}, "failed_sample": [{"key": "k%d" % n, "reason": "EACCES"} for n in range(failed)],
            "different_on_disk": different,
            "different_on_disk_sample": [{"key": "d%d" % n, "size": 1, "bucket_size": 2} for n in range(different)]}


def test_check_result_passes_a_clean_run():
    for mode in ("copy", "verify", "copy_back"):
        steps.check_result(params(mode=mode), result())


def test_check_result_failed_objects_fail_unless_ignored():
    with pytest.raises(steps.MediaCopyError, match="^2 object") as raised:
        steps.check_result(params(), result(failed=2))
    assert raised.value.result["totals"]["failed"] == 2  # the copy's result goes with the failure
    steps.check_result(params(ignore_failures=True), result(failed=2))


def test_check_result_verify_fails_on_an_unread_source_even_when_ignored():
    with pytest.raises(steps.MediaCopyError, match=r"verify failed: 4 source .*k0: EACCES; k1: EACCES; k2: EACCES\)"):
        steps.check_result(params(mode="verify", ignore_failures=True), result(failed=4))


def test_check_result_copy_back_names_the_files_that_differ():
    with pytest.raises(steps.MediaCopyError, match=r"copy back: 1 file\(s\) on disk differ .*d0: 1 bytes on disk, 2 "):
        steps.check_result(params(mode="copy_back"), result(failed=1, different=1))
    steps.check_result(params(mode="copy_back", ignore_failures=True), result(failed=1, different=1))


def test_media_copy_error_carries_message_and_result():
    err = steps.MediaCopyError("boom")
    assert (str(err), err.msg, err.result) == ("boom", "boom", {})
    assert steps.MediaCopyError("boom", {"totals": {}}).result == {"totals": {}}


# --- the pace (issue 22) -------------------------------------------------------------------------

def test_the_limiter_is_adaptive_capped_and_starts_from_the_tier():
    limiter = steps.make_limiter(params())
    assert limiter.adaptive and limiter.cap == 0 and limiter.rate == 0  # unpaced until the first 503
    limiter = steps.make_limiter(params(tier="Performance"))
    assert limiter.rate == 4000 and limiter.cap == 4000  # the tier's documented limit
    limiter = steps.make_limiter(params(tier="performance", max_requests_per_second=300))
    assert limiter.rate == 300 and limiter.cap == 300
    limiter = steps.make_limiter(params(max_requests_per_second=150))
    assert limiter.rate == 150 and limiter.cap == 150 and limiter.floor == 7.5


def test_check_params_refuses_an_unknown_tier():
    with pytest.raises(steps.MediaCopyError, match="standard .800 requests/s.*accelerated .10000"):
        steps.check_params(params(tier="gold"))
    steps.check_params(params(tier="Standard"))


@pytest.mark.parametrize("over, last, rate, source", [
    (dict(tier="standard"), None, 800.0, "the standard tier's limit"),
    (dict(tier="premium", max_requests_per_second=600), None, 600.0, "max_requests_per_second"),
    (dict(max_requests_per_second=150), {"held_rate": 139.0}, 139.0, "the rate the last run held"),
    (dict(max_requests_per_second=150), {"held_rate": 400.0}, 150.0, "max_requests_per_second"),
    (dict(), {"held_rate": 350.0}, 350.0, "the rate the last run held"),
    (dict(endpoint="ewr1"), None, 800.0, "Vultr's standard tier limit (assumed: set tier)"),
    (dict(), None, None, "no rate known: set max_requests_per_second or tier, or run a copy once with record_dir"),
])
def test_the_rate_check_mode_estimates_with(over, last, rate, source):
    assert steps.estimate_rate(params(**over), last) == (rate, source)


def test_the_estimate_counts_the_requests_a_copy_sends(tmp_path):
    """Check mode's plan: the listing and lookups it sent, one PUT per object, a multipart upload's parts
    plus two; the time at the rate; the storage the bucket will hold (objects already there too)."""
    from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import engine as ce
    from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.rate_limit import RateLimiter

    source = FilesystemSource(str(tmp_path))
    engine = ce.CopyEngine(None, "media", source, check_mode=True, limiter=RateLimiter(0), multipart_threshold=15 * MB)

    class Obj:
        def __init__(self, key):
            self.key, self.acl = key, None

    assert engine.requests_for(Obj("a"), 10) == 1
    assert engine.requests_for(Obj("b"), 15 * MB) == 1
    assert engine.requests_for(Obj("c"), 40 * MB) == 5 + 2  # 8 MiB parts
    engine.limiter.requests = 3  # HeadBucket and two listing pages
    engine.planned_requests = 1200
    engine.source_bytes = 7 * MB
    result = {"totals": {"copied": 1000}, "bytes": 5 * MB, "seconds": 1.5}  # this check run's own time
    out = steps.estimate(params(max_requests_per_second=120), engine, result)
    assert out == {"objects": 1000, "bytes": 5 * MB, "requests": 1203, "rate": 120.0,
                   "rate_from": "max_requests_per_second", "seconds": 11.5, "bucket_bytes": 7 * MB}
    assert steps.estimate(params(), engine, result)["seconds"] is None
