"""OS families (issue 10 item 4): the defaults of nginx_proxy's layout inputs and media_copy's package
names follow ansible_facts.os_family (vars/Debian.yml, vars/RedHat.yml), nginx_proxy_os_family overrides
the facts, families without a file get Debian's values, and each value stays an overridable input.

Runs the roles' own loading tasks (nginx_proxy tasks/os_family.yml; media_copy's include_vars step is
the same mechanism, read here through its vars files) with ansible-playbook on this machine (Debian:
the facts say Debian), then reads the resolved role defaults. The end-to-end proof on a host with the
RedHat layout is the molecule scenario mastodon_system_redhat (tests/integration/test_molecule.py).
"""

from __future__ import annotations

import pytest
import yaml

from tests.ansible_helpers import REPO, run_playbook

NGINX_INPUTS = ("nginx_proxy_sites_available_dir", "nginx_proxy_sites_enabled_dir", "nginx_proxy_cache_owner",
                "nginx_proxy_cache_group", "nginx_proxy_upstream_ca_file", "nginx_proxy_app_site_file",
                "nginx_proxy_acme_webroot")

DEBIAN = {
    "nginx_proxy_sites_available_dir": "/etc/nginx/sites-available",
    "nginx_proxy_sites_enabled_dir": "/etc/nginx/sites-enabled",
    "nginx_proxy_cache_owner": "www-data",
    "nginx_proxy_cache_group": "www-data",
    "nginx_proxy_upstream_ca_file": "/etc/ssl/certs/ca-certificates.crt",
    "nginx_proxy_app_site_file": "/etc/nginx/sites-available/mastodon",
    "nginx_proxy_acme_webroot": "/var/www/html",
}
REDHAT = {
    "nginx_proxy_sites_available_dir": "/etc/nginx/conf.d",
    "nginx_proxy_sites_enabled_dir": "",
    "nginx_proxy_cache_owner": "nginx",
    "nginx_proxy_cache_group": "nginx",
    "nginx_proxy_upstream_ca_file": "/etc/pki/tls/certs/ca-bundle.crt",
    "nginx_proxy_app_site_file": "/etc/nginx/conf.d/mastodon.conf",
    "nginx_proxy_acme_webroot": "/usr/share/nginx/html",
}

PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Load the layout as the role does
      ansible.builtin.include_role:
        name: fediverse.object_storage.nginx_proxy
        tasks_from: os_family
        public: true
    - name: Show the resolved inputs
      ansible.builtin.debug:
        msg: "{{ {%s} }}"
""" % ", ".join("'%s': %s" % (name, name) for name in NGINX_INPUTS)


def resolved(extra_vars):
    result = run_playbook(PLAYBOOK, extra_vars=extra_vars)
    assert result.rc == 0, result
    return result.task("Show the resolved inputs")["msg"]


@pytest.mark.parametrize("family, expected", [
    ("", DEBIAN),  # from the facts of this (Debian) machine, gathered by the role since the play did not
    ("RedHat", REDHAT),
    ("Debian", DEBIAN),
    ("Archlinux", DEBIAN),  # no vars file: Debian's values (documented), overridable one by one
])
def test_layout_follows_the_os_family(family, expected):
    assert resolved({"nginx_proxy_os_family": family}) == expected


def test_each_value_stays_an_input():
    got = resolved({"nginx_proxy_os_family": "RedHat", "nginx_proxy_cache_owner": "www", "nginx_proxy_sites_enabled_dir": "/x"})
    assert got == dict(REDHAT, nginx_proxy_cache_owner="www", nginx_proxy_sites_enabled_dir="/x")


def test_media_copy_package_names_per_family():
    def family(name):
        with open(REPO / "roles" / "media_copy" / "vars" / ("%s.yml" % name)) as fh:
            return yaml.safe_load(fh)["__media_copy_os"]

    # Fedora/RHEL name PyYAML python3-pyyaml and ship venv inside python3 (no python3-venv package).
    assert family("Debian") == {"system_packages": ["python3-boto3", "python3-psycopg2", "python3-yaml",
                                                    "python3-cryptography"],
                                "virtualenv_system_packages": ["python3-venv"]}
    assert family("RedHat") == {"system_packages": ["python3-boto3", "python3-psycopg2", "python3-pyyaml",
                                                    "python3-cryptography"],
                                "virtualenv_system_packages": []}
