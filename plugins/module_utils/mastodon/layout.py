# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mastodon's media key layout: a database row -> the objects it owns.

Pure functions, no I/O. Everything here mirrors what Mastodon (kt-paperclip) does when it
writes a file, so that a copy made by this collection is indistinguishable from one Mastodon
made itself. Read from the Mastodon sources (4.x, main branch of 2025):

* ``config/initializers/paperclip.rb``: path ``:prefix_url:class/:attachment/:id_partition/
  :style/:filename`` (on disk the same relative path below ``PAPERCLIP_ROOT_PATH``, i.e.
  ``public/system``). ``:prefix_url`` is ``cache/`` only when the record responds to
  ``local?``, is not local, and ``<attachment>_storage_schema_version >= 1``
  (``lib/paperclip/attachment_extensions.rb``: a NULL version reads as 0).
* The ``:filename`` interpolation is overridden by Mastodon: for the ``original`` style it is
  ``X_file_name`` *verbatim*; for every other style it is ``basename(X_file_name, '.*')`` +
  ``.`` + (the style's ``format`` or, without one, the extension of ``X_file_name``).
  So the original's key never gets the style format: the processors that change the format of
  an original (``TypeCorrector``, ``GifTranscoder``, the audio ``content_type`` option) rename
  ``X_file_name`` and rewrite ``X_content_type`` in the database at the same time.
* ``:id_partition`` (Paperclip interpolations): ``"%09d" % id`` cut in groups of 3 below
  1_000_000_000, else ``"%012d" % id`` cut in groups of 3 with Ruby's ``scan(/\\d{3}/)``:
  only complete groups are kept, so an 18-digit snowflake id gives 6 groups and a 13-digit id
  gives 4 groups (its last digit is dropped, exactly as Paperclip does).
* Styles: ``MediaAttachment.file_styles`` (content type of the stored file),
  ``THUMBNAIL_STYLES``, ``Account::Avatar``/``Account::Header`` (``static`` png for gif),
  ``CustomEmoji`` (``static`` png always), ``PreviewCard.image_styles`` (original, format jpg
  for gif), ``PreviewCardProvider`` (``static`` png), ``SiteUpload::STYLES`` (per ``var``),
  ``Backup`` (original only, always private).

Content-Type: kt-paperclip's S3 storage sends the type *detected from the processed file* of
each style. Derived from the processors, that is:

* a style with a ``format`` -> the MIME type of that format (png -> image/png, jpg/jpeg ->
  image/jpeg, mp4 -> video/mp4, mp3 -> audio/mpeg, ico -> image/vnd.microsoft.icon);
  for media originals this equals the database's ``file_content_type``, which the processors
  rewrite (heic -> image/jpeg, webm/quicktime/animated gif -> video/mp4, audio -> audio/mpeg);
* a preview card whose stored type is ``image/gif`` is converted to JPEG (format jpg) but
  keeps its ``.gif`` file name: Content-Type ``image/jpeg``;
* a media attachment whose stored type is still ``image/gif`` is a *static* GIF:
  ``GifTranscoder`` converts only animated GIFs (and then rewrites the row to ``.mp4`` /
  ``video/mp4``), a static one is passed through unchanged for every style, so all its styles
  are GIF bytes: Content-Type ``image/gif`` (``small`` still lives at ``.png``);
* a style without a format -> the database's ``X_content_type``.

``file_meta``: not used to choose styles. Paperclip builds paths from the content type alone,
``file_meta`` is absent or partial on old and remote rows, and a style missing on disk is
better reported (as a missing source) than silently skipped. Audio has no ``small`` style in
Mastodon's style table, so none is produced here either.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import collections
import posixpath

MediaObject = collections.namedtuple("MediaObject", "kind key content_type acl row_id")
# ``rejected``: ``(kind, key, reason)`` of the objects a row would own but whose stored file name
# is unsafe (see ``file_name_problem``); reported by the copy, never copied.
RowObjects = collections.namedtuple("RowObjects", "kind row_id objects rejected", defaults=((),))


class UnsafeFileName(ValueError):
    """A ``*_file_name`` from the database that Paperclip never writes (a path, ``..``, NUL)."""


MEDIA_FILES = "media_attachments/files"
MEDIA_THUMBNAILS = "media_attachments/thumbnails"
ACCOUNT_AVATARS = "accounts/avatars"
ACCOUNT_HEADERS = "accounts/headers"
EMOJI_IMAGES = "custom_emojis/images"
PREVIEW_CARD_IMAGES = "preview_cards/images"
PROVIDER_ICONS = "preview_card_providers/icons"
SITE_UPLOADS = "site_uploads/files"
BACKUP_DUMPS = "backups/dumps"

# Every kind, in the order the enumeration walks them.
KINDS = (
    MEDIA_FILES,
    MEDIA_THUMBNAILS,
    ACCOUNT_AVATARS,
    ACCOUNT_HEADERS,
    EMOJI_IMAGES,
    PREVIEW_CARD_IMAGES,
    PROVIDER_ICONS,
    SITE_UPLOADS,
    BACKUP_DUMPS,
)

PRIVATE = "private"
CACHE_PREFIX = "cache/"
ID_PARTITION_LIMIT = 1000000000
DEFAULT_CONTENT_TYPE = "application/octet-stream"

# MIME type of the file a processor writes for a style format.
FORMAT_CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "mp4": "video/mp4",
    "mp3": "audio/mpeg",
    "ico": "image/vnd.microsoft.icon",
    "gif": "image/gif",
    "webp": "image/webp",
}

