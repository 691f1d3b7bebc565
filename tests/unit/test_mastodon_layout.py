"""Mastodon's key layout, checked against cases written by hand from Mastodon's rules.

Every expected key/content type below was worked out manually from Mastodon's sources
(config/initializers/paperclip.rb, Paperclip's id_partition, the models' style tables,
GifTranscoder/TypeCorrector) -- none is computed with the code under test.
"""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import layout as L
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import (
    MediaObject,
    RowObjects,
    id_partition,
    objects_for,
    row_objects,
)


def keyset(objects):
    return {o.key: (o.content_type, o.acl) for o in objects}


# ---------------------------------------------------------------------------------- id_partition

@pytest.mark.parametrize("record_id, expected", [
    (0, "000/000/000"),
    (1, "000/000/001"),
    (464472, "000/464/472"),
    (999999999, "999/999/999"),
    # from 1e9: "%012d" then complete groups of three
    (1000000000, "001/000/000/000"),          # 10 digits
    (1234567890, "001/234/567/890"),          # 10 digits
    (12345678901, "012/345/678/901"),         # 11 digits
    (123456789012, "123/456/789/012"),        # 12 digits
    (1234567890123, "123/456/789/012"),       # 13 digits: Ruby scan(/\d{3}/) drops the last "3"
    (12345678901234, "123/456/789/012"),      # 14 digits: "34" dropped
    (123456789012345, "123/456/789/012/345"),  # 15 digits
    (1234567890123456, "123/456/789/012/345"),  # 16 digits: "6" dropped
    (12345678901234567, "123/456/789/012/345"),  # 17 digits: "67" dropped
    (108892712797543112, "108/892/712/797/543/112"),  # 18-digit snowflake
    (110000000000000001, "110/000/000/000/000/001"),
])
def test_id_partition(record_id, expected):
    assert id_partition(record_id) == expected


def test_id_partition_accepts_numeric_strings_and_rejects_garbage():
    assert id_partition("42") == "000/000/042"
    with pytest.raises(ValueError):
        id_partition(-1)
    with pytest.raises(ValueError):
        id_partition(True)


# ---------------------------------------------------------------------------- cache/ prefix rule

@pytest.mark.parametrize("remote, version, expected", [
    (True, None, False),
    (True, 0, False),
    (True, 1, True),
    (True, 2, True),
    (False, 1, False),
    (False, None, False),
])
def test_cache_prefix_rule(remote, version, expected):
    assert L.has_cache_prefix(remote, version) is expected


def test_namedtuples_have_the_agreed_fields():
    assert MediaObject._fields == ("kind", "key", "content_type", "acl", "row_id")
    assert RowObjects._fields == ("kind", "row_id", "objects", "rejected")
    assert RowObjects("k", 1, ()).rejected == ()


# ---------------------------------------------------------------------- media attachment styles

MF = "media_attachments/files"


def media(rid, name, ctype, remote=True, version=1, suspended=False):
    return row_objects(MF, {"id": rid, "file_name": name, "content_type": ctype},
                       remote=remote, storage_schema_version=version, suspended=suspended)


def test_remote_jpeg_schema_1():
    got = media(464472, "abc.jpg", "image/jpeg")
    assert got.kind == MF and got.row_id == 464472
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/464/472/original/abc.jpg": ("image/jpeg", None),
        "cache/media_attachments/files/000/464/472/small/abc.jpg": ("image/jpeg", None),
    }
    assert [o.kind for o in got.objects] == [MF, MF]
    assert [o.row_id for o in got.objects] == [464472, 464472]


@pytest.mark.parametrize("version", [None, 0])
def test_remote_png_old_schema_has_no_cache_prefix(version):
    got = media(1, "x.png", "image/png", version=version)
    assert keyset(got.objects) == {
        "media_attachments/files/000/000/001/original/x.png": ("image/png", None),
        "media_attachments/files/000/000/001/small/x.png": ("image/png", None),
    }


def test_local_media_never_gets_cache_prefix():
    got = media(108892712797543112, "l.webp", "image/webp", remote=False, version=1)
    assert keyset(got.objects) == {
        "media_attachments/files/108/892/712/797/543/112/original/l.webp": ("image/webp", None),
        "media_attachments/files/108/892/712/797/543/112/small/l.webp": ("image/webp", None),
    }


