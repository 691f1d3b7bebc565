# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PostgreSQL connection both apps share (in the spirit of community.postgresql's ``db/postgres.py``).

Mastodon's ``mastodon/db.py`` and Misskey's ``misskey/db.py`` keep what differs between the apps: where the
connection settings come from (``.env.production``, ``default.yml``), their defaults, their queries. This
room holds what is the same: the guarded psycopg2 import, the ``db_*`` module options, opening a
connection (timeout, application name, libpq's error in one line) and the column lookup.
Plain Python, psycopg2 imported guardedly, unit-testable without Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re

try:
    import psycopg2
    HAS_PSYCOPG2 = True
    PSYCOPG2_IMPORT_ERROR = None
    PGError = psycopg2.Error
except ImportError as exc:  # pragma: no cover - exercised by ansible-test's import sanity test
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMPORT_ERROR = exc

    class PGError(Exception):
        """Stands in for psycopg2.Error when psycopg2 is missing."""

DEFAULT_PORT = 5432
CONNECT_TIMEOUT = 10
APPLICATION_NAME = "fediverse.object_storage"


class ConnectError(Exception):
    """No connection. ``reason``: libpq's first line (``clean_pg_message``), None when psycopg2 is missing;
    the message is a whole sentence either way."""

    def __init__(self, message, reason=None):
        super(ConnectError, self).__init__(message)
        self.reason = reason


def connection_argument_spec(aliases=None):
    """The ``db_*`` options of every module that reads a database (doc fragments mastodon_db, misskey_db);
    ``aliases`` maps an option to its other names. The app adds the file it reads them from."""
    spec = dict(
        db_host=dict(type="str"),
        db_port=dict(type="int"),
        db_name=dict(type="str"),
        db_user=dict(type="str"),
        db_password=dict(type="str", no_log=True),
    )
    for option, names in (aliases or {}).items():
        spec[option]["aliases"] = list(names)
    return spec


def db_option_values(module_params):
    """The ``db_*`` options of a module (Mastodon's or Misskey's) as the app's connection_params() arguments."""
    return dict(host=module_params.get("db_host"), port=module_params.get("db_port"),
                dbname=module_params.get("db_name"), user=module_params.get("db_user"),
                password=module_params.get("db_password"))


def clean_pg_message(exc):
    """First meaningful line of a libpq error, without the 'FATAL:' noise."""
    text = str(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return re.sub(r"^(FATAL|ERROR):\s*", "", line)
    return exc.__class__.__name__


def connect(params, database, connect_timeout=CONNECT_TIMEOUT, application_name=APPLICATION_NAME):
    """``psycopg2.connect(**params)`` with the collection's timeout and application name, autocommit off.

    ``database`` names the database in the messages ("the Mastodon database"). Raises ConnectError when
    psycopg2 is missing or the server refuses (the app words the refusal from its ``reason``, with where it
    connected); the password is never in the message.
    """
    if not HAS_PSYCOPG2:
        raise ConnectError("the psycopg2 Python library is required to read %s" % database)
    try:
        return psycopg2.connect(connect_timeout=connect_timeout, application_name=application_name, **params)
    except PGError as exc:
        reason = clean_pg_message(exc)
        raise ConnectError("cannot connect to %s: %s" % (database, reason), reason) from None


def table_columns(cursor, table):
    """Column names of ``table`` in the search path (empty set: no such table). ``table`` is read as SQL
    names are: quote it (``'"user"'``) for a mixed-case or reserved name."""
    cursor.execute("SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass(%s)"
                   " AND a.attnum > 0 AND NOT a.attisdropped", (table,))
    return set(row[0] for row in cursor.fetchall())
