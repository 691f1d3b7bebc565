"""The values the Misskey /files/ fallback renders into nginx (plugins/module_utils/misskey/files_fallback.py,
issue 20 finding 5): whole-value matches, so a final newline or any nginx syntax is refused."""

import pytest
from ansible_collections.fediverse.object_storage.plugins.filter.misskey_files_fallback import FilterModule
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.files_fallback import fallback_values

BASE, PREFIX, UPSTREAM, SNIPPET = ("https://s3.example.net/", "misskey", "http://127.0.0.1:3000",
                                   "/etc/nginx/snippets/fediverse-misskey-files.conf")
HOSTILE_TAILS = ["\n", "\n    return 200 pwned;", "\r", "\r\nreturn 200;", ";", "; return 200", "{", "}", '"', "'",
                 "#", "$", "$1", " ", "\t", "\\", "\x00", "\x7f", "\x0b", "\x0c", "\u2028"]


def check(base=BASE, prefix=PREFIX, upstream=UPSTREAM, snippet=SNIPPET):
    return fallback_values(base, prefix, upstream, snippet)


@pytest.mark.parametrize("base, prefix, redirect", [
    ("https://s3.example.net/", "misskey", "https://s3.example.net/misskey/"),
    ("https://s3.example.net", "/misskey/", "https://s3.example.net/misskey/"),
    ("https://s3.example.net//", "", "https://s3.example.net/"),
    ("http://127.0.0.1:8443/bucket-1", "a/b.c_d~e", "http://127.0.0.1:8443/bucket-1/a/b.c_d~e/"),
    ("https://media.example.net/files", "/", "https://media.example.net/files/"),
])
def test_good_values_give_the_redirect_target(base, prefix, redirect):
    got = check(base, prefix)
    assert got == {"problems": [], "redirect": redirect, "upstream": UPSTREAM, "snippet_file": SNIPPET}


@pytest.mark.parametrize("upstream", ["http://127.0.0.1:3000", "https://misskey.internal:3000/", "http://[::1]:3000",
                                      "http://localhost"])
def test_good_upstreams(upstream):
    assert check(upstream=upstream)["problems"] == []


@pytest.mark.parametrize("tail", HOSTILE_TAILS)
@pytest.mark.parametrize("field", ["base", "prefix", "upstream", "snippet"])
def test_hostile_character_anywhere_is_refused(field, tail):
    good = {"base": BASE.rstrip("/"), "prefix": PREFIX, "upstream": UPSTREAM, "snippet": SNIPPET}
    for value in (good[field] + tail, good[field] + tail + "x", good[field][:9] + tail + good[field][9:]):
        got = check(**dict(good, **{field: value}))
        assert len(got["problems"]) == 1, (field, value, got)
        assert got["redirect"] == got["upstream"] == got["snippet_file"] == "", got
        assert "\n" not in got["problems"][0] and repr(value)[:40] in got["problems"][0]


def test_a_final_newline_is_what_a_dollar_anchored_pattern_let_through():
    """The pattern files_fallback.yml used ended in $: re.match accepts the value, fullmatch does not."""
    import re

    value = "https://s3.example.net/x\n"
    assert re.match(r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$", value)
    assert check(base=value)["problems"] and check(prefix="misskey\n")["problems"]
    assert check(upstream="http://127.0.0.1:3000\n")["problems"] and check(snippet=SNIPPET + "\n")["problems"]


@pytest.mark.parametrize("base", ["ftp://s3.example.net", "https://", "https://-bad.example", "//s3.example.net",
                                  "https://s3.example.net:99999/", "https://s3.example.net:0", "https://user@host/",
                                  "https://s3.example.net/a?b", "https://s3.example.net/%0a", ""])
def test_bad_base_urls(base):
    assert check(base=base)["problems"]


@pytest.mark.parametrize("upstream", ["127.0.0.1:3000", "http://127.0.0.1:3000/path", "unix:/run/misskey.sock",
                                      "http://127.0.0.1:70000", ""])
def test_bad_upstreams(upstream):
    assert check(upstream=upstream)["problems"]


@pytest.mark.parametrize("snippet", ["snippets/x.conf", "", "/etc/nginx/snip pets/x.conf", "/etc/nginx/x.conf;"])
def test_bad_snippet_paths(snippet):
    assert check(snippet=snippet)["problems"]


@pytest.mark.parametrize("value", [None, 3, ["https://s3.example.net"], b"https://s3.example.net"])
def test_non_strings_are_refused(value):
    got = check(base=value)
    assert got["problems"] == ["The meta row's objectStorageBaseUrl must be a string, not %s" % type(value).__name__]


def test_every_problem_is_listed():
    got = check("https://x\n", "p;", "http://h:1\n", "rel")
    assert len(got["problems"]) == 4, got


def test_the_filter_is_the_module_utils_function():
    f = FilterModule().filters()["misskey_files_fallback"]
    assert f(BASE, PREFIX, UPSTREAM, SNIPPET) == check()
    assert f(BASE + "\nreturn 200;", PREFIX, UPSTREAM, SNIPPET)["problems"]