def test_animated_gif_row_converted_to_mp4():
    # GifTranscoder rewrote the row: media.mp4 / video/mp4 -> original mp4 + small png
    got = media(2, "anim.mp4", "video/mp4")
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/002/original/anim.mp4": ("video/mp4", None),
        "cache/media_attachments/files/000/000/002/small/anim.png": ("image/png", None),
    }


def test_static_gif_keeps_gif_name_and_type():
    # original style has format mp4 but the original key is the stored name; a static GIF is
    # passed through unconverted, so both styles carry image/gif
    got = media(3, "still.gif", "image/gif")
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/003/original/still.gif": ("image/gif", None),
        "cache/media_attachments/files/000/000/003/small/still.png": ("image/gif", None),
    }


@pytest.mark.parametrize("ctype, name", [("image/heic", "p.heic"), ("image/heif", "p.heif"), ("image/avif", "p.avif")])
def test_heic_heif_avif_convert_to_jpeg(ctype, name):
    got = media(4, name, ctype)
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/004/original/" + name: ("image/jpeg", None),
        "cache/media_attachments/files/000/000/004/small/p.jpeg": ("image/jpeg", None),
    }


def test_heic_row_after_type_corrector():
    got = media(4, "p.jpeg", "image/jpeg")
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/004/original/p.jpeg": ("image/jpeg", None),
        "cache/media_attachments/files/000/000/004/small/p.jpeg": ("image/jpeg", None),
    }


@pytest.mark.parametrize("ctype", ["video/mp4", "video/ogg"])
def test_video_original_mp4_small_png(ctype):
    got = media(1234567890, "v.mp4", ctype)
    assert keyset(got.objects) == {
        "cache/media_attachments/files/001/234/567/890/original/v.mp4": ("video/mp4", None),
        "cache/media_attachments/files/001/234/567/890/small/v.png": ("image/png", None),
    }


@pytest.mark.parametrize("ctype", ["video/webm", "video/quicktime"])
def test_convertible_video(ctype):
    got = media(5, "clip.mp4", ctype)
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/005/original/clip.mp4": ("video/mp4", None),
        "cache/media_attachments/files/000/000/005/small/clip.png": ("image/png", None),
    }


@pytest.mark.parametrize("ctype", ["audio/mpeg", "audio/ogg", "audio/wave", "application/x-unknown"])
def test_audio_and_anything_else_original_mp3_only(ctype):
    got = media(6, "song.mp3", ctype)
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/006/original/song.mp3": ("audio/mpeg", None),
    }


def test_suspended_account_media_is_private():
    got = media(7, "s.png", "image/png", suspended=True)
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/007/original/s.png": ("image/png", "private"),
        "cache/media_attachments/files/000/000/007/small/s.png": ("image/png", "private"),
    }


def test_row_without_file_name_owns_nothing():
    assert media(8, None, None).objects == ()
    assert media(8, "", "image/png").objects == ()


def test_dotted_and_extensionless_names():
    got = media(9, "a.b.c.jpg", "image/jpeg")
    assert "cache/media_attachments/files/000/000/009/small/a.b.c.jpg" in keyset(got.objects)
    got = media(9, "noext", "video/mp4")
    assert keyset(got.objects) == {
        "cache/media_attachments/files/000/000/009/original/noext": ("video/mp4", None),
        "cache/media_attachments/files/000/000/009/small/noext.png": ("image/png", None),
    }


# ---------------------------------------------------------------------------------- thumbnails

def test_thumbnail_original_only():
    got = row_objects("media_attachments/thumbnails", {"id": 10, "file_name": "t.jpg", "content_type": "image/jpeg"},
                      remote=True, storage_schema_version=1)
    assert keyset(got.objects) == {"cache/media_attachments/thumbnails/000/000/010/original/t.jpg": ("image/jpeg", None)}


def test_thumbnail_without_version_column_is_version_0():
    got = row_objects("media_attachments/thumbnails", {"id": 10, "file_name": "t.png", "content_type": "image/png"},
                      remote=True, storage_schema_version=None)
    assert keyset(got.objects) == {"media_attachments/thumbnails/000/000/010/original/t.png": ("image/png", None)}


# ------------------------------------------------------------------------- avatars and headers

