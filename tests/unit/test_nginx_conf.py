"""Reading nginx -T output and Mastodon's version.rb (plugins/module_utils/nginx/conf.py)."""

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx import conf as nc

DUMP = """nginx: the configuration file /etc/nginx/nginx.conf syntax is ok
nginx: configuration file /etc/nginx/nginx.conf test is successful
# configuration file /etc/nginx/nginx.conf:
http {
    include /etc/nginx/conf.d/*.conf;
    include /etc/nginx/sites-enabled/*;
}

# configuration file /etc/nginx/conf.d/fediverse_media-cache.conf:
# Managed by Ansible
proxy_cache_path /var/cache/fediverse-media/fediverse_media levels=1:2 keys_zone=fediverse_media:10m;

# configuration file /etc/nginx/sites-enabled/mastodon:
proxy_cache_path /var/cache/nginx levels=1:2 keys_zone=CACHE:10m inactive=7d max_size=1g;
server {
  listen 80;
  server_name example.social;  # server_name commented.example;
}
server {
  listen 443 ssl http2;
  server_name example.social www.example.social;
  # server_name s3.example.social;
}

# configuration file /etc/nginx/sites-enabled/fediverse_media.conf:
server {
    server_name s3.example.social;
}
"""

OWN = "/etc/nginx/sites-enabled/fediverse_media.conf"


def test_server_names_skip_comments_and_ignored_files():
    names = nc.server_names(DUMP, ignore_files=[OWN])
    assert names == {"example.social": ["/etc/nginx/sites-enabled/mastodon"] * 2,
                     "www.example.social": ["/etc/nginx/sites-enabled/mastodon"]}
    assert "s3.example.social" in nc.server_names(DUMP)


@pytest.mark.parametrize("name, refused", [
    ("s3.example.social", False), ("example.social", True), ("WWW.example.social", True), ("media.example.social", False)])
def test_server_name_conflicts(name, refused):
    problems = nc.conflicts(DUMP, [name], ignore_files=[OWN])
    assert bool(problems) == refused, problems
    if refused:
        assert "already served by /etc/nginx/sites-enabled/mastodon" in problems[0]


@pytest.mark.parametrize("path, how", [
    ("/var/cache/fediverse-media/fediverse_media", None),  # our own zone: skipped
    ("/var/cache/fediverse-media/other", None),
    ("/var/cache/nginx-media", None),  # a sibling with a common prefix is not inside
    ("/var/cache/nginx", "is the same directory as"),
    ("/var/cache/nginx/", "is the same directory as"),
    ("/var/cache/nginx/fediverse_media", "is inside"),
    ("/var/cache", "contains"),
])
def test_cache_path_conflicts(path, how):
    problems = nc.conflicts(DUMP, [], cache_path=path, own_zone="fediverse_media")
    if how is None:
        assert problems == []
    else:
        assert len(problems) == 1 and how in problems[0] and "keys_zone=CACHE" in problems[0], problems


def test_own_zone_is_skipped_only_for_its_name():
    assert nc.conflicts(DUMP, [], cache_path="/var/cache/fediverse-media/fediverse_media/x", own_zone="fediverse_media") == []
    assert nc.conflicts(DUMP, [], cache_path="/var/cache/fediverse-media/fediverse_media/x", own_zone="other")


# --------------------------------------------------------------------------- issue 20, finding 11

FOREIGN_SAME_BASE_NAME = DUMP + """
# configuration file /etc/nginx/conf.d/fediverse_media.conf:
server {
    listen 443 ssl;
    server_name s3.example.social;
}
"""


def test_a_foreign_file_with_our_base_name_is_a_conflict():
    """Only our exact files are ignored: another site's conf.d/fediverse_media.conf serving the media name
    is a conflict (it used to be skipped because our own sites-enabled file has that base name)."""
    problems = nc.conflicts(FOREIGN_SAME_BASE_NAME, ["s3.example.social"], ignore_files=[OWN])
    assert len(problems) == 1 and "already served by /etc/nginx/conf.d/fediverse_media.conf" in problems[0], problems
    assert OWN not in problems[0]
    # Our own file alone is not a conflict, however its path is spelled.
    assert nc.conflicts(DUMP, ["s3.example.social"], ignore_files=["/etc/nginx/sites-enabled//fediverse_media.conf"]) == []


ESCAPED_QUOTE = r"""# configuration file /etc/nginx/nginx.conf:
http {
    include /etc/nginx/sites-enabled/*;
}

# configuration file /etc/nginx/sites-enabled/other:
server {
    listen 80;
    add_header X-Note "a \" # b"; server_name s3.example.social;
}
add_header X-Note 'it\'s # x'; proxy_cache_path /var/cache/other keys_zone=other:1m;
"""


