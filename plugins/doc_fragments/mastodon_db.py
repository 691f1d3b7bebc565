# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The Mastodon database options shared by media_copy and media_info (module_utils/mastodon/db.py).
    DOCUMENTATION = r"""
notes:
  - The module is in the C(fediverse.object_storage.db) action group, so C(module_defaults) can set
    O(db_host), O(db_port), O(db_name), O(db_user) and O(db_password) once.
options:
  db_host:
    description:
      - PostgreSQL host name, or the directory of its unix socket (a path starting with C(/)).
      - Defaults to C(DB_HOST) of O(env_file), else C(/var/run/postgresql).
    type: str
  db_port:
    description:
      - PostgreSQL port. Defaults to C(DB_PORT) of O(env_file), else C(5432).
    type: int
  db_name:
    description:
      - Database name. Defaults to C(DB_NAME) of O(env_file), else C(mastodon_production).
    type: str
  db_user:
    description:
      - Database user. Defaults to C(DB_USER) of O(env_file), else C(mastodon).
    type: str
  db_password:
    description:
      - Database password. Defaults to C(DB_PASS) of O(env_file).
    type: str
  env_file:
    description:
      - Mastodon's C(.env.production). The C(DB_*) variables (or C(DATABASE_URL)) are read from it
        for every O(db_host), O(db_port), O(db_name), O(db_user), O(db_password) not given.
    type: path
requirements:
  - psycopg2 (python3-psycopg2 on Debian and Ubuntu)
"""
