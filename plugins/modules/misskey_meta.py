#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

DOCUMENTATION = r"""
---
module: misskey_meta
short_description: Set the object storage settings in the meta row of Misskey v11 and later
version_added: 0.1.0
description:
  - Misskey v11 and later (PostgreSQL) keep their object storage settings (what the admin UI sets)
    in the single row of the C(meta) table. This module sets them.
  - The columns differ between versions; the module reads C(information_schema) and sets only the
    columns that exist, reporting the others in RV(skipped_columns).
  - Misskey caches the meta row in memory, so restart it after a change.
  - Database settings come from the options, else from the C(db:) section of O(config_file).
options:
  config_file:
    description:
      - Misskey's C(.config/default.yml), read for the C(db:) section (C(host), C(port), C(db),
        C(user), C(pass)). Options given explicitly win over it.
    type: path
  login_host:
    description: PostgreSQL host or socket directory.
    type: str
  login_port:
    description: PostgreSQL port.
    type: int
  login_user:
    description: PostgreSQL user.
    type: str
  login_password:
    description: PostgreSQL password.
    type: str
  db:
    description: Database name.
    type: str
  use_object_storage:
    description: C(useObjectStorage).
    type: bool
    default: true
  bucket:
    description: C(objectStorageBucket).
    type: str
    required: true
  prefix:
    description: C(objectStoragePrefix).
    type: str
  base_url:
    description: C(objectStorageBaseUrl), the URL files are served from.
    type: str
    required: true
  endpoint:
    description:
      - The S3 endpoint as a Vultr cluster (C(ewr1)), a host or a URL. Misskey stores the host in
        C(objectStorageEndpoint); the scheme gives C(objectStorageUseSSL) unless O(use_ssl) is set,
        and a port in the URL gives C(objectStoragePort).
    type: str
    required: true
  region:
    description: C(objectStorageRegion); an empty string stores NULL. Left alone when not given.
    type: str
  port:
    description: C(objectStoragePort); C(0) stores NULL (the scheme's default port). Left alone when not given.
    type: int
  use_ssl:
    description: C(objectStorageUseSSL), overriding the one derived from O(endpoint).
    type: bool
  use_proxy:
    description: C(objectStorageUseProxy) (when the column exists). Left alone when not given.
    type: bool
  set_public_read:
    description: C(objectStorageSetPublicRead) (when the column exists). Left alone when not given.
    type: bool
  s3_force_path_style:
    description: C(objectStorageS3ForcePathStyle) (when the column exists). Left alone when not given.
    type: bool
  access_key:
    description: C(objectStorageAccessKey).
    type: str
    required: true
  secret_key:
    description: C(objectStorageSecretKey).
    type: str
    required: true
extends_documentation_fragment:
  - fediverse.object_storage.attributes
requirements:
  - psycopg2
  - PyYAML (with O(config_file))
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Store Misskey drive files in the bucket
  fediverse.object_storage.misskey_meta:
    config_file: /home/misskey/misskey/.config/default.yml
    bucket: example-media
    prefix: misskey
    base_url: https://s3.example.com
    endpoint: ewr1
    port: 0
    region: ""
    set_public_read: false
    s3_force_path_style: true
    access_key: "{{ vultr_access_key }}"
    secret_key: "{{ vultr_secret_key }}"
"""

RETURN = r"""
changed_columns:
  description: The meta columns that were (or in check mode would be) updated; names only.
  returned: always
  type: list
  elements: str
  sample: [useObjectStorage, objectStorageBucket, objectStorageSecretKey]
skipped_columns:
  description: Wanted columns this Misskey version does not have.
  returned: always
  type: list
  elements: str
  sample: [objectStorageSetPublicRead]
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey_config import (  # noqa: E402
    META_COLUMNS,
    MisskeyConfigError,
    db_settings,
    mask_meta,
    meta_changes,
    meta_values,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import S3ConfigError  # noqa: E402

try:
    import psycopg2
    from psycopg2 import sql
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
except ImportError as exc:
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc


def connection_params(params):
    """psycopg2 keyword arguments from the options, completed from default.yml's db: section."""
    from_file = {}
    if params["config_file"]:
        if not os.path.isfile(params["config_file"]):
            raise MisskeyConfigError("%s does not exist: is Misskey installed there?" % params["config_file"])
        with open(params["config_file"], "rb") as handle:
            from_file = db_settings(handle.read().decode("utf-8", "replace"), source=params["config_file"])
    result = dict(
        host=params["login_host"] or from_file.get("host"),
        port=params["login_port"] or from_file.get("port"),
        user=params["login_user"] or from_file.get("user"),
        password=params["login_password"] if params["login_password"] is not None else from_file.get("pass"),
        dbname=params["db"] or from_file.get("db"),
    )
    if not result["dbname"]:
        raise MisskeyConfigError("no database name: give db, or config_file with a db: section")
    return dict((key, value) for key, value in result.items() if value not in (None, ""))


