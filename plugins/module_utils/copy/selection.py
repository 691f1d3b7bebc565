# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which rows a copy run selects: the SQL a copy record adds to the database's enumeration.

Plain Python (no Ansible import), unit-tested in tests/unit/test_copy_selection.py.

``Selection`` is the ``changed`` callback of db.iter_rows_objects / count_rows. Given the record of
the last complete run (copy/record.py), a kind is narrowed to the rows that changed since:
``updated_at >= since - margin`` (Rails sets it when it saves a row), or
``<attachment>_updated_at >= since - margin`` (Paperclip sets it when a file is assigned), or an id
above the record's highest, or a row the record says to retry. The margin covers the time between
Rails' save and the commit, and clock skew between the app host and the database. Without a record
(or for a table with no ``updated_at``), every row is selected.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import datetime

DEFAULT_MARGIN = 600


def db_now(conn):
    """The database's clock in UTC (naive, as Rails stores ``timestamp without time zone``).

    ``now()`` is the start of the current transaction: called before the enumeration in the same
    transaction, it is earlier than the snapshot of every query of the run.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT now() AT TIME ZONE 'UTC'")
        return cur.fetchone()[0]


class Selection(object):
    """The ``changed`` callback of db.iter_rows_objects / count_rows for one run.

    With ``record`` None every row is selected (a full run); the kinds queried are noted either
    way, so the record written at the end covers them all.
    """

    def __init__(self, record=None, margin=DEFAULT_MARGIN):
        self.record = record
        self.margin = datetime.timedelta(seconds=max(0, int(margin)))
        self.kinds = set()
        self.full_kinds = set()

    def __call__(self, kind, table, att, columns):
        self.kinds.add(kind)
        entry = (self.record or {}).get("kinds", {}).get(kind)
        if entry is None or "updated_at" not in columns:
            # No record for this kind (or no way to see what changed): every row.
            self.full_kinds.add(kind)
            return None
        since = entry["since"] - self.margin
        clauses = ["t.id > %s", "t.updated_at >= %s"]
        params = [entry["high_id"], since]
        if "%s_updated_at" % att in columns:
            clauses.append("t.%s_updated_at >= %%s" % att)
            params.append(since)
        if entry["retry_ids"]:
            clauses.append("t.id = ANY(%s)")
            params.append(list(entry["retry_ids"]))
        return " OR ".join(clauses), params
