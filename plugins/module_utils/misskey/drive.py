# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Moving Misskey's local drive files into the bucket: pure logic (keys, headers, row changes).

Facts read from Misskey's sources (2025.x ``core/DriveService.ts``, ``core/InternalStorageService.ts``,
``server/FileServerService.ts``, ``models/DriveFile.ts``, ``misc/content-disposition.ts``,
``misc/correct-filename.ts``, ``const.ts``; v12 ``services/drive/add-file.ts``):

* Local files live flat in ``files/``; the name is the access key (``<uuid>``, ``thumbnail-<uuid>``,
  ``webpublic-<uuid>``); ``url = ${config.url}/files/<key>``. All three keys are set for every local
  file; ``thumbnailUrl``/``webpublicUrl`` are NULL when the variant was not generated.
* In the bucket Misskey deletes by ``accessKey``, so after the move ``accessKey == object key``
  (``${prefix}/<old key>``) and ``url = ${baseUrl}/${key}``.
* Upload headers (``DriveService.upload``): Content-Type with ``image/apng`` as ``image/png`` and any
  type not in ``FILE_TYPE_BROWSERSAFE`` as ``application/octet-stream``;
  ``Cache-Control: max-age=31536000, immutable``; ``Content-Disposition`` (``inline``, jshttp
  ``content-disposition`` with Misskey's fallback) with the file name each version passes, per
  generation (``headers_for``; the versions and the sources read are in misskey/fork.py): no name
  for the thumbnail up to 13.14.1, ``<name>.thumbnail.<ext>`` from 13.14.2 and in Sharkey; ACL
  ``public-read`` when ``objectStorageSetPublicRead``.

Everything here is plain Python, unit-tested in tests/unit/test_misskey_drive.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re
from urllib.parse import quote

CACHE_CONTROL = "max-age=31536000, immutable"
OCTET_STREAM = "application/octet-stream"

# const.ts (2025.x; the older lists are subsets, plus audio/flac and audio/wav since 13.12).
FILE_TYPE_BROWSERSAFE = (
    "image/png", "image/gif", "image/jpeg", "image/webp", "image/avif", "image/apng", "image/bmp", "image/tiff",
    "image/x-icon",
    "audio/opus", "video/ogg", "audio/ogg", "application/ogg",
    "video/quicktime", "video/mp4", "audio/mp4", "video/x-m4v", "audio/x-m4a", "video/3gpp", "video/3gpp2",
    "video/mpeg", "audio/mpeg",
    "video/webm", "audio/webm",
    "audio/aac",
    "audio/flac", "audio/wav", "audio/x-flac", "audio/vnd.wave",
)

# DriveService.save: extension from the name, else from these types.
_TYPE_EXT = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp", "image/avif": ".avif",
             "image/apng": ".apng", "image/vnd.mozilla.apng": ".apng"}
# ImageProcessingService: the ext of a generated variant, by its type.
_VARIANT_EXT = {"image/jpeg": "jpg", "image/webp": "webp", "image/png": "png", "image/avif": "avif"}

VARIANTS = ("original", "thumbnail", "webpublic")
# variant -> (access key column, url column)
VARIANT_COLUMNS = {
    "original": ("accessKey", "url"),
    "thumbnail": ("thumbnailAccessKey", "thumbnailUrl"),
    "webpublic": ("webpublicAccessKey", "webpublicUrl"),
}
# A local access key: a uuid, optionally with the variant's prefix (nothing else may name a file).
LOCAL_KEY = re.compile(r"^(?:thumbnail-|webpublic-)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}$")


class DriveMoveError(ValueError):
    """Bad input or state, with a message an admin can act on."""


# --- headers ------------------------------------------------------------------------------------

def upload_type(content_type):
    """The Content-Type Misskey uploads with."""
    content_type = (content_type or "").strip()
    if content_type == "image/apng":
        content_type = "image/png"
    return content_type if content_type in FILE_TYPE_BROWSERSAFE else OCTET_STREAM


def original_ext(name, content_type):
    """DriveService.save's ``ext`` (with its dot; '' for types that are not browser-safe)."""
    match = re.search(r"\.([a-zA-Z0-9_-]+)$", name or "")
    ext = match.group(0) if match else ""
    if not ext:
        ext = _TYPE_EXT.get(content_type, "")
    return ext if content_type in FILE_TYPE_BROWSERSAFE else ""


_EXT_AT_END = re.compile(r"\.[0-9a-zA-Z]+$")
_SKIP_EXTS = (".gz", ".tar", ".tgz", ".bz2", ".xz", ".zip", ".7z")


def correct_filename(filename, ext):
    """misc/correct-filename.ts (2025.x)."""
    dot_ext = (ext if ext.startswith(".") else "." + ext) if ext else ".unknown"
    match = _EXT_AT_END.search(filename)
    if not match:
        return filename + dot_ext
    filename_ext = match.group(0).lower()
    if (ext is None or filename_ext == dot_ext or (dot_ext == ".jpg" and filename_ext == ".jpeg")
            or (dot_ext == ".tif" and filename_ext == ".tiff") or (dot_ext == ".exe" and filename_ext == ".dll")
            or dot_ext in _SKIP_EXTS):
        return filename
    return filename + dot_ext


def _basename(name):
    stripped = name.rstrip("/")
    return stripped.rsplit("/", 1)[-1] if stripped else name