# Fallback when a row has no content type: guess from the file name's extension
# (a fixed table, so the result does not depend on the host's /etc/mime.types).
EXTENSION_CONTENT_TYPES = dict(FORMAT_CONTENT_TYPES)
EXTENSION_CONTENT_TYPES.update({
    "jpe": "image/jpeg",
    "heic": "image/heic",
    "heif": "image/heif",
    "avif": "image/avif",
    "webm": "video/webm",
    "mov": "video/quicktime",
    "m4v": "video/mp4",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "ogv": "video/ogg",
    "wav": "audio/wave",
    "flac": "audio/flac",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "m4a": "audio/mp4",
    "zip": "application/zip",
})

# MediaAttachment (app/models/media_attachment.rb)
MEDIA_IMAGE_MIME_TYPES = ("image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp", "image/avif")
MEDIA_IMAGE_CONVERTIBLE_MIME_TYPES = ("image/heic", "image/heif", "image/avif")
MEDIA_VIDEO_MIME_TYPES = ("video/webm", "video/mp4", "video/quicktime", "video/ogg")
MEDIA_VIDEO_CONVERTIBLE_MIME_TYPES = ("video/webm", "video/quicktime")

ORIGINAL = "original"

# Style tables: tuples of (style, format or None), original first.
VIDEO_CONVERTED_STYLES = ((ORIGINAL, "mp4"), ("small", "png"))
IMAGE_CONVERTED_STYLES = ((ORIGINAL, "jpeg"), ("small", "jpeg"))
IMAGE_STYLES = ((ORIGINAL, None), ("small", None))
VIDEO_STYLES = ((ORIGINAL, "mp4"), ("small", "png"))
AUDIO_STYLES = ((ORIGINAL, "mp3"),)
ORIGINAL_ONLY = ((ORIGINAL, None),)
ORIGINAL_AND_STATIC = ((ORIGINAL, None), ("static", "png"))

# SiteUpload::STYLES (app/models/site_upload.rb); original is always kept as well.
_FAVICON_SIZES = (16, 32, 48)
_APPLE_ICON_SIZES = (57, 60, 72, 76, 114, 120, 144, 152, 167, 180, 1024)
_ANDROID_ICON_SIZES = (36, 48, 72, 96, 144, 192, 256, 384, 512)
_APP_ICON_SIZES = tuple(collections.OrderedDict.fromkeys(_APPLE_ICON_SIZES + _ANDROID_ICON_SIZES))
SITE_UPLOAD_STYLES = {
    "app_icon": tuple((str(size), "png") for size in _APP_ICON_SIZES),
    "favicon": (("ico", "ico"),) + tuple((str(size), "png") for size in _FAVICON_SIZES),
    "thumbnail": (("@1x", "png"), ("@2x", "png")),
    "mascot": (),
}


