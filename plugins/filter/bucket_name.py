# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""bucket_name_error: why a bucket name is not usable ('' when it is), before any request."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

from ansible_collections.fediverse.object_storage.plugins.module_utils.bucket.rules import (
    BucketNameError,
    validate_bucket_name,
)


def bucket_name_error(name):
    try:
        validate_bucket_name(name)
    except BucketNameError as exc:
        return str(exc)
    return ""


class FilterModule(object):
    def filters(self):
        return {"bucket_name_error": bucket_name_error}
