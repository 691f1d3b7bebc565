"""plugins/module_utils/mastodon/cache_retirement.py on real files in a temp directory (the bucket side is a dict
of key -> size here; against Ceph RGW see tests/integration/test_media_copy_role.py)."""

import json
import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import cache_retirement as cr


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


# --- hostile: the app user owns public/system and every directory above cache.old ------------------

@pytest.fixture
def base(app_base):
    return app_base


def snapshot(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            data = None
            if os.path.isfile(full):
                with open(full, "rb") as handle:
                    data = handle.read()
            out[os.path.relpath(full, root)] = (st.st_ino, data)
    return out


def app_tree(base, appuser):
    """base/app/public/system/cache, every directory and file the app user's."""
    app = os.path.join(base, "app")
    system = os.path.join(app, "public", "system")
    for rel, data in FILES.items():
        path = os.path.join(system, "cache", rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(data)
    appuser.own(app)
    return app, system


@pytest.mark.parametrize("swapped", ["public/system", "public"])
def test_delete_never_follows_a_parent_swapped_during_the_bucket_check(base, appuser, swapped):
    """Between the marker check and the deletion (here: while the tree is compared with the bucket),
    the app user swaps a directory above cache.old for a link to another tree: that tree is untouched;
    only the checked cache.old is deleted."""
    app, system = app_tree(base, appuser)
    markers = os.path.join(base, "markers")
    cache = os.path.join(system, "cache")
    # Another tree of the same shape, root's (what root must never delete): .../system/cache.old/...
    # with files of the same names and sizes, so that a check walking it would find it "in the bucket".
    victim = os.path.join(base, "victim")
    victim_old = os.path.join(victim, "public", "system", "cache.old")
    for rel, data in FILES.items():
        path = os.path.join(victim_old, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(b"R" * len(data))  # root's own file, never to be deleted
    before = snapshot(victim)

    assert cr.retire(cache, markers)[0] is True
    retired = os.lstat(cache + ".old").st_ino
    target = os.path.join(app, swapped)
    link_to = os.path.join(victim, swapped)

    def swap():
        os.rename(target, target + ".moved")
        os.symlink(link_to, target)

    calls = []

    def size_of(key):
        if not calls:
            appuser.call(swap)  # as the app user, between two steps of ours
        calls.append(key)
        return BUCKET.get(key)

    try:
        cr.delete_old(cache, markers, size_of)
    except cr.RetirementError:
        pass  # a refusal is fine too
    assert calls, "the bucket check ran"
    assert snapshot(victim) == before  # the other tree is untouched
    moved_old = os.path.join(app, swapped + ".moved", os.path.relpath(cache + ".old", target))
    if os.path.exists(moved_old):  # refused: the checked tree is intact
        assert os.lstat(moved_old).st_ino == retired and sorted(cr.walk_files(moved_old)) == sorted(
            (k, len(v)) for k, v in FILES.items())


def test_retire_never_overwrites_a_cache_old_made_after_the_check(base, appuser, monkeypatch):
    _app, system = app_tree(base, appuser)
    markers = os.path.join(base, "markers")
    cache = os.path.join(system, "cache")
    cache_before = snapshot(cache)
    planted = []
    real_ensure = cr.ensure_marker_dir

    def ensure_then_plant(marker_dir, uid=None):
        real_ensure(marker_dir, uid)
        if not planted:  # the app user, between the state check and the rename
            appuser.call(os.mkdir, cache + ".old")
            planted.append(os.lstat(cache + ".old").st_ino)

    monkeypatch.setattr(cr, "ensure_marker_dir", ensure_then_plant)
    with pytest.raises(cr.RetirementError, match="both"):
        cr.retire(cache, markers)
    assert planted and os.lstat(cache + ".old").st_ino == planted[0] and os.listdir(cache + ".old") == []
    assert snapshot(cache) == cache_before
    assert cr.marker_problem(markers, cache + ".old") is not None  # no marker for the planted one


# --- the decision (retire_problem): a full verify that found every cached object lets the cache go -------

FULL_OK = {"full": True, "verified": True, "totals": {"objects": 3}}


@pytest.mark.parametrize("cache_state, verify, expected", [
    ({"state": "old"}, {}, ""),  # already retired: nothing to decide
    ({"state": "none"}, {}, ""),
    ({"state": "cache", "cache_has_files": True}, FULL_OK, ""),
    ({"state": "both", "cache_has_files": True}, FULL_OK, ""),
    ({"state": "cache", "cache_has_files": False}, dict(FULL_OK, totals={"objects": 0}), ""),  # empty cache, no rows
    ({"state": "cache"}, {}, "the verify did not cover every row (sharded or limited)"),  # the verify did not run
    ({"state": "cache"}, dict(FULL_OK, full=False), "the verify did not cover every row (sharded or limited)"),
    ({"state": "cache"}, {"full": True, "verified": False, "missing_in_bucket": 3, "different_size": 1,
                          "missing_in_bucket_sample": [{"key": "cache/a.png"}],
                          "different_size_sample": [{"key": "cache/b.png"}]},
     "3 object(s) missing from bucket media and 1 of a different size (e.g. cache/a.png, cache/b.png) - other shards "
     "may still be copying, or the copy must be run again"),
    ({"state": "cache", "cache_has_files": True}, dict(FULL_OK, totals={"objects": 0}),
     "the database references no cached object at all, yet /live/public/system/cache holds files: this is not the "
     "database of these files (check DB_NAME/DB_HOST in /live/.env.production) or not the right public/system "
     "(media_copy_system_root)"),
])
def test_retire_problem_says_what_stands_in_the_way(cache_state, verify, expected):
    assert cr.retire_problem(cache_state, verify, "media", "/live/public/system/cache", "/live/.env.production") \
        == expected
