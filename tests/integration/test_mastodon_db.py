"""Enumeration of a Mastodon database (real PostgreSQL, Mastodon's real table definitions).

The expected keys come from the hand-written table of tests/fixtures/mastodon_instance.py.
"""

import os
import time

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.db import (
    DBError,
    connect,
    connection_params,
    count_rows,
    iter_rows_objects,
    table_columns,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import RowObjects
from tests.fixtures.mastodon_instance import build_instance
from tests.services.base import free_port

VARIANTS = ("4.6", "4.5")


@pytest.fixture(scope="module")
def instances(pg, tmp_path_factory):
    built = {}
    for variant in VARIANTS:
        root = tmp_path_factory.mktemp("system-" + variant.replace(".", "_"))
        built[variant] = build_instance(pg, "mastodon_db_" + variant.replace(".", "_"), root, variant=variant)
    return built


@pytest.fixture
def conn_for(instances):
    opened = []

    def make(variant):
        conn = connect(**instances[variant].db_params)
        opened.append(conn)
        return conn

    yield make
    for conn in opened:
        conn.close()


def collect(rows):
    """{key: (content_type, acl)} from RowObjects, failing on a key seen twice."""
    out = {}
    for row in rows:
        assert isinstance(row, RowObjects)
        for obj in row.objects:
            assert obj.key not in out, "duplicate key %s" % obj.key
            assert obj.kind == row.kind and obj.row_id == row.row_id
            out[obj.key] = (obj.content_type, obj.acl)
    return out


def row_ids(rows):
    return {(row.kind, row.row_id) for row in rows}


# ----------------------------------------------------------------------------- enumeration

@pytest.mark.parametrize("variant", VARIANTS)
def test_cache_scope_equals_expected(instances, conn_for, variant):
    conn = conn_for(variant)
    assert collect(iter_rows_objects(conn)) == instances[variant].expected


@pytest.mark.parametrize("variant", VARIANTS)
def test_local_scope_equals_expected(instances, conn_for, variant):
    conn = conn_for(variant)
    assert collect(iter_rows_objects(conn, scope=("local",))) == instances[variant].expected_local


@pytest.mark.parametrize("variant", VARIANTS)
def test_backups_only_when_asked(instances, conn_for, variant):
    conn = conn_for(variant)
    inst = instances[variant]
    assert collect(iter_rows_objects(conn, scope=(), include_backups=True)) == inst.expected_backups
    everything = collect(iter_rows_objects(conn, scope=("cache", "local"), include_backups=True))
    assert everything == inst.all_expected()
    without = collect(iter_rows_objects(conn, scope=("cache", "local")))
    assert not any(key.startswith("backups/") for key in without)


def test_thumbnail_version_column_detected(conn_for):
    assert "thumbnail_storage_schema_version" in table_columns(conn_for("4.6"), "media_attachments")
    assert "thumbnail_storage_schema_version" not in table_columns(conn_for("4.5"), "media_attachments")
    assert table_columns(conn_for("4.6"), "no_such_table") == set()


@pytest.mark.parametrize("variant", VARIANTS)
def test_count_rows_matches_rows_and_fixture(instances, conn_for, variant):
    conn = conn_for(variant)
    inst = instances[variant]
    for scope in ("cache", "local"):
        counts = count_rows(conn, scope=(scope,))
        assert counts == inst.expected_rows[scope]
        yielded = {}
        for row in iter_rows_objects(conn, scope=(scope,)):
            yielded[row.kind] = yielded.get(row.kind, 0) + 1
        assert yielded == counts
    assert count_rows(conn, scope=(), include_backups=True) == inst.expected_rows["backups"]


def test_missing_tables_are_skipped(pg, tmp_path):
    inst = build_instance(pg, "mastodon_db_partial", tmp_path / "system", variant="4.5", missing=())
    pg.execute("DROP TABLE site_uploads; DROP TABLE backups; ALTER TABLE accounts DROP COLUMN suspended_at",
               "mastodon_db_partial")
    conn = connect(**inst.db_params)
    try:
        got = collect(iter_rows_objects(conn, scope=("cache", "local"), include_backups=True))
        counts = count_rows(conn, scope=("cache", "local"), include_backups=True)
    finally:
        conn.close()
    expected = dict(inst.expected)
    expected.update(inst.expected_local)
    expected = {k: v for k, v in expected.items() if not k.startswith("site_uploads/")}
    # without accounts.suspended_at nothing can be known as suspended
    assert got == {k: (ct, None) for k, (ct, _acl) in expected.items()}
    assert "site_uploads/files" not in counts and "backups/dumps" not in counts


@pytest.mark.parametrize("variant", VARIANTS)
def test_fixture_files_on_disk(instances, variant):
    """The fixture wrote every referenced file but the deliberately missing ones."""
    inst = instances[variant]
    assert inst.missing_keys and inst.missing_keys <= set(inst.expected)
    for key in inst.all_expected():
        path = os.path.join(inst.system_root, key)
        assert os.path.isfile(path) is (key not in inst.missing_keys), key
    assert os.path.getsize(os.path.join(inst.system_root, inst.large_key)) == inst.large_size > 12 * 1024 * 1024
    # nothing on disk that the database does not reference
    on_disk = set()
    for root, _dirs, files in os.walk(inst.system_root):
        on_disk.update(os.path.relpath(os.path.join(root, f), inst.system_root) for f in files)
    assert on_disk == set(inst.all_expected()) - inst.missing_keys


# ------------------------------------------------------------------------ sharding and limit

@pytest.mark.parametrize("variant", VARIANTS)
def test_two_shards_cover_everything_without_overlap(instances, conn_for, variant):
    conn = conn_for(variant)
    inst = instances[variant]
    scope = ("cache", "local")
    shard0 = list(iter_rows_objects(conn, scope=scope, include_backups=True, shard_index=0, shard_count=2))
    shard1 = list(iter_rows_objects(conn, scope=scope, include_backups=True, shard_index=1, shard_count=2))
    assert shard0 and shard1
    assert not row_ids(shard0) & row_ids(shard1)
    keys0, keys1 = collect(shard0), collect(shard1)
    assert not set(keys0) & set(keys1)
    assert dict(keys0, **keys1) == inst.all_expected()
    assert all(row.row_id % 2 == 0 for row in shard0) and all(row.row_id % 2 == 1 for row in shard1)
    c0 = count_rows(conn, scope=scope, include_backups=True, shard_index=0, shard_count=2)
    c1 = count_rows(conn, scope=scope, include_backups=True, shard_index=1, shard_count=2)
    full = count_rows(conn, scope=scope, include_backups=True)
    assert {k: c0.get(k, 0) + c1.get(k, 0) for k in full} == full
    assert sum(c0.values()) == len(shard0) and sum(c1.values()) == len(shard1)


def test_limit_caps_total_rows(conn_for):
    conn = conn_for("4.6")
    full = list(iter_rows_objects(conn))
    assert len(full) == 21
    for limit in (0, 1, 5, 9, 21, 1000):
        rows = list(iter_rows_objects(conn, limit=limit))
        assert len(rows) == min(limit, 21)
        assert rows == full[:len(rows)]  # same order, a prefix of the full enumeration
        assert sum(count_rows(conn, limit=limit).values()) == min(limit, 21)


def test_small_batches_and_server_side_cursor(conn_for):
    conn = conn_for("4.6")
    reference = list(iter_rows_objects(conn, scope=("cache", "local")))
    gen = iter_rows_objects(conn, scope=("cache", "local"), batch_size=2)
    first = next(gen)
    with conn.cursor() as cur:
        cur.execute("SELECT name FROM pg_cursors")
        names = [r[0] for r in cur.fetchall()]
    assert any(name.startswith("fediverse_media_") for name in names), names
    # counting on the same connection meanwhile does not end the running enumeration
    assert count_rows(conn, scope=("cache", "local"))["media_attachments/files"] == 12
    rest = list(gen)
    assert [first] + rest == reference
    with conn.cursor() as cur:  # the enumeration closed its cursor and ended its transaction
        cur.execute("SELECT count(*) FROM pg_cursors")
        assert cur.fetchone()[0] == 0


def _rss():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


def test_memory_stays_bounded_with_200k_rows(pg, tmp_path):
    """200,000 cached media rows: iterating them does not grow the process (named cursor).

    Measured here: growth 0 MiB with the named cursor; a plain (client-side) cursor over just
    three of the columns grows RSS by ~24 MiB, the Python objects of a list of rows by far more.
    """
    inst = build_instance(pg, "mastodon_db_big", tmp_path / "system", missing=())
    pg.execute(
        "INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type,"
        " file_storage_schema_version, created_at, updated_at)"
        " SELECT 200000000000000000 + g, 2, 'https://remote.example/x' || g, md5(g::text) || '.jpg',"
        " 'image/jpeg', 1, now(), now() FROM generate_series(1, 200000) g",
        "mastodon_db_big")
    conn = connect(**inst.db_params)
    try:
        assert count_rows(conn)["media_attachments/files"] == 200008
        baseline = peak = _rss()
        started = time.monotonic()
        rows = objects = 0
        for row in iter_rows_objects(conn, batch_size=2000):
            rows += 1
            objects += len(row.objects)
            if rows % 5000 == 0:
                peak = max(peak, _rss())
        seconds = time.monotonic() - started
    finally:
        conn.close()
    assert rows == 200000 + 21
    assert objects == 400000 + 31
    growth = (peak - baseline) / 1048576.0
    print("200k rows enumerated in %.1f s, RSS growth %.1f MiB" % (seconds, growth))
    assert growth < 10


# ------------------------------------------------------------------ connection and env_file

def test_env_file_with_unix_socket(pg, instances, tmp_path):
    env = tmp_path / ".env.production"
    env.write_text("LOCAL_DOMAIN=example.social\nexport DB_HOST=%s\nDB_PORT=%d\nDB_NAME='%s'\nDB_USER=\"%s\"\nDB_PASS=\n"
                   % (pg.socket_dir, pg.port, instances["4.6"].db_params["dbname"], pg.user))
    params = connection_params(env_file=str(env))
    assert params["host"] == pg.socket_dir and params["port"] == pg.port and params["password"] is None
    conn = connect(**params)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT inet_server_addr() IS NULL")  # NULL over a unix socket
            assert cur.fetchone()[0] is True
        assert collect(iter_rows_objects(conn)) == instances["4.6"].expected
        # a read-only session: the enumeration can never write to Mastodon's database
        with pytest.raises(Exception) as err, conn.cursor() as cur:
            cur.execute("DELETE FROM backups")
        assert "read-only" in str(err.value)
        conn.rollback()
    finally:
        conn.close()
    # explicit options win over the env file
    other = connection_params(dbname=instances["4.5"].db_params["dbname"], env_file=str(env))
    conn = connect(**other)
    try:
        assert "thumbnail_storage_schema_version" not in table_columns(conn, "media_attachments")
    finally:
        conn.close()


def _no_traceback(message, secret=None):
    assert "Traceback" not in message and "\n" not in message
    if secret:
        assert secret not in message


def test_wrong_password_is_a_clear_error(pg, instances):
    params = dict(instances["4.6"].db_params, password="definitely-wrong-pw")
    with pytest.raises(DBError) as err:
        connect(**params)
    message = str(err.value)
    assert "authentication failed" in message and "127.0.0.1" in message
    _no_traceback(message, "definitely-wrong-pw")
    _no_traceback(message, pg.password)


def test_unreachable_port_is_a_clear_error(instances):
    params = dict(instances["4.6"].db_params, port=free_port())
    started = time.monotonic()
    with pytest.raises(DBError) as err:
        connect(**params)
    assert time.monotonic() - started < db.CONNECT_TIMEOUT + 5
    message = str(err.value)
    assert message.startswith("cannot connect to PostgreSQL at ") and str(params["port"]) in message
    _no_traceback(message, params["password"])


def test_missing_database_is_a_clear_error(instances):
    params = dict(instances["4.6"].db_params, dbname="no_such_mastodon")
    with pytest.raises(DBError) as err:
        connect(**params)
    assert "database 'no_such_mastodon' does not exist" in str(err.value)
    _no_traceback(str(err.value), params["password"])
