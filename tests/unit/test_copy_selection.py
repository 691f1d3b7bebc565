"""Which rows an incremental copy selects (plugins/module_utils/copy/selection.py): the SQL of Selection.

(The SQL runs against a real PostgreSQL in tests/integration/test_media_copy_incremental.py.)"""

import datetime

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import selection as sel_lib

SINCE = datetime.datetime(2026, 1, 2, 3, 4, 5, 678000)
COLUMNS = {"id", "updated_at", "file_updated_at", "file_file_name"}


def test_selection_sql():
    record = {"kinds": {"media_attachments/files": {"since": SINCE, "high_id": 42, "retry_ids": [3]}}}
    sel = sel_lib.Selection(record, margin=600)
    sql, params = sel("media_attachments/files", "media_attachments", "file", COLUMNS)
    assert sql == "t.id > %s OR t.updated_at >= %s OR t.file_updated_at >= %s OR t.id = ANY(%s)"
    assert params == [42, SINCE - datetime.timedelta(minutes=10), SINCE - datetime.timedelta(minutes=10), [3]]
    # a kind the record does not know, or a table without updated_at: every row
    assert sel("accounts/avatars", "accounts", "avatar", {"id", "updated_at"}) is None
    assert sel("media_attachments/files", "media_attachments", "file", {"id", "file_file_name"}) is None
    assert sel.kinds == {"media_attachments/files", "accounts/avatars"}
    assert sel.full_kinds == {"accounts/avatars", "media_attachments/files"}


def test_no_record_selects_every_row_and_notes_the_kinds():
    sel = sel_lib.Selection(None)
    assert sel("media_attachments/files", "media_attachments", "file", COLUMNS) is None
    assert sel.kinds == sel.full_kinds == {"media_attachments/files"}


def test_margin_and_no_retry_clause():
    record = {"kinds": {"accounts/avatars": {"since": SINCE, "high_id": 7, "retry_ids": []}}}
    sql, params = sel_lib.Selection(record, margin=-5)("accounts/avatars", "accounts", "avatar", {"id", "updated_at"})
    assert sql == "t.id > %s OR t.updated_at >= %s"  # no avatar_updated_at column, nothing to retry
    assert params == [7, SINCE]  # a negative margin counts as none
    assert sel_lib.Selection(record).margin == datetime.timedelta(seconds=sel_lib.DEFAULT_MARGIN)
