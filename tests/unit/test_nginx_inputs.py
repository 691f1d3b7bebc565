"""The nginx_proxy role's input checks in Python (plugins/module_utils/nginx/inputs.py, issue 21 item 2),
fed hostile values (hypothesis): a value a checker refuses never reaches a template (the role fails
first), a value it accepts renders as one nginx token where the template puts it. Also: one rule set per
value (the DNS name of migrate.yml's inputs, the bucket name of the bucket module), and every option the
templates render is checked."""

import os
import re
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from ansible_collections.fediverse.object_storage.plugins.filter.bucket_name import bucket_name_error
from ansible_collections.fediverse.object_storage.plugins.filter.nginx_inputs import FilterModule
from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate import inputs as mi
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx import conf as nc
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx import inputs as ni
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx import values as nv
from tests.nginx_proxy_support import REPO, ROLE, TEMPLATES, render, role_defaults

# Hypothesis' caches stay out of the tree (the collection is built from it).
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "fediverse-object-storage-hypothesis"))
EXAMPLES = settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))

# nginx syntax, what ends a line or a quoted string, Unicode spaces and line ends, and unicode text.
HOSTILE_CHARS = list(" \t\r\n;{}\"'\\$#()") + ["\x00", "\x0b", "\x0c", "\x1b", "\x7f", "\x85", "\xa0", "\u2028",
                                                 "\u2029", "\ufeff", "\u3000", "é", "ß", "ı", "\U0001f600"]
PLAIN_CHARS = list("aZ09-_.:/*[]@=,+%~")

# Values each kind accepts (from test_nginx_values.py's samples): hypothesis breaks them.
GOOD = {
    "dns_name": ["example.social", "s3.example.com", "xn--bcher-kva.example"],
    "path": ["/var/cache/fediverse-media/fediverse_media", "/srv/médias", "/etc/ssl/a.pem"],
    "address": ["1.1.1.1", "127.0.0.1:5353", "[2606:4700::1111]", "dns.example"],
    "listen_address": ["127.0.0.1", "[::]", "host.example"],
    "port": ["80", "443", "65535"],
    "header_name": ["X-Content-Type-Options", "Content-Security-Policy"],
    "header_value": ["nosniff", "default-src 'none'; form-action 'none'", "a # b"],
    "cors_origin": ["*", "null", "https://example.social", "http://a.example:8443"],
    "size": ["20g", "500m", "1024"],
    "time": ["48h", "5m", "100s", "500ms"],
    "cache_levels": ["1", "1:2", "1:2:2"],
    "zone_name": ["fediverse_media", "m"],
    "bucket": ["media-bucket", "abc", "a" * 63],
    "s3_endpoint": ["https://ewr1.vultrobjects.com", "ewr1", "s3.localhost:8443", "https://s3.example/"],
    "directory_path": ["/storage/", "/a/b_c-d/"],
    "systemd_time": ["5", "5s", "500ms", "1min"],
}
assert set(GOOD) == set(nv.KINDS)


