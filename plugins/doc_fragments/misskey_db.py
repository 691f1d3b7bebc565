# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The Misskey (v11+) database options shared by the Misskey modules (module_utils/misskey/db.py).
    DOCUMENTATION = r"""
notes:
  - The module is in the C(fediverse.object_storage.db) action group, so C(module_defaults) can set
    O(db_host), O(db_port), O(db_name), O(db_user) and O(db_password) once.
options:
  config_file:
    description:
      - Misskey's C(.config/default.yml). Its C(db:) section (C(host), C(port), C(db), C(user),
        C(pass)) gives every one of O(db_host), O(db_port), O(db_name), O(db_user), O(db_password)
        not given.
    type: path
  db_host:
    description:
      - PostgreSQL host name, or the directory of its unix socket (a path starting with C(/)).
      - Defaults to C(db.host) of O(config_file).
    type: str
    aliases: [login_host]
  db_port:
    description:
      - PostgreSQL port. Defaults to C(db.port) of O(config_file), else C(5432).
    type: int
    aliases: [login_port]
  db_name:
    description:
      - Database name. Defaults to C(db.db) of O(config_file); one of the two is required.
    type: str
    aliases: [db]
  db_user:
    description:
      - Database user. Defaults to C(db.user) of O(config_file).
    type: str
    aliases: [login_user]
  db_password:
    description:
      - Database password. Defaults to C(db.pass) of O(config_file).
    type: str
    aliases: [login_password]
requirements:
  - psycopg2 (python3-psycopg2 on Debian and Ubuntu)
  - PyYAML (with O(config_file))
"""
