# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja2 filters over module_utils/s3/client.py, so that roles resolve endpoints like the modules do."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible.errors import AnsibleFilterError

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import (
    S3ConfigError,
    region_for,
    resolve_endpoint,
)


def s3_endpoint(value):
    try:
        return resolve_endpoint(value)
    except S3ConfigError as exc:
        raise AnsibleFilterError(str(exc)) from exc


def s3_region(value, region=None):
    try:
        return region_for(value, region or None)
    except S3ConfigError as exc:
        raise AnsibleFilterError(str(exc)) from exc


class FilterModule(object):
    def filters(self):
        return {"s3_endpoint": s3_endpoint, "s3_region": s3_region}
