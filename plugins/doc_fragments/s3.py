# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The S3 connection options shared by every S3 module (plugins/module_utils/s3/client.py).
    DOCUMENTATION = r"""
options:
  endpoint:
    description:
      - The S3 endpoint. A URL (V(https://ewr1.vultrobjects.com)), a host name
        (V(sgp1.vultrobjects.com), https is assumed) or a Vultr cluster name such as V(ewr1),
        V(sjc1), V(ams1), V(blr1), V(del1), V(sgp1).
      - A cluster name that is not one of Vultr's documented clusters (a typo such as V(ewr9)) is refused
        before any request, with the list; a cluster newer than the list is given by its host name.
    type: str
    required: true
  region:
    description:
      - The region used to sign requests. Defaults to the Vultr cluster name for a Vultr
        endpoint, else V(us-east-1). Ceph RGW accepts any value.
    type: str
  access_key:
    description:
      - The S3 access key.
      - If not set, the environment variable E(AWS_ACCESS_KEY_ID) is used.
    type: str
    aliases: [aws_access_key_id]
  secret_key:
    description:
      - The S3 secret key.
      - If not set, the environment variable E(AWS_SECRET_ACCESS_KEY) is used.
    type: str
    aliases: [aws_secret_access_key]
  addressing_style:
    description:
      - V(path) sends requests to C(https://ENDPOINT/BUCKET/KEY) (what Mastodon does when
        C(S3_ENDPOINT) is set); V(virtual) to C(https://BUCKET.ENDPOINT/KEY).
    type: str
    default: path
    choices: [path, virtual, auto]
  ca_bundle:
    description:
      - A PEM file of CA certificates used to verify the endpoint's certificate.
    type: path
  validate_certs:
    description:
      - Verify the endpoint's TLS certificate. Only turn off for a test endpoint.
    type: bool
    default: true
notes:
  - A forward proxy is taken from the environment of the module, as boto3 takes it, for every request
    (the copy engine's own small requests too). E(HTTPS_PROXY) (or E(https_proxy)) for an https endpoint,
    E(HTTP_PROXY) for an http one, as C(http://[user:password@]host:port); E(NO_PROXY) lists the hosts
    and domains reached directly. Set them with the C(environment) keyword of the play or task (C(sudo)
    usually resets the login environment of a C(become) user). The password never appears in a message.
  - Checksums are sent only when S3 requires them (C(request_checksum_calculation=when_required)),
    because botocore 1.36 and later otherwise send CRC32 trailers that Ceph RGW, the engine of
    Vultr Object Storage, rejects over HTTPS.
requirements:
  - boto3 >= 1.13 and botocore >= 1.20 (python3-boto3 on Debian and Ubuntu)
"""
