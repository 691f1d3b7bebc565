"""plugins/module_utils/cache_retirement.py on real files in a temp directory (the bucket side is a dict
of key -> size here; against Ceph RGW see tests/integration/test_media_copy_role.py)."""

import json
import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils import cache_retirement as cr


def M(tmp_path):
    """The marker directory (root's, outside the app's tree)."""
    return str(tmp_path / "markers")


def make_cache(root, files):
    cache = root / "cache"
    for rel, data in files.items():
        path = cache / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return str(cache)


FILES = {"accounts/avatars/000/000/001/original/a.png": b"png", "media_attachments/files/000/000/002/original/m.jpg": b"jpeg!"}
BUCKET = {"cache/" + k: len(v) for k, v in FILES.items()}


def test_retire_writes_marker_then_delete_checks_every_file(tmp_path):
    cache = make_cache(tmp_path, FILES)
    assert cr.retire(cache, M(tmp_path))[0] is True
    assert cr.state(cache) == "old"
    assert cr.marker_problem(M(tmp_path), cache + ".old") is None
    assert cr.retire(cache, M(tmp_path))[0] is False  # idempotent
    changed, report = cr.delete_old(cache, M(tmp_path), BUCKET.get, check_mode=True)
    assert changed and report["files"] == 2 and os.path.isdir(cache + ".old")
    changed, report = cr.delete_old(cache, M(tmp_path), BUCKET.get)
    assert changed and not os.path.exists(cache + ".old")
    assert cr.delete_old(cache, M(tmp_path), BUCKET.get)[0] is False


def test_delete_refuses_a_file_absent_from_the_bucket(tmp_path):
    cache = make_cache(tmp_path, dict(FILES, **{"preview_cards/images/000/000/003/original/p.jpg": b"x"}))
    cr.retire(cache, M(tmp_path))
    with pytest.raises(cr.RetirementError, match="1 of its 3 file.* not in the bucket.*p.jpg"):
        cr.delete_old(cache, M(tmp_path), BUCKET.get)
    assert os.path.isdir(cache + ".old")


def test_delete_refuses_a_different_size(tmp_path):
    cache = make_cache(tmp_path, FILES)
    cr.retire(cache, M(tmp_path))
    with pytest.raises(cr.RetirementError, match="1 have another size"):
        cr.delete_old(cache, M(tmp_path), dict(BUCKET, **{"cache/" + list(FILES)[0]: 99}).get)


def test_delete_refuses_a_cache_old_it_did_not_create(tmp_path):
    make_cache(tmp_path, FILES)
    os.rename(tmp_path / "cache", tmp_path / "cache.old")  # moved by someone else
    with pytest.raises(cr.RetirementError, match="no marker"):
        cr.delete_old(str(tmp_path / "cache"), M(tmp_path), BUCKET.get)
    # ours was retired, then replaced by another directory of the same name: refused
    cache = make_cache(tmp_path / "b", FILES)
    cr.retire(cache, M(tmp_path))
    os.rename(cache + ".old", str(tmp_path / "b" / "moved-away"))
    os.rename(str(tmp_path / "cache.old"), cache + ".old")
    with pytest.raises(cr.RetirementError, match="names another directory"):
        cr.delete_old(cache, M(tmp_path), BUCKET.get)
    # a marker that is a link is refused
    marker = cr.marker_path(M(tmp_path), cache + ".old")
    os.unlink(marker)
    os.symlink("/etc/hostname", marker)
    with pytest.raises(cr.RetirementError, match="not a regular file"):
        cr.delete_old(cache, M(tmp_path), BUCKET.get)
    assert os.path.isdir(cache + ".old")


def test_marker_of_another_owner_is_refused(tmp_path):
    cache = make_cache(tmp_path, FILES)
    cr.retire(cache, M(tmp_path))
    assert "owned by uid" in cr.marker_problem(M(tmp_path), cache + ".old", uid=os.geteuid() + 1)


def test_marker_dir_writable_by_others_is_refused(tmp_path):
    cache = make_cache(tmp_path, FILES)
    os.makedirs(M(tmp_path))
    os.chmod(M(tmp_path), 0o777)
    with pytest.raises(cr.RetirementError, match="not be writable by others"):
        cr.retire(cache, M(tmp_path))
    assert cr.state(cache) == "cache"  # refused before moving anything


def test_retired_tree_is_left_byte_identical(tmp_path):
    cache = make_cache(tmp_path, FILES)
    cr.retire(cache, M(tmp_path))
    found = sorted(rel for rel, _size in cr.walk_files(cache + ".old"))
    assert found == sorted(FILES)


def test_links_in_the_tree_refuse_deletion(tmp_path):
    cache = make_cache(tmp_path, FILES)
    os.symlink("/etc/hostname", os.path.join(cache, "link.png"))
    cr.retire(cache, M(tmp_path))
    with pytest.raises(cr.RetirementError, match="not a regular file"):
        cr.delete_old(cache, M(tmp_path), dict(BUCKET, **{"cache/link.png": 1}).get)


def test_both_present_is_refused_and_restore_moves_back(tmp_path):
    cache = make_cache(tmp_path, FILES)
    cr.retire(cache, M(tmp_path))
    os.mkdir(cache)
    with pytest.raises(cr.RetirementError, match="both"):
        cr.retire(cache, M(tmp_path))
    with pytest.raises(cr.RetirementError, match="both"):
        cr.restore(cache, M(tmp_path))
    os.rmdir(cache)
    assert cr.restore(cache, M(tmp_path))[0] is True
    assert cr.state(cache) == "cache" and not os.path.exists(cr.marker_path(M(tmp_path), cache + ".old"))
    assert cr.restore(cache, M(tmp_path))[0] is False


def test_key_prefix_and_has_files(tmp_path):
    cache = make_cache(tmp_path, FILES)
    assert cr.has_files(cache)
    report = cr.compare_tree(cache, {"pfx/cache/" + k: len(v) for k, v in FILES.items()}.get, "cache", "pfx")
    assert (report["files"], report["missing"]) == (2, 0)
    empty = tmp_path / "empty" / "cache"
    (empty / "a" / "b").mkdir(parents=True)
    assert not cr.has_files(str(empty))
    assert json.loads(json.dumps(report))["bytes"] == 8