def content_disposition(filename, disposition_type="inline"):
    """misc/content-disposition.ts: jshttp ``content-disposition`` with fallback ``[^\\w.-]`` -> ``_``."""
    name = _basename(filename)
    fallback = _basename(re.sub(r"[^A-Za-z0-9_.-]", "_", filename))
    is_quoted_string = bool(re.match(r"^[\x20-\x7e\x80-\xff]+$", name))
    has_fallback = fallback != name
    params = []
    if is_quoted_string or has_fallback:
        value = fallback if has_fallback else name
        params.append('filename="%s"' % re.sub(r'([\\"])', r"\\\1", value))
    if has_fallback or not is_quoted_string or re.search(r"%[0-9A-Fa-f]{2}", name):
        params.append("filename*=UTF-8''%s" % quote(name.encode("utf-8"), safe="!-._~"))
    return "; ".join([disposition_type] + params)


def sniff_image_type(head):
    """The type of a generated variant (its type is not stored for thumbnails) from its first bytes."""
    if head[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    return None


def headers_for(variant, row, head=b"", public_read=False, generation="named"):
    """The PutObject arguments (besides Bucket/Key/Body) Misskey would have used for this variant.

    ``generation`` (module_utils/misskey/fork.py ``upload_headers_of``) is the version's upload code:
    ``v12`` (11.x-13.8: the names as stored, no name for the thumbnail), ``13.9`` (correctFilename for
    the original and webpublic, no name for the thumbnail), ``named`` (13.14.2+, CalVer, Sharkey: the
    original's name as stored, webpublic corrected, thumbnail ``<name>.thumbnail.<ext>``).
    """
    if generation not in ("v12", "13.9", "named"):
        raise DriveMoveError("unknown upload header generation %r" % (generation,))
    name = row.get("name") or ""
    filename, ext = None, None
    if variant == "original":
        content_type = row.get("type") or OCTET_STREAM
        filename = name
        if generation == "13.9":
            ext = original_ext(name, content_type)
    elif variant == "webpublic":
        content_type = row.get("webpublicType") or sniff_image_type(head) or OCTET_STREAM
        filename = name
        if generation != "v12":
            ext = _VARIANT_EXT.get(content_type)
    else:
        content_type = sniff_image_type(head) or "image/webp"
        if generation == "named":
            filename = name + ".thumbnail" if name else None
            ext = _VARIANT_EXT.get(content_type)
    disposition = content_disposition(correct_filename(filename, ext) if ext else filename) if filename else None
    args = {"ContentType": upload_type(content_type), "CacheControl": CACHE_CONTROL}
    if disposition:
        args["ContentDisposition"] = disposition
    if public_read:
        args["ACL"] = "public-read"
    return args


# --- keys and row changes -----------------------------------------------------------------------

def object_key(prefix, local_key):
    prefix = (prefix or "").strip("/")
    return "%s/%s" % (prefix, local_key) if prefix else local_key


def object_url(base_url, key):
    return "%s/%s" % (base_url.rstrip("/"), key)


def local_url(instance_url, local_key):
    return "%s/files/%s" % (instance_url.rstrip("/"), local_key)


def plan_row(row, prefix, base_url, instance_url):
    """What moving one drive_file row means.

    Returns ``(objects, updates, url_map)``: ``objects`` = ``[(variant, local key, object key)]``
    for the original and the variants whose URL is set; ``updates`` = ``{column: new value}`` for
    drive_file (access keys, URLs, ``storedInternal``); ``url_map`` = ``{old URL: new URL}`` for
    rewriting the URLs copied elsewhere. Raises DriveMoveError for a row that does not look like a
    local file (so that nothing is done with it).
    """
    objects = []
    updates = {}
    url_map = {}
    for variant in VARIANTS:
        key_column, url_column = VARIANT_COLUMNS[variant]
        local_key = row.get(key_column)
        old_url = row.get(url_column)
        if variant != "original" and not old_url:
            continue  # not generated; the key stays (Misskey never serves it)
        if not local_key or not LOCAL_KEY.match(local_key):
            raise DriveMoveError("drive_file %s: %s %r is not a local file name" % (row.get("id"), key_column, local_key))
        if variant == "original" and not old_url:
            raise DriveMoveError("drive_file %s has no url" % row.get("id"))
        key = object_key(prefix, local_key)
        new_url = object_url(base_url, key)
        objects.append((variant, local_key, key))
        updates[key_column] = key
        updates[url_column] = new_url
        url_map[old_url] = new_url
        expected_local = local_url(instance_url, local_key) if instance_url else None
        if expected_local and old_url != expected_local:
            # A URL of another shape (e.g. the instance URL changed): rewritten in the row, and only
            # exact copies of it elsewhere.
            url_map.setdefault(expected_local, new_url)
    updates["storedInternal"] = False
    return objects, updates, url_map


def mask_row(row):
    """A row for a diff sample (no secrets in drive_file; kept for symmetry with meta)."""
    return dict((key, value) for key, value in row.items() if key not in ("requestHeaders", "requestIp"))


def move_diff(result, check_mode=False):
    """The --diff of a move: its counts in the headers, a sample of row changes (drive_file columns
    only: no secrets) as before/after."""
    stats = result["stats"]
    counts = ("%d local files of local users: %d %s, %d missing on disk, %d refused, %d changed meanwhile"
              % (stats["candidates"], stats["moved"], "to move" if check_mode else "moved", stats["missing"],
                 stats["refused"], stats["changed_meanwhile"]))
    if stats.get("unsafe"):
        counts += ", %d unsafe" % stats["unsafe"]
    if not check_mode:
        counts += "; %d objects uploaded, %d copied URLs rewritten" % (stats["objects_uploaded"],
                                                                       stats["dependents_rewritten"])
    sample = result["sample"]
    return dict(before_header="drive_file (%s; sample of %d rows)" % (counts, len(sample)),
                after_header="drive_file in %s/%s" % (result["base_url"], (result["prefix"] or "").strip("/")),
                before=dict((s["id"], mask_row(s["before"])) for s in sample),
                after=dict((s["id"], mask_row(s["after"])) for s in sample))
