"""The Misskey drive move's shared pieces (tests/integration/test_misskey_drive_move.py,
test_misskey_drive_hostile.py, test_misskey_files_fallback_nginx.py): the module's play, a Misskey host
with the fixture drive (tests/fixtures/misskey_drive.py) whose meta row points at the bucket, and its
site on nginx with the stand-in for Misskey's /files/ route (the fixtures ``drive`` and ``site`` of
tests/integration/conftest.py).
"""

import os
import shlex

from tests.fixtures.misskey_drive import Drive, sample_drive
from tests.misskey_host import install_misskey

MOVE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Move the drive
      fediverse.object_storage.misskey_drive_move:
        config_file: "{{ config_file }}"
        files_dir: "{{ files_dir }}"
        ca_bundle: "{{ ca_bundle }}"
        state: "{{ move_state | default('moved') }}"
        limit: "{{ move_limit | default(omit) }}"
        batch_size: 2
        drop_backup: "{{ drop_backup | default(false) }}"
"""
PREFIX = "misskey"
HOST = "mk.example.net"

NGINX_ROLE = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Move Misskey's files with the role
      ansible.builtin.include_role:
        name: fediverse.object_storage.misskey
        tasks_from: drive_move
"""


def build_drive(pg, rgw, bucket, tmp_path, version, db_prefix="mkd_"):
    """A Misskey host of ``version``: its database (meta row pointing at the bucket), default.yml and a
    sample drive in ``tmp_path/misskey/files`` (tests/fixtures/misskey_drive.py)."""
    directory = tmp_path / "misskey"
    instance = "https://" + HOST
    base_url = "https://s3.localhost:%d/%s" % (rgw.https_port, bucket)
    db, config = install_misskey(directory, pg, version, url=instance + "/", db_prefix=db_prefix, meta={
        "useObjectStorage": True, "objectStorageBucket": bucket, "objectStoragePrefix": PREFIX,
        "objectStorageBaseUrl": base_url, "objectStorageEndpoint": "127.0.0.1:%d" % rgw.https_port,
        "objectStorageRegion": "us-east-1", "objectStorageUseSSL": True, "objectStorageAccessKey": rgw.access_key,
        "objectStorageSecretKey": rgw.secret_key, "objectStorageSetPublicRead": True,
        "objectStorageS3ForcePathStyle": True})
    d = sample_drive(Drive(pg, db, version, str(directory / "files"), instance))
    d.extra = dict(config_file=str(config), files_dir=d.files_dir, ca_bundle=rgw.ca_bundle)
    d.base_url, d.bucket = base_url, bucket
    return d


def objects(s3, bucket):
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def row(pg, d, file_id):
    cols = ["accessKey", "thumbnailAccessKey", "webpublicAccessKey", "url", "thumbnailUrl", "webpublicUrl",
            "storedInternal"]
    [values] = pg.execute('SELECT %s FROM drive_file WHERE id = \'%s\'' % (", ".join('"%s"' % c for c in cols), file_id),
                          d.db)
    return dict(zip(cols, values))


def start_site(tmp_path, pg, drive, nginx):
    """Misskey's site (the stand-in for its /files/ route behind it) on ``nginx``, started: ``.nginx .standin
    .file .snippets .drive .write(extra) .extra`` (the misskey role's nginx inputs). Stop ``.standin``."""
    from tests.misskey_files_standin import FilesStandIn  # the collection is on sys.path under pytest

    standin = FilesStandIn(pg.dsn(drive.db), drive.files_dir).start()
    sites, snippets = tmp_path / "sites", tmp_path / "snippets"
    sites.mkdir()
    snippets.mkdir()

    class Site:
        pass

    s = Site()
    s.nginx, s.standin, s.file, s.snippets, s.drive = nginx, standin, sites / "misskey", snippets, drive
    s.write = lambda extra="": s.file.write_text(
        "server {\n    listen 127.0.0.1:%d;\n    server_name %s;\n\n%s"
        "    location / {\n        proxy_pass http://127.0.0.1:%d;\n    }\n}\n" % (nginx.port, HOST, extra, standin.port))
    s.write()
    nginx.write_config("include %s;\n" % s.file, wrap=True, kind="http")
    nginx.start()
    s.extra = dict(misskey_dir=os.path.dirname(os.path.dirname(drive.extra["config_file"])),
                   misskey_files_dir=drive.files_dir, misskey_s3_ca_bundle=drive.extra["ca_bundle"],
                   misskey_nginx_site_file=str(s.file), misskey_nginx_snippets_dir=str(snippets),
                   misskey_files_upstream="http://127.0.0.1:%d" % standin.port,
                   misskey_nginx_test_command=" ".join(shlex.quote(a) for a in nginx._cmd("-t")),
                   misskey_nginx_reload_command=" ".join(shlex.quote(a) for a in nginx._cmd("-s", "reload")),
                   misskey_services=[], misskey_restart_command="true")
    return s