def file_name_problem(file_name):
    """Why a stored ``*_file_name`` is unsafe as the last component of a key, or None.

    Paperclip stores a plain file name (its cleaner replaces ``/`` and ``\\``): a name that
    is empty, ``.``/``..``, or holds ``/``, ``\\``, NUL or another control character is
    not Mastodon's and could make a key (or a path below ``public/system``) point elsewhere,
    e.g. into ``backups/dumps``. Remote servers choose some of these names.
    """
    if file_name is None or file_name == "":
        return "empty file name"
    if file_name in (".", ".."):
        return "file name %r is a directory reference" % file_name
    if "/" in file_name or "\\" in file_name:
        return "file name %r holds a path separator" % file_name
    if any(ord(char) < 32 or ord(char) == 127 for char in file_name):
        return "file name %r holds a NUL or control character" % file_name
    return None


def id_partition(record_id):
    """Paperclip's ``:id_partition`` for an integer id.

    ``"%09d"`` below 1e9 (3 groups), ``"%012d"`` from 1e9 on, cut in complete groups of 3
    digits (Ruby ``scan(/\\d{3}/)``: trailing digits that do not fill a group are dropped).
    """
    if isinstance(record_id, bool):
        raise ValueError("record id must be an integer, got %r" % (record_id,))
    record_id = int(record_id)
    if record_id < 0:
        raise ValueError("record id must not be negative, got %d" % record_id)
    digits = ("%09d" if record_id < ID_PARTITION_LIMIT else "%012d") % record_id
    return "/".join(digits[i:i + 3] for i in range(0, len(digits) - len(digits) % 3, 3))


def has_cache_prefix(remote, storage_schema_version):
    """``cache/`` only for remote records whose storage schema version is >= 1 (NULL = 0)."""
    return bool(remote) and (storage_schema_version or 0) >= 1


def media_file_styles(content_type):
    """``MediaAttachment.file_styles``: the styles of a media file, from its stored type."""
    if content_type == "image/gif" or content_type in MEDIA_VIDEO_CONVERTIBLE_MIME_TYPES:
        return VIDEO_CONVERTED_STYLES
    if content_type in MEDIA_IMAGE_CONVERTIBLE_MIME_TYPES:
        return IMAGE_CONVERTED_STYLES
    if content_type in MEDIA_IMAGE_MIME_TYPES:
        return IMAGE_STYLES
    if content_type in MEDIA_VIDEO_MIME_TYPES:
        return VIDEO_STYLES
    return AUDIO_STYLES


def styles_for(kind, content_type, var=None):
    """The (style, format) pairs Mastodon writes for one attachment of ``kind``."""
    if kind == MEDIA_FILES:
        return media_file_styles(content_type)
    if kind in (ACCOUNT_AVATARS, ACCOUNT_HEADERS):
        return ORIGINAL_AND_STATIC if content_type == "image/gif" else ORIGINAL_ONLY
    if kind in (EMOJI_IMAGES, PROVIDER_ICONS):
        return ORIGINAL_AND_STATIC
    if kind == PREVIEW_CARD_IMAGES:
        return ((ORIGINAL, "jpg"),) if content_type == "image/gif" else ORIGINAL_ONLY
    if kind == SITE_UPLOADS:
        return ORIGINAL_ONLY + SITE_UPLOAD_STYLES.get(var or "", ())
    if kind in (MEDIA_THUMBNAILS, BACKUP_DUMPS):
        return ORIGINAL_ONLY
    raise ValueError("unknown kind %r" % (kind,))


