"""The nginx_proxy role refuses every value that would become nginx syntax (issue 12, item 6), before it
writes anything: the role runs for real (ansible-playbook) against empty temp directories, and each
hostile value must fail in the input check with a message naming the setting, leaving them empty."""

import os
import shutil
import tempfile

import pytest

from tests.ansible_helpers import run_playbook

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: fediverse.object_storage.nginx_proxy
"""

PWNED = 'a"; return 200 "pwned'
CERTS = {"nginx_proxy_ssl_certificate": "/etc/ssl/media.pem", "nginx_proxy_ssl_certificate_key": "/etc/ssl/media.key"}


@pytest.fixture
def dirs():
    root = tempfile.mkdtemp(prefix="fos-test-validate-")
    names = ("conf_d", "available", "enabled", "snippets", "cache", "dropin")
    paths = {n: os.path.join(root, n) for n in names}
    for p in paths.values():
        os.makedirs(p)
    yield paths
    shutil.rmtree(root, ignore_errors=True)


def role_vars(dirs, **extra):
    v = {
        "nginx_proxy_bucket": "media-bucket",
        "nginx_proxy_domain": "s3.example.social",
        "nginx_proxy_local_root": "",
        "nginx_proxy_cache_path": os.path.join(dirs["cache"], "zone"),
        "nginx_proxy_conf_d_dir": dirs["conf_d"],
        "nginx_proxy_sites_available_dir": dirs["available"],
        "nginx_proxy_sites_enabled_dir": dirs["enabled"],
        "nginx_proxy_snippets_dir": dirs["snippets"],
        "nginx_proxy_systemd_dropin_dir": dirs["dropin"],
        "nginx_proxy_test_command": "false",
        "nginx_proxy_reload_command": "false",
        "nginx_proxy_systemd_daemon_reload": False,
    }
    v.update(extra)
    return v


@pytest.mark.parametrize("extra, message", [
    ({"nginx_proxy_extra_headers": {"X": PWNED}}, "refused values"),
    ({"nginx_proxy_extra_headers": {"X-Test": "${request_uri}"}}, "refused values"),
    ({"nginx_proxy_extra_headers": {"X-Test": "a\nreturn 200 x;"}}, "refused values"),
    ({"nginx_proxy_extra_headers": {'X" always; return 200 "x': "v"}}, "refused names"),
    ({"nginx_proxy_cors_origin": '*"; return 200 "pwned'}, "nginx_proxy_cors_origin must be"),
    ({"nginx_proxy_cors_origin": "https://a.example/;"}, "nginx_proxy_cors_origin must be"),
    ({"nginx_proxy_resolvers": ["1.1.1.1; return 200 pwned"]}, "nginx_proxy_resolvers must be"),
    ({"nginx_proxy_resolvers": ["1.1.1.1 valid=1s; include /etc/shadow"]}, "nginx_proxy_resolvers must be"),
    ({"nginx_proxy_hide_headers": ["ETag; return 200 x"]}, "nginx_proxy_hide_headers must be"),
    ({"nginx_proxy_domain": "s3.example.social; return 200 x"}, "needs nginx_proxy_domain"),
    ({"nginx_proxy_domain": "s3.example.social\n"}, "needs nginx_proxy_domain"),
    ({"nginx_proxy_listen_address": "127.0.0.1:80; return 200 x; #"}, "nginx_proxy_listen_address must be"),
    ({"nginx_proxy_ssl_certificate": "/etc/ssl/x.pem; return 200 x"}, "nginx_proxy_ssl_certificate"),
    ({"nginx_proxy_upstream_ca_file": "/etc/ssl/{x}"}, "nginx_proxy_upstream_ca_file"),
    ({"nginx_proxy_acme_webroot": "/var/www/$host"}, "nginx_proxy_acme_webroot"),
    ({"nginx_proxy_cache_max_size": "20g\n"}, "nginx_proxy_cache_max_size must be"),
    ({"nginx_proxy_cache_valid": "48h; return 200 x"}, "must be nginx times"),
    ({"nginx_proxy_cache_levels": "1:2 keys_zone=x:1m"}, "nginx_proxy_cache_levels must be"),
    ({"nginx_proxy_name": "zone;"}, "nginx_proxy_name must be"),
    ({"nginx_proxy_mode": "directory", "nginx_proxy_directory_path": "/storage/ { return 200 x; } location /x/"},
     "nginx_proxy_directory_path must"),
    ({"nginx_proxy_local_root": "/home/mastodon/live/public/system/; return 200 x"}, "nginx_proxy_local_root must be"),
    # Issue 20 finding 6: modes directory and system render the domain too (if ($host != "DOMAIN")); with
    # explicit certificate paths nothing else built from the domain is checked.
    ({"nginx_proxy_mode": "directory", "nginx_proxy_domain": 'example.social") { return 200; } #', **CERTS},
     "nginx_proxy_domain must be empty or a DNS name"),
    ({"nginx_proxy_mode": "system", "nginx_proxy_domain": "example.social\n", **CERTS},
     "nginx_proxy_domain must be empty or a DNS name"),
    ({"nginx_proxy_mode": "system", "nginx_proxy_domain": "example.social\nreturn 200 x;", **CERTS},
     "nginx_proxy_domain must be empty or a DNS name"),
    ({"nginx_proxy_extra_headers": {"X-Test": "a\x85b"}}, "refused values"),
])
def test_hostile_value_is_refused_before_any_file_changes(dirs, extra, message):
    result = run_playbook(PLAYBOOK, extra_vars=role_vars(dirs, **extra))
    assert result.rc != 0
    messages = "\n".join(result.failure_messages() + [
        str(item.get("msg", "")) for t in result.tasks for item in t["result"].get("results", [])
        if isinstance(item, dict) and item.get("evaluated_to") is False])
    assert message in messages, messages
    assert result.tasks[-1]["name"].endswith("Check the role's inputs"), [t["name"] for t in result.tasks]
    assert all(not os.listdir(p) for p in dirs.values())


def test_legitimate_values_pass_the_check(dirs):
    """Mastodon's own CSP value (with ; and quotes ') and an origin pass; only the input check is run."""
    play = """
- hosts: localhost
  gather_facts: false
  tasks:
    - ansible.builtin.include_role:
        name: fediverse.object_storage.nginx_proxy
        tasks_from: validate
"""
    result = run_playbook(play, extra_vars=role_vars(
        dirs, nginx_proxy_cors_origin="https://example.social:8443", nginx_proxy_resolvers=["[2606:4700::1111]", "127.0.0.1:53"],
        nginx_proxy_extra_headers={"Content-Security-Policy": "default-src 'none'; form-action 'none'",
                                   "X-Content-Type-Options": "nosniff"}))
    assert result.rc == 0, result
