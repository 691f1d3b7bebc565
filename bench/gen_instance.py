"""Generate a synthetic Mastodon instance for the benchmark: DB rows + media files.

    python bench/gen_instance.py --dsn "host=... port=... user=... password=..." --dbname bench \
        --objects 20000 --system-root DIR [--files-every 1] [--seed 1]

Rows: remote media attachments (jpeg, storage schema 1, snowflake ids) of one remote account,
created one every 10 seconds until an hour ago (as an instance's cache grows over time);
each row owns two objects (original + small), so --objects N makes N/2 rows. Keys come from the
collection's own enumeration (plugins/module_utils/mastodon/db.py), so files and DB always agree.

Size mix (a scaled-down but realistic cache: many small previews, a long tail of big files):
  small style: 2-30 KiB
  original:    89.5 % 10-60 KiB, 10 % 60-300 KiB, 0.5 % 1-3 MiB, plus every 5000th row 16 MiB
               (above Mastodon's 15 MB multipart threshold).
--files-every K writes the files of one row in K only (the others are "missing source"), with
--tiny every file is 64 bytes: both used by the 200,000-row memory measurement.
"""

import argparse
import os
import random
import sys
import time

import psycopg2

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(REPO, ".cache", "collections"), REPO):
    if p not in sys.path:
        sys.path.insert(0, p)

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db as db_lib  # noqa: E402
from tests.fixtures.mastodon_schema import schema_sql  # noqa: E402

KIB = 1024
MIB = 1024 * 1024
BASE_ID = 108000000000000000


def size_for(rng, style, row_number):
    if style != "original":
        return rng.randint(2 * KIB, 30 * KIB)
    if row_number % 5000 == 4999:
        return 16 * MIB + rng.randint(0, MIB)
    r = rng.random()
    if r < 0.895:
        return rng.randint(10 * KIB, 60 * KIB)
    if r < 0.995:
        return rng.randint(60 * KIB, 300 * KIB)
    return rng.randint(1 * MIB, 3 * MIB)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dsn", required=True, help="libpq DSN without dbname")
    ap.add_argument("--dbname", required=True)
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--system-root", required=True)
    ap.add_argument("--files-every", type=int, default=1)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rows = max(1, args.objects // 2)
    start = time.monotonic()

    admin = psycopg2.connect(args.dsn + " dbname=postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS %s" % args.dbname)
        cur.execute("CREATE DATABASE %s" % args.dbname)
    admin.close()
    conn = psycopg2.connect(args.dsn + " dbname=%s" % args.dbname)
    with conn, conn.cursor() as cur:
        cur.execute(schema_sql("4.6"))
        cur.execute("INSERT INTO accounts (id, username, domain, created_at, updated_at)"
                    " VALUES (1, 'remote', 'remote.example', now(), now())")
        cur.execute(
            "INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type,"
            " file_storage_schema_version, type, created_at, updated_at)"
            " SELECT %s + g, 1, 'https://remote.example/m/' || g || '.jpg', 'm' || g || '.jpg', 'image/jpeg',"
            " 1, 0, t, t FROM generate_series(1, %s) g, LATERAL (SELECT now() - (%s - g) * interval '10 seconds'"
            " - interval '1 hour' AS t) ts",
            (BASE_ID, rows, rows))
    conn.close()

    rng = random.Random(args.seed)
    blob = rng.randbytes(17 * MIB) if hasattr(rng, "randbytes") else os.urandom(17 * MIB)
    params = db_lib.connection_params(dbname=args.dbname, **dict(
        item.split("=", 1) for item in args.dsn.split() if item.split("=", 1)[0] in ("host", "port", "user", "password")))
    conn = db_lib.connect(**params)
    total_bytes = 0
    files = 0
    made_dirs = set()
    for number, row in enumerate(db_lib.iter_rows_objects(conn, scope=["cache"])):
        if number % args.files_every:
            continue
        for obj in row.objects:
            style = obj.key.split("/")[-2]
            size = 64 if args.tiny else size_for(rng, style, number)
            path = os.path.join(args.system_root, obj.key)
            d = os.path.dirname(path)
            if d not in made_dirs:
                os.makedirs(d, exist_ok=True)
                made_dirs.add(d)
            offset = rng.randint(0, len(blob) - size)
            with open(path, "wb") as fh:
                fh.write(blob[offset:offset + size])
            total_bytes += size
            files += 1
    conn.close()
    print("rows=%d files=%d bytes=%d seconds=%.1f" % (rows, files, total_bytes, time.monotonic() - start))


if __name__ == "__main__":
    main()
