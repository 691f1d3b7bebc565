"""The checkers of the values rendered into nginx's configuration (plugins/module_utils/nginx/values.py,
issue 20 finding 6): every kind refuses what would become nginx syntax, a trailing newline included."""

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx import values as nv

# What a hostile value appends to a good one to break out of where the template puts it.
HOSTILE_SUFFIXES = ["\n", "\nreturn 200 x;", '"', '") { return 200; } #', ";", "; return 200 x", "{", "}",
                    "$host", "${host}", " ", " x", "\t", "\r", "\\", "#", "\x00", "\x85", "\u2028"]

GOOD = {
    "dns_name": ["example.social", "s3.example.com", "a-b.c-d.example", "xn--bcher-kva.example"],
    "path": ["/var/cache/fediverse-media/fediverse_media", "/etc/letsencrypt/live/s3.example.com/fullchain.pem",
             "/home/mastodon/live/public/system", "/srv/médias"],
    "address": ["1.1.1.1", "127.0.0.1:5353", "[2606:4700::1111]", "[::1]:53", "dns.example"],
    "listen_address": ["127.0.0.1", "[::]", "host.example"],
    "port": ["80", 443, "65535"],
    "header_name": ["X-Content-Type-Options", "Content-Security-Policy"],
    "header_value": ["nosniff", "default-src 'none'; form-action 'none'", "a # b", 1, 1.5],
    "cors_origin": ["*", "null", "https://example.social", "http://a.example:8443"],
    "size": ["20g", "500m", "10m", 1024],
    "time": ["48h", "5m", "100s", "500ms", 60],
    "cache_levels": ["1", "1:2", "1:2:2", 1],
    "zone_name": ["fediverse_media", "m"],
    "bucket": ["media-bucket", "abc"],
    "s3_endpoint": ["https://ewr1.vultrobjects.com", "ewr1", "s3.localhost:8443", "https://s3.example/"],
    "directory_path": ["/storage/", "/a/b_c-d/"],
}


@pytest.mark.parametrize("kind, value", [(k, v) for k, values in GOOD.items() for v in values])
def test_good_values_pass(kind, value):
    assert nv.is_valid(value, kind)


@pytest.mark.parametrize("kind, value", [(k, v) for k, values in GOOD.items() for v in values[:1]])
@pytest.mark.parametrize("suffix", HOSTILE_SUFFIXES)
def test_hostile_suffixes_are_refused(kind, value, suffix):
    text = str(value) + suffix
    if kind == "header_value" and suffix in (" ", " x", "#", "; return 200 x", ";"):
        # Inside double quotes a space, ; or # is text, not syntax (Mastodon's CSP value holds "; ").
        assert nv.is_valid(text, kind)
        return
    assert not nv.is_valid(text, kind), (kind, text)


@pytest.mark.parametrize("value", [
    'example.com") { return 200; } #', "example.com\n", "example.com\nreturn 200;", "example.com;",
    "exa mple.com", "example", "-a.example", "a" * 64 + ".example", ("a" * 62 + ".") * 4 + "example",
    "example.com.", "*.example.com", "ex$ample.com", "exämple.com", ""])
def test_dns_name_refuses(value):
    assert not nv.is_valid(value, "dns_name")


@pytest.mark.parametrize("kind", sorted(nv.KINDS))
@pytest.mark.parametrize("value", [None, True, False, ["/a"], {"a": "b"}, b"/a"])
def test_non_scalars_are_refused(kind, value):
    assert not nv.is_valid(value, kind)


@pytest.mark.parametrize("kind, value", [
    ("path", "relative/path"), ("path", "/a/../b c"), ("path", "/a'b"), ("port", "0"), ("port", "65536"),
    ("header_value", "a\"b"), ("header_value", "a\\b"), ("header_value", "a\x7fb"),
    ("cors_origin", "https://a.example/"), ("cors_origin", "ftp://a.example"), ("address", "1.1.1.1 valid=1s"),
    ("directory_path", "/storage"), ("directory_path", "/"), ("zone_name", "Zone"), ("bucket", "a.b.c"),
])
def test_other_refusals(kind, value):
    assert not nv.is_valid(value, kind)


def test_unknown_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown kind"):
        nv.is_valid("x", "nope")


def test_refused_lists_the_bad_items_in_order():
    assert nv.refused(["1.1.1.1", "1.1.1.1; x", "[::1]", "a\n"], "address") == ["1.1.1.1; x", "a\n"]
    assert nv.refused("example.social", "dns_name") == []
    assert nv.refused("example.social\n", "dns_name") == ["example.social\n"]
    assert nv.refused([], "path") == []
