#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: tls_certificate_info
short_description: Check that nginx can load a TLS certificate and key and that they cover a host name
version_added: 0.2.0
description:
  - Reads TLS certificate and key files and tells what nginx and a browser would object to, before nginx
    is given them. The migrate role's pre-flight runs it for every certificate the media proxy names.
  - "For each pair: both files exist and are regular files (a symbolic link is followed only when
    root alone can change it, as Let's Encrypt's C(live/NAME/) links are), both are PEM, the key
    belongs to the certificate (same public key), the certificate is valid now, and a DNS name of
    its subjectAltName covers each name (RFC 6125: a wildcard only as the whole left-most label,
    standing for exactly one label; the Common Name is not used)."
  - Only reads. A problem found is reported in RV(problems), not as a failure; the module fails
    only when it cannot run (C(cryptography) missing).
requirements:
  - cryptography (on the managed host)
options:
  certificates:
    description:
      - The pairs to check.
    type: list
    elements: dict
    default: []
    suboptions:
      certificate:
        description: The certificate file (C(ssl_certificate)); the first certificate in it is the server's.
        type: path
        required: true
      private_key:
        description: The key file (C(ssl_certificate_key)).
        type: path
        required: true
      names:
        description: The host names the certificate must cover.
        type: list
        elements: str
        required: true
      absent_ok:
        description:
          - A certificate file that does not exist is not a problem (the caller obtains one later, as the
            nginx_proxy role does with C(nginx_proxy_certbot)); the pair is then not checked.
        type: bool
        default: false
      acme_webroot:
        description:
          - The directory port 80 serves C(/.well-known/acme-challenge/) from for these names; when given, a pair
            with a problem gets an RV(advice) with the certbot command that obtains a certificate.
        type: path
  nginx_config:
    description:
      - The output of C(nginx -T). With O(server_name), the certificates of the TLS server blocks serving
        that name (C(listen ... ssl)) are checked as well, for that name. Only C(ssl_certificate) and
        C(ssl_certificate_key) written in the server block itself (or its C(http) block) with an absolute path
        and no variable are found.
    type: str
    default: ""
  server_name:
    description: The host name whose server blocks O(nginx_config) is searched for.
    type: str
    default: ""
extends_documentation_fragment:
  - fediverse.object_storage.attributes.read_only
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Check the media host's certificate
  fediverse.object_storage.tls_certificate_info:
    certificates:
      - certificate: /etc/letsencrypt/live/s3.example.social/fullchain.pem
        private_key: /etc/letsencrypt/live/s3.example.social/privkey.pem
        names: [s3.example.social]
  register: tls

- name: Refuse to go on with a certificate nginx or browsers would refuse
  ansible.builtin.assert:
    that: tls.problems | length == 0
    fail_msg: "{{ tls.problems | join(' ') }}"
"""

RETURN = r"""
problems:
  description: Every problem found, one sentence each, naming the file and what is wrong. Empty when all is well.
  returned: always
  type: list
  elements: str
  sample: ["the certificate /etc/letsencrypt/live/s3.example.social/fullchain.pem does not exist"]
advice:
  description: For each pair with a problem, what to do (the certbot command, or the server block to fix).
  returned: always
  type: list
  elements: str
  sample: ["To obtain a certificate for s3.example.social: certbot certonly --webroot -w /var/www/html -d s3.example.social
    (with the DNS record of each name pointing to this server and port 80 serving /var/www/html for it, as a default site does)"]
certificates:
  description: Each pair checked, with what was read from its certificate.
  returned: always
  type: list
  elements: dict
  contains:
    certificate:
      description: The certificate file.
      type: str
    private_key:
      description: The key file.
      type: str
    names:
      description: The host names it was checked for.
      type: list
      elements: str
    problems:
      description: The problems of this pair.
      type: list
      elements: str
    absent:
      description: The certificate file does not exist.
      type: bool
    advice:
      description: What to do, when the pair has a problem.
      type: str
    dns_names:
      description: The subjectAltName DNS names of the certificate (when it could be read).
      type: list
      elements: str
    not_before:
      description: Start of validity, ISO 8601 UTC (when the certificate could be read).
      type: str
    not_after:
      description: End of validity, ISO 8601 UTC (when the certificate could be read).
      type: str
    subject:
      description: The certificate's subject (RFC 4514).
      type: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.tls_certificate import (  # noqa: E402
    CRYPTOGRAPHY_ERROR,
    HAS_CRYPTOGRAPHY,
    check_pair,
    check_server_blocks,
)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            certificates=dict(type="list", elements="dict", default=[], options=dict(
                certificate=dict(type="path", required=True),
                private_key=dict(type="path", required=True, no_log=False),
                names=dict(type="list", elements="str", required=True),
                absent_ok=dict(type="bool", default=False),
                acme_webroot=dict(type="path"),
            )),
            nginx_config=dict(type="str", default=""),
            server_name=dict(type="str", default=""),
        ),
        supports_check_mode=True,
    )
    if not HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=str(CRYPTOGRAPHY_ERROR))
    checked = [check_pair(p["certificate"], p["private_key"], p["names"], absent_ok=p["absent_ok"],
                          acme_webroot=p["acme_webroot"] or "") for p in module.params["certificates"]]
    if module.params["server_name"]:
        checked.extend(check_server_blocks(module.params["nginx_config"], module.params["server_name"]))
    module.exit_json(changed=False, certificates=checked, problems=[p for c in checked for p in c["problems"]],
                     advice=[c["advice"] for c in checked if c.get("advice")])


if __name__ == "__main__":
    main()