PRINTABLE = st.characters(whitelist_categories=("L", "M", "N", "P", "S"), blacklist_characters=";{}\"'\\$#")
# Values that look right, drawn from each kind's own rule (the checkers' patterns, a bucket's rule).
SHAPED = {kind: st.from_regex(pattern, fullmatch=True) for kind, pattern in nv._PATTERNS.items()}
SHAPED.update({
    "bucket": st.from_regex(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", fullmatch=True),
    "dns_name": st.from_regex(nv._PATTERNS["dns_name"], fullmatch=True),
    "path": st.builds("/{}".format, st.text(PRINTABLE, max_size=30)),
    "header_value": st.text(PRINTABLE, max_size=40),
    "port": st.integers(0, 70000).map(str),
})


def _insert(good, bad, at):
    at %= len(good) + 1
    return good[:at] + bad + good[at:]


def hostile(kind, *more):
    """Strings a checker must judge: good and well-shaped values, the same broken by hostile characters
    anywhere (start, middle, end), hostile text alone, any unicode text, very long strings."""
    goods = st.one_of(st.sampled_from(GOOD[kind] + list(more)), SHAPED[kind])
    return st.one_of(
        goods,
        st.builds(_insert, goods, st.text(st.sampled_from(HOSTILE_CHARS), min_size=1, max_size=4), st.integers(0, 80)),
        st.text(st.sampled_from(HOSTILE_CHARS + PLAIN_CHARS), max_size=40),
        st.text(max_size=20),
        st.builds(lambda good, n, tail: good * n + tail, goods, st.integers(20, 400),
                  st.sampled_from(["", "\n", ";", " ", "a"])),
    )


# --- each checker: what it accepts is one nginx token wherever the templates put it ----------------------

def _words(text):
    """The directives of an nginx text as [name, args...] (the parser follows ngx_conf_read_token)."""
    return [[d.name] + d.args for d in nc.parse(text)]


@pytest.mark.parametrize("kind", sorted(nv.KINDS))
@EXAMPLES
@given(data=st.data())
def test_an_accepted_value_is_one_nginx_token(kind, data):
    value = data.draw(hostile(kind))
    if not nv.is_valid(value, kind):
        return
    assert "$" not in value  # nginx would expand a variable in most directives
    assert value.isprintable() and "\n" not in value
    # Inside double quotes (add_header NAME "VALUE"; if ($host != "VALUE"); set $x "BUCKET.HOST"):
    assert _words('d "%s";' % value) == [["d", value]]
    assert _words('if ($host != "%s") { return 421; }' % value) == [["if", "($host", "!=", value, ")"], ["return", "421"]]
    if kind != "header_value":  # the only kind rendered inside quotes alone
        assert _words("d %s;" % value) == [["d", value]]
        assert _words("d %s/;" % value) == [["d", value + "/"]]  # alias PATH/;
        assert _words("listen %s:80;" % value) == [["listen", value + ":80"]]
        assert _words("d k=%s x;" % value) == [["d", "k=" + value, "x"]]  # levels=, keys_zone=, max_size=...
        assert _words("# %s\nd x;" % value) == [["d", "x"]]  # in a comment: still a comment
        assert value.strip() == value and not re.search(r"\s", value)


@EXAMPLES
@given(value=hostile("systemd_time"))
def test_an_accepted_systemd_time_is_one_word_of_one_line(value):
    if nv.is_valid(value, "systemd_time"):
        assert re.fullmatch(r"[0-9a-z]+", value)


# --- one rule set per value ---------------------------------------------------------------------------

@EXAMPLES
@given(name=hostile("bucket", "a.b.c", "Media", "a_b", "192.168.0.1"))
def test_the_bucket_name_has_one_rule_set(name):
    """nginx_proxy_bucket, the bucket_name_error filter and the bucket module (validate_bucket_name, the same
    rules as the filter) accept the same names; none has a dot (the endpoint's wildcard certificate)."""
    accepted = nv.is_valid(name, "bucket")
    assert accepted == (bucket_name_error(name) == "")
    if accepted:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", name) and "." not in name


def test_the_bucket_module_uses_the_same_rules():
    with open(os.path.join(REPO, "plugins", "modules", "bucket.py"), encoding="utf-8") as f:
        source = f.read()
    assert "validate_bucket_name(name)" in source


@EXAMPLES
@given(name=hostile("dns_name", "a-.example.com", "-a.example", "a" * 63 + ".example"))
def test_the_dns_name_has_one_checker(name):
    """migrate_domain (migrate.yml's pre-flight) and nginx_proxy_domain are judged by the same checker."""
    values = {"migrate_domain": name, "migrate_proxy_mode": "directory"}
    problems = dict(mi.input_problems(values))
    assert ("migrate_domain" not in problems) == nv.is_valid(name, "dns_name"), problems.get("migrate_domain")


@pytest.mark.parametrize("name", ["a-.example.com", "example.a-", ("a" * 62 + ".") * 4 + "example"])
def test_migrate_refuses_what_nginx_refuses(name):
    """Before issue 21 migrate_inputs had its own regex: a label ending in "-" and a name longer than 253
    characters passed there and failed only in nginx_proxy's check."""
    problems = dict(mi.input_problems({"migrate_domain": name, "migrate_proxy_mode": "subdomain",
                                       "migrate_media_domain": "s3.example.social",
                                       "migrate_extra_media_hosts": [name, "https://%s:8443" % name]}))
    assert "migrate_domain must be a DNS name" in problems["migrate_domain"]
    assert "migrate_extra_media_hosts refused" in problems["migrate_extra_media_hosts"]


def test_migrate_extra_media_hosts_still_accepts_urls_and_hosts():
    problems = dict(mi.input_problems({"migrate_extra_media_hosts": [
        "https://media.example.com", "media.example.com", "https://media.example.com:8443", "a.example:80"]}))
    assert "migrate_extra_media_hosts" not in problems


# --- the role's checks ----------------------------------------------------------------------------------

BASE = {"nginx_proxy_bucket": "media-bucket", "nginx_proxy_domain": "s3.example.social"}
SETUPS = [("mastodon", "subdomain"), ("misskey", "subdomain"), ("mastodon", "directory"), ("misskey", "directory"),
          ("mastodon", "system")]


def inputs(app="mastodon", mode="subdomain", **overrides):
    values = role_defaults(**dict(BASE, nginx_proxy_app=app, nginx_proxy_mode=mode))
    if app == "misskey":
        values["nginx_proxy_local_root"] = ""
    values.update(overrides)
    return values


def messages(values):
    return "\n".join(message for _check, message in ni.nginx_proxy_problems(values))


@pytest.mark.parametrize("app, mode", SETUPS)
def test_the_defaults_pass(app, mode):
    assert ni.nginx_proxy_problems(inputs(app, mode)) == []


def test_checks_yml_passes_exactly_the_inputs_the_checks_read():
    with open(os.path.join(ROLE, "tasks", "checks.yml"), encoding="utf-8") as f:
        tasks = yaml.safe_load(f)
    (task,) = [t for t in tasks if t["name"] == "Check the role's inputs"]
    assert tuple(task["vars"]["__nginx_proxy_inputs"]) == ni.INPUTS
    assert "nginx_proxy_problems" in task["loop"]


def test_the_filter_is_the_function():
    assert FilterModule().filters()["nginx_proxy_problems"] is ni.nginx_proxy_problems


# The messages the role fails with (tests/unit/test_nginx_proxy_validate.py runs them through ansible).
@pytest.mark.parametrize("extra, message", [
    ({"nginx_proxy_extra_headers": {"X": 'a"; return 200 "pwned'}}, "refused values: ['a\"; return 200 \"pwned']"),
    ({"nginx_proxy_extra_headers": {'X" always; return 200 "x': "v"}}, "refused names: ['X\" always; return 200 \"x']"),
    ({"nginx_proxy_cors_origin": "https://a.example/;"},
     "nginx_proxy_cors_origin must be *, null or one origin such as https://example.social (scheme, host, optional "
     "port), not 'https://a.example/;'"),
    ({"nginx_proxy_resolvers": ["1.1.1.1", "1.1.1.1; x"]}, "127.0.0.1:5353 (nginx resolves the bucket's name at "
                                                           "request time); refused: ['1.1.1.1; x']"),
    ({"nginx_proxy_resolvers": []}, "nginx_proxy_resolvers must be a non-empty list"),
    ({"nginx_proxy_resolvers": "1.1.1.1"}, "nginx_proxy_resolvers must be a non-empty list"),
    ({"nginx_proxy_hide_headers": "ETag"}, "nginx_proxy_hide_headers must be a list of header names"),
    ({"nginx_proxy_domain": "s3.example.social\n"},
     "nginx_proxy_mode=subdomain needs nginx_proxy_domain, a DNS name such as s3.example.com (got 's3.example.social\n')"),
    ({"nginx_proxy_mode": "system", "nginx_proxy_domain": "a;"}, "nginx_proxy_domain must be empty or a DNS name such "
     "as example.social (the only host name the media are served under; it is written into nginx's configuration), "
     "not 'a;'"),
    ({"nginx_proxy_ssl_certificate": "/x y", "nginx_proxy_acme_webroot": "rel"},
     "nginx_proxy_ssl_certificate, nginx_proxy_acme_webroot must be absolute paths without spaces, quotes, ;, "
     "braces, $, # or control characters (they are written into nginx's configuration)"),
    ({"nginx_proxy_cache_valid": "48h; x"}, "nginx_proxy_cache_inactive, nginx_proxy_cache_valid, "
     "nginx_proxy_cache_valid_other, nginx_proxy_resolver_valid and nginx_proxy_resolver_timeout must be nginx times "
     "such as 48h, 5m or 100s (got 7d, 48h; x, 1m, 100s, 5s)"),
    ({"nginx_proxy_cache_max_size": ["20g"]}, "nginx_proxy_cache_max_size must be a size such as 20g or 500m, not "
                                              "'['20g']'"),
    ({"nginx_proxy_https_port": 80}, "nginx_proxy_http_port and nginx_proxy_https_port must be two different ports"),
    ({"nginx_proxy_http_port": "0"}, "must be two different ports 1-65535"),
    ({"nginx_proxy_certbot": "yes"}, "nginx_proxy_certbot needs nginx_proxy_certbot_email (Let's Encrypt account)"),
    ({"nginx_proxy_systemd_restart_sec": "5s\nExecStartPre=/bin/sh"}, "nginx_proxy_systemd_restart must be a systemd"),
    ({"nginx_proxy_systemd_restart": "sometimes"}, "nginx_proxy_systemd_restart must be a systemd Restart= value"),
    ({"nginx_proxy_mode": "directory", "nginx_proxy_directory_path": "/files/"}, "nginx_proxy_directory_path must look"),
    ({"nginx_proxy_app": "pleroma"}, "nginx_proxy_app must be mastodon or misskey, not 'pleroma'"),
    ({"nginx_proxy_name": "Zone"}, "nginx_proxy_name must be 1-32 characters a-z, 0-9, _ starting with a letter, "
                                   "not 'Zone'"),
    ({"nginx_proxy_bucket": "a.b.c"}, "(no dots: a dotted name breaks the endpoint's wildcard TLS certificate), not "
                                      "'a.b.c'"),
    ({"nginx_proxy_s3_endpoint": "http://a b"}, "nginx_proxy_s3_endpoint must be an https URL"),
])
def test_messages(extra, message):
    assert message in messages(inputs(**extra))


def test_one_message_per_failed_check_in_order():
    problems = ni.nginx_proxy_problems(inputs(app="misskey", mode="system", nginx_proxy_name="x;",
                                              nginx_proxy_systemd_dropin=False, nginx_proxy_systemd_restart="x"))
    assert [check for check, _message in problems] == ["mode system", "nginx_proxy_name"]
    assert problems[0][1].startswith("nginx_proxy_mode=system is for Mastodon only: Misskey serves its local files "
                                     "at /files from the application itself")


def test_mode_dependent_checks():
    assert ni.nginx_proxy_problems(inputs(mode="directory", nginx_proxy_domain="", nginx_proxy_https_port=80)) == []
    assert ni.nginx_proxy_problems(inputs(nginx_proxy_directory_path="/files/")) == []
    assert ni.nginx_proxy_problems(inputs(nginx_proxy_systemd_dropin="no", nginx_proxy_systemd_restart="x")) == []
    assert ni.nginx_proxy_problems(inputs(nginx_proxy_local_root="", nginx_proxy_listen_address="")) == []


# --- every option a template renders is checked, in every mode that renders it ----------------------------

def _main_options():
    with open(os.path.join(ROLE, "meta", "argument_specs.yml"), encoding="utf-8") as f:
        return yaml.safe_load(f)["argument_specs"]["main"]["options"]


def _names_in(*templates):
    names = set()
    for template in templates:
        with open(os.path.join(TEMPLATES, template), encoding="utf-8") as f:
            names |= set(re.findall(r"\bnginx_proxy_[a-z0-9_]+", f.read()))
    return names


def _templates(mode):
    return ["nginx/proxy-cache.conf.j2", "nginx/%s.conf.j2" % mode, "nginx/location.conf.j2"]


SYSTEMD = "systemd/nginx-restart.conf.j2"
BREAK = 'a"; } return 200 "pwned\n#'


def _broken(option, value):
    """``value`` with BREAK in it, keeping its shape (a list item, a header name or value)."""
    if isinstance(value, list):
        return [[value[0] + BREAK] + value[1:]]
    if isinstance(value, dict):
        name = next(iter(value))
        return [dict(value, **{name: value[name] + BREAK}), {name + BREAK: value[name]}]
    return ["%s%s" % (value, BREAK), "%s\n" % (value,)]


def test_the_templates_render_only_checked_options():
    options = _main_options()
    rendered = _names_in(SYSTEMD, *{t for _app, mode in SETUPS for t in _templates(mode)})
    assert rendered and rendered <= set(options), rendered - set(options)
    for name in rendered:
        # A bool only decides (if/else): its value is never written.
        assert options[name].get("type") == "bool" or name in ni.INPUTS, name


@pytest.mark.parametrize("app, mode", SETUPS)
def test_every_rendered_option_is_checked_in_its_mode(app, mode):
    options = _main_options()
    values = inputs(app, mode, nginx_proxy_local_root="/srv/system", nginx_proxy_listen_address="127.0.0.1")
    for name in sorted(_names_in(SYSTEMD, *_templates(mode))):
        if options[name].get("type") == "bool":
            continue
        for bad in _broken(name, values[name]):
            found = messages(dict(values, **{name: bad}))
            assert name in found, (name, bad)


# --- whatever passes the checks renders into the same nginx structure -------------------------------------

OPTION_KINDS = {
    "nginx_proxy_name": "zone_name", "nginx_proxy_bucket": "bucket", "nginx_proxy_s3_endpoint": "s3_endpoint",
    "nginx_proxy_cache_max_size": "size", "nginx_proxy_cache_keys_zone_size": "size",
    "nginx_proxy_cache_levels": "cache_levels", "nginx_proxy_local_root": "path", "nginx_proxy_cors_origin": "cors_origin",
    "nginx_proxy_domain": "dns_name", "nginx_proxy_listen_address": "listen_address", "nginx_proxy_http_port": "port",
    "nginx_proxy_https_port": "port", "nginx_proxy_directory_path": "directory_path",
    "nginx_proxy_systemd_restart_sec": "systemd_time",
}
OPTION_KINDS.update({name: "time" for name in ni.DURATIONS})
OPTION_KINDS.update({name: "path" for name in ni.PATHS})


def _shape(text):
    """What an accepted value must never change: the directives, their blocks and number of words, and the
    number of nginx variables (``$``) they use."""
    directives = nc.parse(text)
    return [(d.context, d.name, len(d.args)) for d in directives], sum(w.count("$") for d in directives for w in d.args)


def _render_all(values, mode):
    nginx = render("nginx/proxy-cache.conf.j2", values) + render("nginx/%s.conf.j2" % mode, values)
    return nginx, render(SYSTEMD, values)


def _render_inputs(app, mode):
    return inputs(app, mode, nginx_proxy_local_root="/srv/system" if app == "mastodon" else "",
                  nginx_proxy_listen_address="127.0.0.1")


# What turns one nginx word into several, or into another directive or block.
BREAKS = [" ", "\n", "\r", "\t", ";", "{", "}", '"', "'", "$x", " x", "; return 200 x;", '"; }', "\u2028"]


def breaking(kind, *more):
    """Hostile values of ``kind``, at least half of them with nginx syntax in a good value."""
    goods = st.one_of(st.sampled_from(GOOD[kind] + list(more)), SHAPED[kind])
    return st.one_of(hostile(kind, *more), st.builds(_insert, goods, st.sampled_from(BREAKS), st.integers(0, 80)))


LIST_TARGETS = {"nginx_proxy_resolvers": "address", "nginx_proxy_hide_headers": "header_name"}


@st.composite
def changed_inputs(draw):
    """The inputs of one app and mode with one value made hostile (a scalar option, an item of a list, a
    header's name or value) and maybe a second one drawn from its kind's shape. Lists and mappings keep their
    length: the shape compared below depends on it."""
    app, mode = draw(st.sampled_from(SETUPS))
    values = _render_inputs(app, mode)
    target = draw(st.sampled_from(sorted(OPTION_KINDS) + sorted(LIST_TARGETS) + ["header name", "header value"]))
    if target in OPTION_KINDS:
        value = draw(breaking(OPTION_KINDS[target], str(values[target])))
        # An empty domain or local root (accepted: no Host check, no local files) is another configuration, and
        # so is a local root where the defaults have none (local first: one more location): a toggle either way.
        toggles = target in ("nginx_proxy_domain", "nginx_proxy_local_root") and (value == "") != (values[target] == "")
        if not toggles:
            values[target] = value
    elif target in LIST_TARGETS:
        items = list(values[target])
        items[draw(st.integers(0, len(items) - 1))] = draw(breaking(LIST_TARGETS[target]))
        values[target] = items
    else:
        headers = values["nginx_proxy_extra_headers"]
        old = draw(st.sampled_from(sorted(headers)))
        if target == "header value":
            values["nginx_proxy_extra_headers"] = dict(headers, **{old: draw(breaking("header_value"))})
        else:
            new = draw(breaking("header_name"))
            if new not in headers:
                values["nginx_proxy_extra_headers"] = {new if k == old else k: v for k, v in headers.items()}
    second = draw(st.sampled_from(sorted(OPTION_KINDS)))
    if second != target and values[second] != "":
        values[second] = draw(SHAPED[OPTION_KINDS[second]])
    return app, mode, values


BASELINES = {}


def _baseline(app, mode):
    if (app, mode) not in BASELINES:
        nginx, systemd = _render_all(_render_inputs(app, mode), mode)
        BASELINES[(app, mode)] = (_shape(nginx), systemd.count("\n"))
    return BASELINES[(app, mode)]


@settings(EXAMPLES, max_examples=200)
@given(case=changed_inputs())
def test_what_passes_the_checks_cannot_change_the_configuration(case):
    """Inputs the role accepts (no problem) render to the structure the defaults render to: the same
    directives in the same blocks with the same number of words, the same systemd lines, no new nginx
    variable. Inputs it refuses never reach a template (checks.yml fails first)."""
    app, mode, values = case
    if ni.nginx_proxy_problems(values):
        return
    nginx, systemd = _render_all(values, mode)
    shape, systemd_lines = _baseline(app, mode)
    assert _shape(nginx) == shape, nginx
    assert systemd.count("\n") == systemd_lines and "\r" not in systemd


@pytest.mark.parametrize("root,cache,refused", [
    ("/var/cache/fediverse-media/fediverse_media", "/var/cache/fediverse-media/fediverse_media", True),
    ("/var/cache/fediverse-media/fediverse_media/", "/var/cache/fediverse-media/fediverse_media", True),
    ("/var/cache/fediverse-media", "/var/cache/fediverse-media/fediverse_media", True),
    ("/var/cache/fediverse-media/fediverse_media/x", "/var/cache/fediverse-media/fediverse_media", True),
    ("/var/cache/fediverse-media/../fediverse-media/fediverse_media", "/var/cache/fediverse-media/fediverse_media", True),
    ("/", "/var/cache/fediverse-media/fediverse_media", True),
    ("/home/mastodon/live/public/system", "/var/cache/fediverse-media/fediverse_media", False),
    ("/var/cache/fediverse-media/fediverse_media2", "/var/cache/fediverse-media/fediverse_media", False),
    ("", "/var/cache/fediverse-media/fediverse_media", False),
])
def test_local_root_never_serves_the_cache_directory(root, cache, refused):
    """Found by the hypothesis test above: a local root equal to the cache path (or holding it, or inside it)
    passed every check, and nginx would have served its raw cache files - any object it cached, a private one
    included while its copy lasts - as local media by their hashed names."""
    values = dict(_render_inputs("mastodon", "system"), nginx_proxy_local_root=root, nginx_proxy_cache_path=cache)
    checks = [check for check, _message in ni.nginx_proxy_problems(values)]
    assert ("local_root_cache" in checks) == refused, checks