@pytest.mark.parametrize("kind", ["accounts/avatars", "accounts/headers"])
def test_gif_avatar_header_get_static_png(kind):
    got = row_objects(kind, {"id": 108892712797543112, "file_name": "av.gif", "content_type": "image/gif"},
                      remote=True, storage_schema_version=1)
    assert keyset(got.objects) == {
        "cache/%s/108/892/712/797/543/112/original/av.gif" % kind: ("image/gif", None),
        "cache/%s/108/892/712/797/543/112/static/av.png" % kind: ("image/png", None),
    }


@pytest.mark.parametrize("kind", ["accounts/avatars", "accounts/headers"])
def test_png_avatar_header_original_only_local(kind):
    got = row_objects(kind, {"id": 1, "file_name": "av.png", "content_type": "image/png"},
                      remote=False, storage_schema_version=1)
    assert keyset(got.objects) == {"%s/000/000/001/original/av.png" % kind: ("image/png", None)}


@pytest.mark.parametrize("kind", ["accounts/avatars", "accounts/headers"])
def test_suspended_avatar_header_stay_public(kind):
    """Mastodon's SuspendAccountService privatises media attachments only, never avatars/headers."""
    got = row_objects(kind, {"id": 2, "file_name": "a.jpg", "content_type": "image/jpeg"},
                      remote=True, storage_schema_version=0, suspended=True)
    assert keyset(got.objects) == {"%s/000/000/002/original/a.jpg" % kind: ("image/jpeg", None)}


def test_suspended_thumbnail_private():
    got = row_objects("media_attachments/thumbnails", {"id": 2, "file_name": "t.png", "content_type": "image/png"},
                      remote=False, storage_schema_version=1, suspended=True)
    assert keyset(got.objects) == {"media_attachments/thumbnails/000/000/002/original/t.png": ("image/png", "private")}


# ------------------------------------------------------------------------------------- emojis

def test_emoji_always_static_png():
    got = row_objects("custom_emojis/images", {"id": 11, "file_name": "blob.png", "content_type": "image/png"},
                      remote=True, storage_schema_version=1)
    assert keyset(got.objects) == {
        "cache/custom_emojis/images/000/000/011/original/blob.png": ("image/png", None),
        "cache/custom_emojis/images/000/000/011/static/blob.png": ("image/png", None),
    }
    got = row_objects("custom_emojis/images", {"id": 12, "file_name": "party.gif", "content_type": "image/gif"},
                      remote=False, storage_schema_version=None)
    assert keyset(got.objects) == {
        "custom_emojis/images/000/000/012/original/party.gif": ("image/gif", None),
        "custom_emojis/images/000/000/012/static/party.png": ("image/png", None),
    }


# ------------------------------------------------------------------------------ preview cards

def test_preview_card_gif_is_jpeg_content_under_gif_name():
    got = row_objects("preview_cards/images", {"id": 13, "file_name": "card.gif", "content_type": "image/gif"},
                      remote=True, storage_schema_version=1)
    assert keyset(got.objects) == {"cache/preview_cards/images/000/000/013/original/card.gif": ("image/jpeg", None)}


def test_preview_card_png_schema_null():
    got = row_objects("preview_cards/images", {"id": 1000000001, "file_name": "c.png", "content_type": "image/png"},
                      remote=True, storage_schema_version=None)
    assert keyset(got.objects) == {"preview_cards/images/001/000/000/001/original/c.png": ("image/png", None)}


def test_provider_icon_static_png():
    got = row_objects("preview_card_providers/icons", {"id": 14, "file_name": "i.ico", "content_type": "image/x-icon"})
    assert keyset(got.objects) == {
        "preview_card_providers/icons/000/000/014/original/i.ico": ("image/x-icon", None),
        "preview_card_providers/icons/000/000/014/static/i.png": ("image/png", None),
    }


# ------------------------------------------------------------------------------- site uploads

def test_site_upload_thumbnail_styles():
    got = row_objects("site_uploads/files", {"id": 1, "file_name": "t.jpg", "content_type": "image/jpeg",
                                             "var": "thumbnail"})
    assert keyset(got.objects) == {
        "site_uploads/files/000/000/001/original/t.jpg": ("image/jpeg", None),
        "site_uploads/files/000/000/001/@1x/t.png": ("image/png", None),
        "site_uploads/files/000/000/001/@2x/t.png": ("image/png", None),
    }


