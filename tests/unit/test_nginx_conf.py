"""Reading nginx -T output and Mastodon's version.rb (plugins/module_utils/nginx_conf.py)."""

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils import nginx_conf as nc

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


def test_server_names_skip_comments_and_ignored_files():
    names = nc.server_names(DUMP, ignore_files=["fediverse_media.conf"])
    assert names == {"example.social": ["/etc/nginx/sites-enabled/mastodon"] * 2,
                     "www.example.social": ["/etc/nginx/sites-enabled/mastodon"]}
    assert "s3.example.social" in nc.server_names(DUMP)


@pytest.mark.parametrize("name, refused", [
    ("s3.example.social", False), ("example.social", True), ("WWW.example.social", True), ("media.example.social", False)])
def test_server_name_conflicts(name, refused):
    problems = nc.conflicts(DUMP, [name], ignore_files=["fediverse_media.conf"])
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
