"""playbooks/migrate.yml with the opt-in move of Misskey's local files (migrate_misskey_move_files), then
playbooks/rollback.yml, end to end on a Misskey-shaped host (tests/migrate_support.py prepare_misskey):
Misskey 2025.x table definitions in real PostgreSQL, the fixture drive in files/, Misskey's documented
nginx site and the media proxy (s3.DOMAIN) on one real nginx TLS listener, the stand-in for Misskey's
/files/ route behind the site, real Ceph RGW over HTTPS. Keys only in the environment, as AWX injects them.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from tests.browser_support import check_misskey_in_browser, misskey_file_urls
from tests.fixtures.misskey_drive import PNG, WEBP, dump, tree
from tests.migrate_support import (
    MISSKEY_HOST,
    MISSKEY_PROXY_DOMAIN,
    ROLLBACK,
    keys_in,
    migrate,
    nginx_files,
    prepare_misskey,
)

PREFIX = "misskey"  # the misskey role's default prefix in subdomain mode
SNIPPET = "fediverse-misskey-files.conf"
OPT_IN = {"migrate_misskey_move_files": True}
BACKUP_TABLES = ("SELECT to_regclass('fediverse_object_storage_drive_backup'),"
                 " to_regclass('fediverse_object_storage_drive_journal')")


def test_migrate_moves_misskey_files_then_rollback_brings_everything_back(pg, rgw, s3, dns, nginx_factory, bucket_name,
                                                                        browser):
    root = tempfile.mkdtemp(prefix="fos-test-misskey-")
    os.chmod(root, 0o755)  # nginx's workers (www-data) write the app's cache below it
    host = prepare_misskey(os.path.join(root, "host"), pg, rgw, nginx_factory(), dns, bucket_name)
    try:
        d = host.drive
        site = os.path.join(host.layout["available"], "misskey")
        db_before, disk_before, site_before = dump(pg, d.db), tree(d.files_dir), Path(site).read_text()
        nginx_before = nginx_files(host)
        photo = d.photo["accessKey"]
        first = host.get("/files/" + photo)
        assert first.body == PNG + b"photo", first  # Misskey (the stand-in) serves it from disk

        # --check --diff: the counts and a sample, nothing written (no row, table, file, snippet, bucket, object).
        check = migrate(host, check=True, diff=True, callback="default", extra=OPT_IN)
        assert check.rc == 0, check.stdout[-4000:]
        assert "6 local files of local users: 5 to move, 1 missing on disk, 0 refused" in check.stdout, check.stdout[-4000:]
        assert "%s/%s" % (PREFIX, photo) in check.stdout  # the sample of row changes
        # The summary names the software found in package.json and the URL columns the move would rewrite or
        # leave (issue 23).
        assert "software: Misskey 2025.4.0; moved files get the upload headers of Misskey" in check.stdout
        assert ("move (check mode): URL columns would be rewritten: drive_file.url, drive_file.thumbnailUrl"
                in check.stdout), check.stdout[-4000:]
        assert "URL columns left: drive_file.src, drive_file.uri (" not in check.stdout  # one reason per line
        assert "move (check mode): URL columns left: drive_file.src (the URL a file was uploaded from" in check.stdout
        # Sharkey's profile background is not in Misskey 2025.x's tables: left, and said why
        assert re.search(r'move \(check mode\): URL columns left: [^"]*user\.backgroundUrl[^"]*\(not in this database',
                         check.stdout), check.stdout[-4000:]
        for secret in (rgw.secret_key, rgw.access_key, pg.password):
            assert secret not in check.stdout
        assert dump(pg, d.db) == db_before and pg.execute(BACKUP_TABLES, d.db) == [(None, None)]
        assert tree(d.files_dir) == disk_before and nginx_files(host) == nginx_before
        assert keys_in(s3, bucket_name) in (None, set())

        res = migrate(host, extra=OPT_IN)
        assert res.rc == 0, res
        stats = res.task("Move Misskey's local files into the bucket")["stats"]
        assert (stats["moved"], stats["missing"], stats["refused"]) == (5, 1, 0), stats
        k = lambda key: "%s/%s" % (PREFIX, key)  # noqa: E731
        assert keys_in(s3, bucket_name) == {
            k(d.photo["accessKey"]), k(d.photo["thumbnailAccessKey"]), k(d.photo["webpublicAccessKey"]),
            k(d.plain["accessKey"]), k(d.svg["accessKey"]), k(d.svg["thumbnailAccessKey"]), k(d.archive["accessKey"]),
            k(d.avatar["accessKey"]), k(d.avatar["thumbnailAccessKey"])}
        assert os.path.exists(os.path.join(host.layout["snippets"], SNIPPET))
        # An old /files/ URL through nginx: Misskey's 404 becomes a redirect to the object, which the proxy serves.
        for key, body in ((photo, PNG + b"photo"), (d.photo["thumbnailAccessKey"], WEBP + b"t1")):
            old = host.get("/files/" + key)
            location = old.header("Location")
            assert old.status == 302 and location == "https://%s/%s" % (MISSKEY_PROXY_DOMAIN, k(key)), old
            served = host.get(urlsplit(location).path, MISSKEY_PROXY_DOMAIN)
            assert served.status == 200 and served.body == body, served
        assert tree(d.files_dir) == disk_before  # local files never touched

        again = migrate(host, extra=OPT_IN)
        assert again.rc == 0 and again.changed == 0, [t["name"] for t in again.tasks if t["result"].get("changed")]

        # In a real browser: the moved image from its URL in the DB and from its old /files/ URL, fetch() and
        # canvas from Misskey's origin (CORS); failing without the CORS header and with the redirect broken.
        url, access_key = misskey_file_urls(pg.dsn(d.db), d.photo["id"])
        assert (url, access_key) == ("https://%s/%s" % (MISSKEY_PROXY_DOMAIN, k(photo)), k(photo))
        check_misskey_in_browser(browser, host, url, "https://%s/files/%s" % (MISSKEY_HOST, photo), MISSKEY_HOST,
                                 MISSKEY_PROXY_DOMAIN, os.path.join(host.layout["snippets"], SNIPPET))

        back = migrate(host, ROLLBACK)
        assert back.rc == 0, back
        assert back.task("Put back the drive rows")["still_moved"] == 0
        assert dump(pg, d.db) == db_before  # drive_file, user, emoji, meta: byte for byte
        assert not os.path.exists(os.path.join(host.layout["snippets"], SNIPPET))
        assert Path(site).read_text() == site_before
        served = host.get("/files/" + photo)  # Misskey serves its files again, no redirect
        assert served.status == 200 and served.body == PNG + b"photo", served
        assert host.get("/files/" + d.plain["accessKey"]).status == 200
        assert tree(d.files_dir) == disk_before

        again = migrate(host, ROLLBACK)
        assert again.rc == 0 and again.changed == 0, [t["name"] for t in again.tasks if t["result"].get("changed")]
        assert MISSKEY_HOST in Path(site).read_text()
    finally:
        host.standin.stop()
        shutil.rmtree(root, ignore_errors=True)