def test_site_upload_favicon_and_app_icon_styles():
    got = keyset(row_objects("site_uploads/files", {"id": 2, "file_name": "f.png", "content_type": "image/png",
                                                    "var": "favicon"}).objects)
    assert got == {
        "site_uploads/files/000/000/002/original/f.png": ("image/png", None),
        "site_uploads/files/000/000/002/ico/f.ico": ("image/vnd.microsoft.icon", None),
        "site_uploads/files/000/000/002/16/f.png": ("image/png", None),
        "site_uploads/files/000/000/002/32/f.png": ("image/png", None),
        "site_uploads/files/000/000/002/48/f.png": ("image/png", None),
    }
    app = keyset(row_objects("site_uploads/files", {"id": 3, "file_name": "a.png", "content_type": "image/png",
                                                    "var": "app_icon"}).objects)
    # apple 57 60 72 76 114 120 144 152 167 180 1024 + android 36 48 96 192 256 384 512 (72, 144 shared)
    sizes = ["57", "60", "72", "76", "114", "120", "144", "152", "167", "180", "1024",
             "36", "48", "96", "192", "256", "384", "512"]
    assert len(app) == 1 + 18
    for size in sizes:
        assert app["site_uploads/files/000/000/003/%s/a.png" % size] == ("image/png", None)


def test_site_upload_mascot_and_unknown_var_original_only():
    for var in ("mascot", "something_new", None):
        got = row_objects("site_uploads/files", {"id": 4, "file_name": "m.gif", "content_type": "image/gif", "var": var})
        assert keyset(got.objects) == {"site_uploads/files/000/000/004/original/m.gif": ("image/gif", None)}


# ------------------------------------------------------------------------------------ backups

def test_backup_always_private():
    got = row_objects("backups/dumps", {"id": 15, "file_name": "archive-2024.zip", "content_type": "application/zip"})
    assert keyset(got.objects) == {"backups/dumps/000/000/015/original/archive-2024.zip": ("application/zip", "private")}
    # even through the lower-level function with no acl asked for
    assert objects_for("backups/dumps", {"id": 15, "file_name": "x.zip", "content_type": "application/zip"})[0].acl == "private"


def test_missing_content_type_falls_back_to_extension():
    got = row_objects("accounts/avatars", {"id": 16, "file_name": "a.png", "content_type": None})
    assert keyset(got.objects) == {"accounts/avatars/000/000/016/original/a.png": ("image/png", None)}
    got = row_objects("accounts/avatars", {"id": 16, "file_name": "a.weird", "content_type": ""})
    assert keyset(got.objects) == {"accounts/avatars/000/000/016/original/a.weird": ("application/octet-stream", None)}


def test_unknown_kind_rejected():
    with pytest.raises(ValueError):
        objects_for("statuses/nothing", {"id": 1, "file_name": "x", "content_type": "x/y"})


# ---------------------------------------------------------------------- crafted file names

@pytest.mark.parametrize("name, reason", [
    ("../../../../../backups/dumps/000/000/001/original/b1.zip", "path separator"),
    ("a/b.png", "path separator"),
    ("a\\b.png", "path separator"),
    ("a\x00.png", "control character"),
    ("a\n.png", "control character"),
    ("..", "directory reference"),
    (".", "directory reference"),
    ("", "empty"),
])
def test_unsafe_file_names_are_rejected_and_reported(name, reason):
    assert reason in L.file_name_problem(name)
    with pytest.raises(L.UnsafeFileName):
        L.objects_for(L.ACCOUNT_AVATARS, {"id": 2, "file_name": name, "content_type": "image/png"})
    row = L.row_objects(L.ACCOUNT_AVATARS, {"id": 2, "file_name": name, "content_type": "image/png"}, remote=True,
                        storage_schema_version=1)
    assert row.objects == ()
    ((kind, key, why),) = row.rejected
    assert kind == L.ACCOUNT_AVATARS and key.startswith("cache/accounts/avatars/000/000/002/original/")
    assert reason in why


@pytest.mark.parametrize("name", ["..png", "a..b.jpg", "...", ".hidden.png", "ünïcode.png", "a b.png"])
def test_odd_but_plain_names_are_kept(name):
    assert L.file_name_problem(name) is None
    row = L.row_objects(L.ACCOUNT_AVATARS, {"id": 2, "file_name": name, "content_type": "image/png"})
    assert row.rejected == () and row.objects[0].key == "accounts/avatars/000/000/002/original/" + name
