"""The Misskey /files/ fallback (misskey role, entry point drive_move) and nginx (issue 20, finding 5): real
PostgreSQL (Misskey 2025.x tables, tests/fixtures/misskey_drive.py), real Ceph RGW, a real nginx.

- A meta row whose objectStorageBaseUrl or objectStoragePrefix ends in a newline (a pattern ending in $
  accepted it) is refused before anything is written: no snippet, no include line, no row flipped, and
  nginx still reloads.
- When nginx -t refuses the configuration after the snippet and its include line were written (here: the
  admin's site already has its own `location /files/`), the previous files are put back, so nginx keeps
  reloading with the old configuration instead of failing at its next reload.
"""

import os

import pytest

from tests.ansible_helpers import run_playbook
from tests.fixtures.misskey_drive import PNG, dump, tree
from tests.misskey_drive_support import HOST, NGINX_ROLE
from tests.nginx_proxy_support import request

SNIPPET = "fediverse-misskey-files.conf"




def failure_text(result):
    return "\n".join(str(t["result"].get("msg", "")) for t in result.tasks if t["result"].get("failed"))


def nginx_reloads(s):
    """nginx -t passes and a reload (SIGHUP) takes: the next reload of the live site does not fail."""
    ok, out = s.nginx.test()
    assert ok, out
    s.nginx.reload()
    served = request(s.nginx.port, "/files/" + s.drive.cached["accessKey"], HOST)  # a file no move touches
    assert served.status == 200 and served.body == PNG + b"remote", served


# Only a final newline: every other character was refused before too (tests/unit/test_misskey_files_fallback.py
# checks them all); "\n" + a directive fails a pattern ending in $ as well.
@pytest.mark.parametrize("column, tail", [("objectStorageBaseUrl", "\n"), ("objectStoragePrefix", "\n")])
def test_a_stored_value_nginx_would_read_as_syntax_is_refused_before_anything_is_written(pg, site, column, tail):
    s, d = site, site.drive
    pg.execute('UPDATE meta SET "%s" = "%s" || %s' % (column, column, "E'%s'" % tail.encode("unicode_escape").decode()),
               d.db)
    [(stored,)] = pg.execute('SELECT "%s" FROM meta' % column, d.db)
    assert stored.endswith(tail)
    site_before, db_before, disk_before = s.file.read_text(), dump(pg, d.db), tree(d.files_dir)

    result = run_playbook(NGINX_ROLE, extra_vars=s.extra)
    assert result.rc != 0
    message = failure_text(result)
    assert os.listdir(s.snippets) == [] and s.file.read_text() == site_before, message
    assert "The meta row's %s must be" % column in message and repr(stored) in message, message
    assert "nothing was changed" in message, message
    assert dump(pg, d.db) == db_before and tree(d.files_dir) == disk_before  # no row moved
    nginx_reloads(s)


def test_nginx_refusing_the_fallback_puts_the_previous_files_back(pg, site):
    s, d = site, site.drive
    # The admin already routes /files/ in the site (a realistic hand-made cache location): the include of the
    # fallback makes a second `location /files/`, which nginx -t refuses.
    s.write("    location /files/ {\n        proxy_pass http://127.0.0.1:%d;\n    }\n\n" % s.standin.port)
    s.nginx.reload()
    site_before, db_before = s.file.read_text(), dump(pg, d.db)

    result = run_playbook(NGINX_ROLE, extra_vars=s.extra)
    assert result.rc != 0
    message = failure_text(result)
    assert "previous files were put back" in message and 'duplicate location "/files/"' in message, message
    assert s.file.read_text() == site_before  # the include line is gone again
    assert os.listdir(s.snippets) == []  # the snippet did not exist before: removed
    assert dump(pg, d.db) == db_before  # the move never started
    nginx_reloads(s)


def test_fallback_removal_through_the_same_transaction(pg, site):
    """files_fallback_remove takes the include line and the snippet away (nginx -t, reload), and a second run
    changes nothing; a removal nginx refuses is put back (snippet and include line as they were)."""
    s = site
    site_before = s.file.read_text()
    assert run_playbook(NGINX_ROLE, extra_vars=s.extra).rc == 0
    assert (s.snippets / SNIPPET).exists() and SNIPPET in s.file.read_text()
    installed = (s.snippets / SNIPPET).read_text(), s.file.read_text()

    remove = NGINX_ROLE.replace("Move Misskey's files with the role", "Remove the fallback").replace(
        "tasks_from: drive_move", "tasks_from: files_fallback_remove")
    # A configuration nginx refuses at the removal (here a typo an admin left in the site meanwhile): the
    # removal is not left half done, both files come back as they were.
    s.file.write_text(installed[1].replace("    location / {", "    retrun 204;\n    location / {"))
    needing = s.file.read_text()
    failed = run_playbook(remove, extra_vars=s.extra)
    assert failed.rc != 0 and "previous files were put back" in failure_text(failed), failure_text(failed)
    assert s.file.read_text() == needing and (s.snippets / SNIPPET).read_text() == installed[0]
    s.file.write_text(installed[1])

    removed = run_playbook(remove, extra_vars=s.extra)
    assert removed.rc == 0, failure_text(removed)
    assert not (s.snippets / SNIPPET).exists() and s.file.read_text() == site_before
    nginx_reloads(s)
    again = run_playbook(remove, extra_vars=s.extra)
    assert again.rc == 0 and again.stats["localhost"]["changed"] == 0, again