def test_escaped_quote_then_hash_does_not_hide_the_rest_of_the_line():
    """An escaped quote inside a quoted string does not end it (nginx's tokenizer): the # after it is in the
    string, so the server_name and the proxy_cache_path after it on the same line are real directives."""
    assert nc.server_names(ESCAPED_QUOTE) == {"s3.example.social": ["/etc/nginx/sites-enabled/other"]}
    problems = nc.conflicts(ESCAPED_QUOTE, ["s3.example.social"], cache_path="/var/cache/other/media", own_zone="m")
    assert len(problems) == 2, problems
    assert "server_name s3.example.social is already served by /etc/nginx/sites-enabled/other" in problems[0]
    assert "is inside the path /var/cache/other of proxy_cache_path keys_zone=other" in problems[1]


@pytest.mark.parametrize("text, words", [
    # A backslash escapes inside and outside quotes (an escaped space does not end a word); \" \' \\
    # lose it, \t \r \n become control characters, any other keeps its backslash (ngx_conf_read_token).
    (r'a "b\"c" d\ e \x;', [["a", 'b"c', "d\\ e", "\\x"]]),
    (r"""a 'b\'c' "x\ty";""", [["a", "b'c", "x\ty"]]),
    (r'a "b\\" c;', [["a", "b\\", "c"]]),
    # # starts a comment only where a token could start.
    ("a b#c # d;\ne;", [["a", "b#c", "e"]]),
    ("a \"# b\" '#';", [["a", "# b", "#"]]),
    # } inside a word is part of it; ${ is a variable, not a block start.
    ("a b}c ${x}y;", [["a", "b}c", "${x}y"]]),
    ("a { b; } c;", [["a"], ["b"], ["c"]]),
    ("a\t\r\nb;", [["a", "b"]]),
    # A ")" right after a string starts the next word (if conditions).
    ('if ($host != "x") { return 421; }', [["if", "($host", "!=", "x", ")"], ["return", "421"]]),
    ('if ($host != "x")a;', [["if", "($host", "!=", "x", ")a"]]),
])
def test_tokenizer_follows_nginx(text, words):
    assert [[d.name] + d.args for d in nc.parse(text)] == words


@pytest.mark.parametrize("text", ['a "b"c;', 'if ($a != "x"a) {}', r"a 'b'\;", "}", "a; }", "{ a; }", 'a "b";}', "a b}"])
def test_tokenizer_refuses_what_nginx_refuses(text):
    with pytest.raises((nc.NginxSyntaxError, nc._Incomplete)):
        nc.parse(text)


def test_block_context_and_lines():
    ds = nc.parse("http {\n  server {\n    server_name a.example;\n  }\n}\n", "/f")
    assert [(d.name, d.context, d.line) for d in ds] == [
        ("http", (), 1), ("server", ("http",), 2), ("server_name", ("http", "server"), 3)]


def test_header_line_inside_a_string_is_not_a_new_file():
    dump = ('# configuration file /etc/nginx/a.conf:\nreturn 200 "x\n# configuration file '
            '/etc/nginx/sites-enabled/fediverse_media.conf:\nserver_name s3.example.social;";\n'
            "server_name a.example;\n\n")
    assert nc.server_names(dump, ignore_files=[OWN]) == {"a.example": ["/etc/nginx/a.conf"]}
    assert nc.read_dump(dump)[1] == []


def test_unreadable_dump_is_a_problem():
    problems = nc.conflicts('# configuration file /etc/nginx/a.conf:\nserver_name "a.example;\n', ["s3.example.social"])
    assert problems and "ends inside a directive" in problems[0], problems
    problems = nc.conflicts('# configuration file /etc/nginx/a.conf:\nserver_name "a"b;\n', ["x.example"])
    assert problems and "cannot read the output of nginx -T" in problems[0], problems


def test_dot_name_serves_the_bare_name_too():
    dump = "# configuration file /etc/nginx/conf.d/w.conf:\nserver { server_name .s3.example.social; }\n"
    assert nc.conflicts(dump, ["s3.example.social"], ignore_files=[OWN])


def test_own_zone_declared_by_a_foreign_file_is_a_conflict():
    own_cache = "/etc/nginx/conf.d/fediverse_media-cache.conf"
    dump = DUMP + ("# configuration file /etc/nginx/conf.d/other.conf:\n"
                   "proxy_cache_path /srv/other keys_zone=fediverse_media:1m;\n")
    problems = nc.conflicts(dump, [], "/var/cache/fediverse-media/fediverse_media", "fediverse_media",
                            ignore_files=[own_cache, OWN])
    assert len(problems) == 1, problems
    assert "keys zone fediverse_media is already declared by /etc/nginx/conf.d/other.conf" in problems[0]
    assert nc.conflicts(DUMP, [], "/var/cache/fediverse-media/fediverse_media", "fediverse_media",
                        ignore_files=[own_cache, OWN]) == []


VERSION_RB = """# frozen_string_literal: true

module Mastodon
  module Version
    module_function

    def major
      4
    end

    def minor
      1
    end

    def patch
      12
    end

    def default_prerelease
      ''
    end
"""


def test_mastodon_version():
    assert nc.mastodon_version(VERSION_RB) == (4, 1, 12)
    assert nc.mastodon_version("module Mastodon; end") is None
    assert nc.mastodon_version("") is None
