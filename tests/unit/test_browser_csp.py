"""tests/browser_support.py: the Content-Security-Policy Mastodon sends (the media_hosts generation), built in Python as
config/initializers/content_security_policy.rb and app/lib/content_security_policy.rb build it, for what the
migration writes in .env.production (S3_ALIAS_HOST per proxy mode); and the real media the browser tests use."""

import struct
import zlib

import pytest

from tests.browser_support import MP4, mastodon_csp, mastodon_media_hosts, png

DOMAIN = "mastodon.test"
FIXED = ("base-uri 'none'; default-src 'none'; frame-ancestors 'none'; font-src 'self' https://mastodon.test; "
         "img-src 'self' data: blob: {media}; style-src 'self' https://mastodon.test; "
         "media-src 'self' data: {media}; manifest-src 'self' https://mastodon.test; form-action 'self'; "
         "child-src 'self' blob: https://mastodon.test; worker-src 'self' blob: https://mastodon.test; "
         "connect-src 'self' data: blob: {media} wss://mastodon.test; "
         "script-src 'self' https://mastodon.test 'wasm-unsafe-eval'; frame-src 'self' https:")


@pytest.mark.parametrize("alias, media", [
    # subdomain mode: its own origin, which only the media host source allows
    ("s3.mastodon.test", "https://mastodon.test https://s3.mastodon.test"),
    # directory and system modes: a path of the app's origin (host_to_url ends it with "/")
    ("mastodon.test/storage", "https://mastodon.test https://mastodon.test/storage/"),
    ("mastodon.test/system/", "https://mastodon.test https://mastodon.test/system/"),
])
def test_mastodon_csp_per_proxy_mode(alias, media):
    env = {"S3_ENABLED": "true", "S3_ALIAS_HOST": alias, "S3_HOSTNAME": "ewr1.vultrobjects.com"}
    assert mastodon_csp(env, DOMAIN) == FIXED.format(media=media)


def test_mastodon_media_hosts_order_and_fallbacks():
    # S3_ALIAS_HOST first, then S3_CLOUDFRONT_HOST, AZURE_ALIAS_HOST, S3_HOSTNAME; blank values skipped.
    assert mastodon_media_hosts({"S3_ALIAS_HOST": " ", "S3_CLOUDFRONT_HOST": "cdn.example"}, DOMAIN) == \
        ["https://mastodon.test", "https://cdn.example"]
    assert mastodon_media_hosts({"S3_HOSTNAME": "ewr1.vultrobjects.com"}, DOMAIN) == \
        ["https://mastodon.test", "https://ewr1.vultrobjects.com"]
    # No media host at all: the assets host alone; PAPERCLIP_ROOT_URL and EXTRA_MEDIA_HOSTS appended.
    assert mastodon_media_hosts({"PAPERCLIP_ROOT_URL": "/system", "EXTRA_MEDIA_HOSTS": "https://a.example, https://b.example"},
                                DOMAIN) == ["https://mastodon.test", "https://mastodon.test/system/", "https://a.example",
                                            "https://b.example"]
    # Without the media host (the negative browser test): the media source is gone from every directive.
    csp = mastodon_csp({"S3_ALIAS_HOST": "s3.mastodon.test"}, DOMAIN, media_hosts=["https://mastodon.test"])
    assert "s3.mastodon.test" not in csp and csp == FIXED.format(media="https://mastodon.test")


def test_the_media_are_real():
    data = png(2, 2, (255, 0, 0, 255))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (2, 2)
    idat_len = struct.unpack(">I", data[33:37])[0]
    assert zlib.decompress(data[41:41 + idat_len]) == (b"\x00" + b"\xff\x00\x00\xff" * 2) * 2
    assert MP4[4:8] == b"ftyp" and b"avc1" in MP4 and len(MP4) < 4096