def meta_columns(cursor):
    cursor.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'meta' AND table_schema = ANY (current_schemas(false))")
    return set(row[0] for row in cursor.fetchall())


def read_meta(cursor, columns):
    query = sql.SQL("SELECT {} FROM meta").format(
        sql.SQL(", ").join(sql.Identifier(column) for column in ["id"] + columns))
    cursor.execute(query)
    rows = cursor.fetchall()
    if not rows:
        raise MisskeyConfigError("the meta table is empty: start Misskey once (it creates the row) and run again")
    if len(rows) > 1:
        raise MisskeyConfigError("the meta table has %d rows; Misskey uses exactly one: fix it by hand first" % len(rows))
    return rows[0][0], dict(zip(columns, rows[0][1:]))


def update_meta(cursor, meta_id, updates):
    query = sql.SQL("UPDATE meta SET {} WHERE id = %s").format(
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(column)) for column in updates))
    cursor.execute(query, list(updates.values()) + [meta_id])


def handle_meta(module):
    params = module.params
    wanted = meta_values(**dict((option, params[option]) for _column, option in META_COLUMNS))
    try:
        connection = psycopg2.connect(connect_timeout=10, **connection_params(params))
    except psycopg2.Error as exc:
        raise MisskeyConfigError("cannot connect to Misskey's database: %s" % to_native(exc).strip()) from exc
    try:
        with connection.cursor() as cursor:
            existing = meta_columns(cursor)
            if not existing:
                raise MisskeyConfigError("the database has no meta table: is this Misskey v11 or later, and set up?")
            columns = [column for column, _option in META_COLUMNS if column in existing and column in wanted]
            meta_id, current = read_meta(cursor, columns)
            updates, skipped = meta_changes(current, existing, wanted)
            if updates and not module.check_mode:
                update_meta(cursor, meta_id, updates)
                connection.commit()
            else:
                connection.rollback()
    except psycopg2.Error as exc:
        connection.rollback()
        raise MisskeyConfigError("database error on the meta table: %s" % to_native(exc).strip()) from exc
    finally:
        connection.close()
    result = dict(changed=bool(updates), changed_columns=[c for c, _o in META_COLUMNS if c in updates],
                  skipped_columns=skipped)
    if module._diff:
        after = dict(current)
        after.update(updates)
        result["diff"] = dict(before_header="meta", after_header="meta",
                              before=mask_meta(current), after=mask_meta(after, updates))
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            config_file=dict(type="path"),
            login_host=dict(type="str"),
            login_port=dict(type="int"),
            login_user=dict(type="str"),
            login_password=dict(type="str", no_log=True),
            db=dict(type="str"),
            use_object_storage=dict(type="bool", default=True),
            bucket=dict(type="str", required=True),
            prefix=dict(type="str"),
            base_url=dict(type="str", required=True),
            endpoint=dict(type="str", required=True),
            region=dict(type="str"),
            port=dict(type="int"),
            use_ssl=dict(type="bool"),
            use_proxy=dict(type="bool"),
            set_public_read=dict(type="bool"),
            s3_force_path_style=dict(type="bool"),
            access_key=dict(type="str", required=True, no_log=True),
            secret_key=dict(type="str", required=True, no_log=True),
        ),
        supports_check_mode=True,
    )
    if not HAS_PSYCOPG2:
        module.fail_json(msg=missing_required_lib("psycopg2"), exception=str(PSYCOPG2_IMPORT_ERROR))
    try:
        result = handle_meta(module)
    except (MisskeyConfigError, S3ConfigError, OSError) as exc:
        module.fail_json(msg=to_native(exc))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