def _split_name(file_name):
    """Ruby's ``File.basename(name, '.*')`` and ``File.extname(name)`` without the dot."""
    base, ext = posixpath.splitext(posixpath.basename(file_name))
    return base, ext[1:]


def guess_content_type(file_name):
    """Content type from a file name's extension (fixed table), or application/octet-stream."""
    ext = _split_name(file_name or "")[1].lower()
    return EXTENSION_CONTENT_TYPES.get(ext, DEFAULT_CONTENT_TYPE)


def style_content_type(kind, style, fmt, content_type, file_name):
    """The Content-Type Mastodon sends for one style (see the module docstring)."""
    if kind == MEDIA_FILES and content_type == "image/gif":
        return "image/gif"  # static GIF: passed through unconverted for every style
    if fmt:
        return FORMAT_CONTENT_TYPES.get(fmt, DEFAULT_CONTENT_TYPE)
    return content_type or guess_content_type(file_name)


def objects_for(kind, row, has_cache_prefix=False, acl=None):
    """Every object one attachment of a row owns, as a tuple of MediaObject.

    ``row`` is a mapping with ``id``, ``file_name``, ``content_type`` and, for site uploads,
    ``var``. A row without a file name (NULL) owns nothing (empty tuple); an unsafe one
    (``file_name_problem``) raises ``UnsafeFileName``. ``acl`` is None (use the
    copy's acl option) or ``"private"``; backups are always private.
    """
    file_name = row.get("file_name")
    if file_name is None:
        return ()
    problem = file_name_problem(file_name)
    if problem:
        raise UnsafeFileName(problem)
    record_id = row["id"]
    content_type = row.get("content_type") or None
    if kind == BACKUP_DUMPS:
        acl = PRIVATE
    # The partition and the name's parts are computed once per row (hot path: 200k+ rows).
    prefix = "%s%s/%s/" % (CACHE_PREFIX if has_cache_prefix else "", kind, id_partition(record_id))
    base, ext = _split_name(file_name)
    objects = []
    for style, fmt in styles_for(kind, content_type, row.get("var")):
        if style == ORIGINAL:
            filename = file_name
        else:
            filename = ".".join(part for part in (base, fmt or ext) if part)
        objects.append(MediaObject(kind, prefix + style + "/" + filename,
                                   style_content_type(kind, style, fmt, content_type, file_name),
                                   acl, record_id))
    return tuple(objects)


# What Mastodon makes private when it suspends an account: SuspendAccountService#privatize_media_attachments!
# puts ``acl: 'private'`` on every style of every attachment of the account's *media attachments*
# (MediaAttachment.attachment_definitions: file and thumbnail) and nothing else.
# Avatars, headers, emojis and preview cards stay public (UnsuspendAccountService only makes media
# attachments public again, so a private avatar would stay broken after an unsuspension).
SUSPENDED_PRIVATE_KINDS = frozenset((MEDIA_FILES, MEDIA_THUMBNAILS))


def row_objects(kind, row, remote=False, storage_schema_version=None, suspended=False):
    """RowObjects for one row: applies the ``cache/`` rule and Mastodon's private rules.

    Private: backups always; media attachments (files and thumbnails) of suspended accounts.
    Avatars and headers of suspended accounts stay public, like Mastodon leaves them.
    """
    acl = PRIVATE if (kind == BACKUP_DUMPS or (suspended and kind in SUSPENDED_PRIVATE_KINDS)) else None
    cache = has_cache_prefix(remote, storage_schema_version)
    try:
        objects = objects_for(kind, row, cache, acl)
    except UnsafeFileName as exc:
        # Reported (never copied) under the key the name would have given the original.
        key = "%s%s/%s/%s/%r" % (CACHE_PREFIX if cache else "", kind, id_partition(row["id"]), ORIGINAL,
                                 row.get("file_name"))
        return RowObjects(kind=kind, row_id=row["id"], objects=(), rejected=((kind, key, str(exc)),))
    return RowObjects(kind=kind, row_id=row["id"], objects=objects)
