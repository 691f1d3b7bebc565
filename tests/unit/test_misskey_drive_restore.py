"""plugins/module_utils/misskey/drive_restore.py: the rollback's write-back of the files a purge deleted
(the mode of the files written back, the temporaries a killed run left, the names it takes, its refusals
before any database or bucket is read). The write-back itself, from the bucket through the rows, is
tested on PostgreSQL and Ceph RGW in tests/integration/test_misskey_drive_move.py (the purge test) and
test_misskey_drive_hostile.py (the kill test).
"""

import os

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import DriveMoveError
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import open_dir
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_restore import (
    DEFAULT_MODE,
    OLD_TEMPORARY,
    absent,
    prepare,
    remove_temporaries,
    sibling_mode,
)

U = "0b6f3b1e-2c4d-4f6a-8b9c-0d1e2f3a4b5c"


def test_sibling_mode_keeps_permission_bits_only(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    with open_dir(str(files)) as drive_dir:
        assert sibling_mode(drive_dir) == DEFAULT_MODE == 0o644  # no sibling
        for n in range(3):
            (files / ("s%d" % n)).write_bytes(b"x")
            os.chmod(str(files / ("s%d" % n)), 0o6775)
        (files / "other").write_bytes(b"x")
        os.chmod(str(files / "other"), 0o640)
        assert sibling_mode(drive_dir) == 0o664  # the most common, without setuid, setgid and x bits
        for n in range(3):
            os.chmod(str(files / ("s%d" % n)), 0o4755)
        assert sibling_mode(drive_dir) == 0o644


def test_remove_temporaries_removes_only_what_a_killed_write_back_left(tmp_path, appuser):
    files = tmp_path / "files"
    files.mkdir()
    ours = [".%s.fos-0123456789abcdef.tmp" % U, ".thumbnail-%s.fos-fedcba9876543210.tmp" % U,
            ".fos-restore-%s-0a1b2c3d" % U]  # safe_fs's temporaries, and the earlier version's
    for name in ours:
        (files / name).write_bytes(b"partial")
    app_owned = ".webpublic-%s.fos-0123456789abcdef.tmp" % U
    (files / app_owned).write_bytes(b"the app's")
    os.chown(str(files / app_owned), appuser.uid, appuser.gid)
    (files / U).write_bytes(b"a drive file")
    (files / ".other.fos-0123456789abcdef.tmp").write_bytes(b"not next to a drive name")
    os.symlink(str(tmp_path / "target"), str(files / (".%s.fos-aaaaaaaaaaaaaaaa.tmp" % U)))
    (tmp_path / "target").write_bytes(b"outside")
    hard = ".%s.fos-bbbbbbbbbbbbbbbb.tmp" % U  # a hard link to a root file, as the app user could plant
    os.link(str(tmp_path / "target"), str(files / hard))
    with open_dir(str(files)) as drive_dir:
        assert remove_temporaries(drive_dir) == 3
    assert sorted(os.listdir(str(files))) == sorted([app_owned, U, ".other.fos-0123456789abcdef.tmp",
                                                     ".%s.fos-aaaaaaaaaaaaaaaa.tmp" % U, hard])
    assert (tmp_path / "target").read_bytes() == b"outside"


def test_sibling_mode_ignores_hidden_names_and_what_is_not_a_regular_file(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    (files / U).write_bytes(b"x")
    os.chmod(str(files / U), 0o600)
    for n in range(3):  # temporaries and a directory: not siblings whose mode a file written back takes
        (files / (".t%d" % n)).write_bytes(b"x")
        os.chmod(str(files / (".t%d" % n)), 0o666)
    (files / "d").mkdir(mode=0o777)
    with open_dir(str(files)) as drive_dir:
        assert sibling_mode(drive_dir) == 0o600


def test_old_temporaries_are_this_rooms_earlier_names_only():
    assert OLD_TEMPORARY.match(".fos-restore-%s-0a1b2c3d" % U)
    assert OLD_TEMPORARY.match(".fos-restore-thumbnail-%s-0a1b2c3d" % U)
    for name in (".fos-restore-%s-0a1b2c3" % U, ".fos-restore-%s-0a1b2c3d\n" % U, ".fos-restore-x-0a1b2c3d",
                 "fos-restore-%s-0a1b2c3d" % U, ".fos-restore-%s-0A1B2C3D" % U, U):
        assert not OLD_TEMPORARY.match(name), name


def test_absent_only_when_no_entry_has_the_name(tmp_path):
    files = tmp_path / "files"
    files.mkdir()
    os.symlink(str(tmp_path / "nowhere"), str(files / ("thumbnail-" + U)))  # a dangling link is an entry
    (files / U).write_bytes(b"x")
    with open_dir(str(files)) as drive_dir:
        assert absent(drive_dir, "webpublic-" + U)
        assert not absent(drive_dir, U) and not absent(drive_dir, "thumbnail-" + U)


def test_prepare_without_files_dir(tmp_path):
    """No files/ (or a file in its place): nothing to write back when no purge deleted a file; an error
    when one did - before the database or the bucket is touched (neither is given here)."""
    def no_bucket():
        raise AssertionError("the bucket is not needed")

    (tmp_path / "file").write_bytes(b"x")
    for files_dir in (tmp_path / "absent", tmp_path / "file"):
        assert prepare(None, no_bucket, str(files_dir), required=False) == ([], {"written_back": 0})
        with pytest.raises(DriveMoveError, match="cannot open the directory"):
            prepare(None, no_bucket, str(files_dir))
