"""plugins/module_utils/misskey/drive.py and the pure parts of misskey/drive_db.py."""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive import (
    CACHE_CONTROL,
    DriveMoveError,
    content_disposition,
    correct_filename,
    headers_for,
    move_diff,
    original_ext,
    plan_row,
    sniff_image_type,
    upload_type,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_db import _rewrite, js_encode

U = "0b6f3b1e-2c4d-4f6a-8b9c-0d1e2f3a4b5c"


@pytest.mark.parametrize("name,expected", [
    # jshttp content-disposition with Misskey's fallback (name.replace(/[^\w.-]/g, '_'))
    ("photo.png", 'inline; filename="photo.png"'),
    ("my photo.png", "inline; filename=\"my_photo.png\"; filename*=UTF-8''my%20photo.png"),
    ("写真.jpg", "inline; filename=\"__.jpg\"; filename*=UTF-8''%E5%86%99%E7%9C%9F.jpg"),
    ("a'b(c)*.png", "inline; filename=\"a_b_c__.png\"; filename*=UTF-8''a%27b%28c%29%2A.png"),
    ("100%25.png", "inline; filename=\"100_25.png\"; filename*=UTF-8''100%2525.png"),
])
def test_content_disposition(name, expected):
    assert content_disposition(name) == expected


def test_types_and_extensions():
    assert upload_type("image/apng") == "image/png"
    assert upload_type("image/svg+xml") == "application/octet-stream"
    assert upload_type("audio/flac") == "audio/flac"
    assert original_ext("photo", "image/jpeg") == ".jpg"
    assert original_ext("clip.MP4", "video/mp4") == ".MP4"
    assert original_ext("drawing.svg", "image/svg+xml") == ""
    assert correct_filename("photo.png", "webp") == "photo.png.webp"
    assert correct_filename("photo.jpeg", "jpg") == "photo.jpeg"
    assert correct_filename("archive.tar.gz", "gz") == "archive.tar.gz"
    assert correct_filename("README", None) == "README.unknown"
    assert sniff_image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert sniff_image_type(b"\xff\xd8\xff\xe0") == "image/jpeg"
    assert sniff_image_type(b"hello") is None


def test_headers_as_misskey_uploads():
    row = {"name": "photo.png", "type": "image/png", "webpublicType": "image/webp"}
    assert headers_for("original", row, public_read=True) == {
        "ContentType": "image/png", "CacheControl": CACHE_CONTROL, "ContentDisposition": 'inline; filename="photo.png"',
        "ACL": "public-read"}
    thumbnail = headers_for("thumbnail", row, b"\xff\xd8\xff\xe0", generation="13.9")
    assert thumbnail == {"ContentType": "image/jpeg", "CacheControl": CACHE_CONTROL}  # no file name, no disposition
    assert headers_for("webpublic", row)["ContentDisposition"] == 'inline; filename="photo.png.webp"'


@pytest.mark.parametrize("generation, original, webpublic, thumbnail", [
    # v12/13.0 (name as stored everywhere, no name on the thumbnail)
    ("v12", 'inline; filename="photo"', 'inline; filename="photo"', None),
    # 13.9.x: correctFilename for the original (key ext) and webpublic, still no name on the thumbnail
    ("13.9", 'inline; filename="photo.png"', 'inline; filename="photo.webp"', None),
    # 13.14.2+, CalVer, Sharkey: original as stored, webpublic corrected, thumbnail "<name>.thumbnail.<ext>"
    ("named", 'inline; filename="photo"', 'inline; filename="photo.webp"', 'inline; filename="photo.thumbnail.webp"'),
])
def test_headers_per_generation(generation, original, webpublic, thumbnail):
    row = {"name": "photo", "type": "image/png", "webpublicType": "image/webp"}
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 "
    assert headers_for("original", row, generation=generation)["ContentDisposition"] == original
    assert headers_for("webpublic", row, generation=generation)["ContentDisposition"] == webpublic
    assert headers_for("thumbnail", row, webp, generation=generation).get("ContentDisposition") == thumbnail
    assert headers_for("thumbnail", row, webp, generation=generation)["ContentType"] == "image/webp"


def test_named_thumbnail_of_a_name_with_an_extension_and_no_name():
    webp = b"RIFF\x24\x00\x00\x00WEBPVP8 "
    assert headers_for("thumbnail", {"name": "IMG 01.jpg"}, webp)["ContentDisposition"] == (
        "inline; filename=\"IMG_01.jpg.thumbnail.webp\"; filename*=UTF-8''IMG%2001.jpg.thumbnail.webp")
    assert "ContentDisposition" not in headers_for("thumbnail", {"name": ""}, webp)
    with pytest.raises(DriveMoveError, match="generation"):
        headers_for("thumbnail", {"name": "x"}, webp, generation="13.0")


def _row(**more):
    row = dict(id="9k1", url="https://mk.example/files/" + U, accessKey=U, thumbnailAccessKey="thumbnail-" + U,
               webpublicAccessKey="webpublic-" + U, thumbnailUrl=None, webpublicUrl=None)
    row.update(more)
    return row


def test_plan_row_only_variants_with_urls():
    objects, updates, url_map = plan_row(_row(thumbnailUrl="https://mk.example/files/thumbnail-" + U), "misskey",
                                         "https://s3.example/", "https://mk.example")
    assert objects == [("original", U, "misskey/" + U), ("thumbnail", "thumbnail-" + U, "misskey/thumbnail-" + U)]
    assert updates == {"accessKey": "misskey/" + U, "url": "https://s3.example/misskey/" + U,
                       "thumbnailAccessKey": "misskey/thumbnail-" + U,
                       "thumbnailUrl": "https://s3.example/misskey/thumbnail-" + U, "storedInternal": False}
    assert url_map["https://mk.example/files/thumbnail-" + U] == "https://s3.example/misskey/thumbnail-" + U


@pytest.mark.parametrize("bad", ["../../etc/passwd", "thumbnail-x", "", None, U + "/x"])
def test_plan_row_refuses_keys_that_are_not_local_file_names(bad):
    with pytest.raises(DriveMoveError, match="not a local file name"):
        plan_row(_row(accessKey=bad), "misskey", "https://s3.example", "https://mk.example")


def test_rewrite_exact_and_proxied_avatar_urls():
    old, new = "https://mk.example/files/" + U, "https://s3.example/misskey/" + U
    url_map = {old: new}
    assert _rewrite(old, url_map) == new
    assert _rewrite(old + "x", url_map) is None  # exact equality only
    proxied = "https://mk.example/proxy/avatar.webp?url=%s&avatar=1" % js_encode(old)
    assert _rewrite(proxied, url_map) == "https://mk.example/proxy/avatar.webp?url=%s&avatar=1" % js_encode(new)
    longer = "https://mk.example/proxy/avatar.webp?url=%s&avatar=1" % js_encode(old + "0")
    assert _rewrite(longer, url_map) is None


# --- the purge's file checks (misskey_drive_purge) ------------------------------------------------

def _files(tmp_path):
    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import open_dir

    files = tmp_path / "files"
    files.mkdir()
    return files, open_dir(str(files))


def test_open_entry_regular_file_and_absent(tmp_path):
    import os

    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import (
        md5_of_fd,
        open_entry,
    )

    files, drive_dir = _files(tmp_path)
    (files / U).write_bytes(b"hello")
    try:
        fd, info = open_entry(drive_dir, U)
        assert info.st_size == 5 and md5_of_fd(fd) == ("5d41402abc4b2a76b9719d911017c592", 5)
        os.close(fd)
        assert open_entry(drive_dir, "thumbnail-" + U) is None
    finally:
        drive_dir.close()


@pytest.mark.parametrize("kind", ["link", "fifo", "directory", "bad name"])
def test_open_entry_keeps_what_is_not_a_regular_file(tmp_path, kind):
    import os

    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import Kept, open_entry

    files, drive_dir = _files(tmp_path)
    target = tmp_path / "target"
    target.write_bytes(b"outside")
    name = U
    if kind == "link":
        os.symlink(str(target), str(files / U))
    elif kind == "fifo":
        os.mkfifo(str(files / U))
    elif kind == "directory":
        (files / U).mkdir()
    else:
        name = "../target"
    try:
        with pytest.raises(Kept) as kept:
            open_entry(drive_dir, name)  # returns at once (a FIFO does not block)
        assert {"link": "symbolic link", "fifo": "not a regular file", "directory": "not a regular file",
                "bad name": "not a local file name"}[kind] in str(kept.value)
    finally:
        drive_dir.close()
    assert target.read_bytes() == b"outside"


def test_unlink_checked_refuses_a_replaced_name(tmp_path):
    import os

    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import (
        Kept,
        open_entry,
        unlink_checked,
    )

    files, drive_dir = _files(tmp_path)
    (files / U).write_bytes(b"first")
    try:
        fd, info = open_entry(drive_dir, U)
        os.close(fd)
        os.rename(str(files / U), str(tmp_path / "moved-away"))
        (files / U).write_bytes(b"second")  # another inode under the same name
        with pytest.raises(Kept, match="replaced meanwhile"):
            unlink_checked(drive_dir, U, info)
        assert (files / U).read_bytes() == b"second"
        fd, info = open_entry(drive_dir, U)
        os.close(fd)
        assert unlink_checked(drive_dir, U, info) is True and not (files / U).exists()
    finally:
        drive_dir.close()


def test_open_dir_refuses_a_link(tmp_path, appuser):
    import os

    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import open_dir

    (tmp_path / "real").mkdir()
    os.symlink(str(tmp_path / "real"), str(tmp_path / "files"))
    os.lchown(str(tmp_path / "files"), appuser.uid, appuser.gid)  # a link the app's user made (safe_fs: refused)
    with pytest.raises(DriveMoveError, match="symbolic link"):
        open_dir(str(tmp_path / "files"))


def test_object_matches():
    from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.drive_purge import object_matches

    md5 = "5d41402abc4b2a76b9719d911017c592"
    assert object_matches({"ContentLength": 5, "ETag": '"%s"' % md5}, md5, 5) is None
    assert object_matches({"ContentLength": 5, "ETag": '"abc-2"'}, md5, 5) is None  # multipart: size only
    assert "missing" in object_matches(None, md5, 5)
    assert "bytes" in object_matches({"ContentLength": 6, "ETag": '"%s"' % md5}, md5, 5)
    assert "MD5" in object_matches({"ContentLength": 5, "ETag": '"0000"'}, md5, 5)


def test_move_diff_has_the_counts_in_its_header_and_only_drive_file_columns():
    stats = dict(candidates=6, moved=5, objects_uploaded=9, objects_present=0, dependents_rewritten=4, missing=1,
                 changed_meanwhile=0, refused=0)
    sample = [dict(id="9k1", objects=["misskey/u1"], before={"accessKey": "u1", "url": "https://mk/files/u1"},
                   after={"accessKey": "misskey/u1", "url": "https://s3.mk/misskey/u1"})]
    result = dict(stats=stats, sample=sample, base_url="https://s3.mk", prefix="misskey")
    check = move_diff(result, check_mode=True)
    assert check["before_header"] == ("drive_file (6 local files of local users: 5 to move, 1 missing on disk, "
                                      "0 refused, 0 changed meanwhile; sample of 1 rows)")
    assert check["after_header"] == "drive_file in https://s3.mk/misskey"
    assert check["before"] == {"9k1": sample[0]["before"]} and check["after"] == {"9k1": sample[0]["after"]}
    assert "5 moved" in move_diff(result)["before_header"] and "9 objects uploaded" in move_diff(result)["before_header"]
    stats["unsafe"] = 2  # rows refused for a link or a FIFO in files/: named only when there are some
    assert "0 changed meanwhile, 2 unsafe; 9 objects uploaded" in move_diff(result)["before_header"]
