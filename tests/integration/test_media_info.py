"""media_info against a Mastodon database (real PostgreSQL, Mastodon's table definitions): its sample
keys are the copy's keys, with S3_KEY_PREFIX joined by the same function the copy uses.
"""

import uuid


from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import join_key
from tests.ansible_helpers import run_module
from tests.fixtures.mastodon_instance import build_instance


def test_sample_keys_are_the_copy_keys_with_the_prefix(pg, tmp_path):
    inst = build_instance(pg, "media_info_" + uuid.uuid4().hex[:8], tmp_path / "system")
    p = inst.db_params
    results = {}
    for prefix in ("", "/media/", "a/b"):
        result = run_module("media_info", dict(
            db_host=p["host"], db_port=p["port"], db_name=p["dbname"], db_user=p["user"], db_password=p["password"],
            key_prefix=prefix, sample_size=len(inst.expected) + 10), name="Media info")
        assert result.rc == 0, result
        results[prefix] = result.task("Media info")
    assert {o["key"] for o in results[""]["sample"]} == set(inst.expected)
    assert {o["key"] for o in results["/media/"]["sample"]} == {"media/" + k for k in inst.expected}
    assert {o["key"] for o in results["a/b"]["sample"]} == {join_key("a/b", k) for k in inst.expected}
    assert results[""]["total_rows"] > 0 and results[""]["changed"] is False
