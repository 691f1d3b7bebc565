"""A Misskey install on this machine for the tests: the one builder of its tree and its database.

- ``write_misskey``: the install's tree, ``package.json`` (the version) and ``.config/default.yml``;
- ``meta_database``: a database with the ``meta`` table of a Misskey version and its one row;
- ``install_misskey``: both, default.yml pointing at that database (what the misskey role, the drive
  move, migrate.yml and molecule read);
- ``read_meta``/``set_meta``/``storage_of``: the meta row; ``ROLE_PLAY``/``role_vars``/``pg_misskey``:
  the misskey role on such an install.

The meta tables are created with the object storage columns (names, types, defaults) of each
version's TypeORM entity plus some of its other columns:
  11.37.1   src/models/entities/meta.ts         (no useProxy / setPublicRead / s3ForcePathStyle yet)
  12.117.1  packages/backend/src/models/entities/meta.ts   (varchar(512))
  current   packages/backend/src/models/Meta.ts            (varchar(1024))
Used by the integration tests, tests/migrate_support.py and tests/molecule_host.py (no pytest here).
"""

from __future__ import annotations

import json
import secrets
import uuid
from pathlib import Path

ROLE_PLAY = """
- hosts: localhost
  gather_facts: false
  roles:
    - role: fediverse.object_storage.misskey
"""

STORAGE_COLUMNS_V11 = """
    "useObjectStorage" boolean NOT NULL DEFAULT false,
    "objectStorageBucket" character varying({n}),
    "objectStoragePrefix" character varying({n}),
    "objectStorageBaseUrl" character varying({n}),
    "objectStorageEndpoint" character varying({n}),
    "objectStorageRegion" character varying({n}),
    "objectStorageAccessKey" character varying({n}),
    "objectStorageSecretKey" character varying({n}),
    "objectStoragePort" integer,
    "objectStorageUseSSL" boolean NOT NULL DEFAULT true"""
STORAGE_COLUMNS_LATER = """,
    "objectStorageUseProxy" boolean NOT NULL DEFAULT true,
    "objectStorageSetPublicRead" boolean NOT NULL DEFAULT false,
    "objectStorageS3ForcePathStyle" boolean NOT NULL DEFAULT true"""

META_DDL = {
    "11.37.1": """CREATE TABLE meta (
    "id" character varying(32) PRIMARY KEY,
    "name" character varying(128),
    "description" character varying(1024),
    "maintainerName" character varying(128),
    "disableRegistration" boolean NOT NULL DEFAULT false,
    "cacheRemoteFiles" boolean NOT NULL DEFAULT true,
    "proxyRemoteFiles" boolean NOT NULL DEFAULT false,
    "smtpPass" character varying(128),
    "swPrivateKey" character varying(128),""" + STORAGE_COLUMNS_V11.format(n=512) + ")",
    "12.117.1": """CREATE TABLE meta (
    "id" character varying(32) PRIMARY KEY,
    "name" character varying(128),
    "description" character varying(1024),
    "maintainerName" character varying(128),
    "disableRegistration" boolean NOT NULL DEFAULT false,
    "pinnedPages" character varying(512)[] NOT NULL DEFAULT '{"/featured", "/channels", "/explore"}',
    "cacheRemoteFiles" boolean NOT NULL DEFAULT true,
    "proxyRemoteFiles" boolean NOT NULL DEFAULT false,
    "hcaptchaSecretKey" character varying(64),
    "smtpPass" character varying(128),
    "swPrivateKey" character varying(128),
    "deeplAuthKey" character varying(128),
    "repositoryUrl" character varying(512) NOT NULL DEFAULT 'https://github.com/misskey-dev/misskey',""" +
    STORAGE_COLUMNS_V11.format(n=512) + STORAGE_COLUMNS_LATER + """,
    "enableIpLogging" boolean NOT NULL DEFAULT false)""",
    "2025.4.0": """CREATE TABLE meta (
    "id" character varying(32) PRIMARY KEY,
    "name" character varying(1024),
    "shortName" character varying(64),
    "description" character varying(1024),
    "langs" character varying(1024)[] NOT NULL DEFAULT '{}',
    "cacheRemoteFiles" boolean NOT NULL DEFAULT false,
    "cacheRemoteSensitiveFiles" boolean NOT NULL DEFAULT true,
    "turnstileSecretKey" character varying(1024),
    "smtpPass" character varying(1024),
    "swPrivateKey" character varying(1024),
    "deeplAuthKey" character varying(1024),""" +
    STORAGE_COLUMNS_V11.format(n=1024) + STORAGE_COLUMNS_LATER + """,
    "enableIpLogging" boolean NOT NULL DEFAULT false,
    "policies" jsonb NOT NULL DEFAULT '{}',
    "serverRules" character varying(280)[] NOT NULL DEFAULT '{}')""",
}
STORAGE_COLUMNS = ["useObjectStorage", "objectStorageBucket", "objectStoragePrefix", "objectStorageBaseUrl",
                   "objectStorageEndpoint", "objectStorageRegion", "objectStorageAccessKey", "objectStorageSecretKey",
                   "objectStoragePort", "objectStorageUseSSL", "objectStorageUseProxy", "objectStorageSetPublicRead",
                   "objectStorageS3ForcePathStyle"]
# The meta table of the drive fixture's versions (tests/fixtures/misskey_drive.py FLAVOURS). Sharkey's
# models/Meta.ts (transfem-org/Sharkey 1c9b03f4) has these columns of Misskey 2025.x with the same types.
META_DDL_OF = {"12.119.0": "12.117.1", "sharkey-2023.11.2.beta1": "2025.4.0"}


def package_of(version):
    """``(name, version)`` of package.json for a version or a fork's fixture name ("sharkey-2023.11.2.beta1")."""
    if "-" in version and not version[0].isdigit():
        name, own = version.split("-", 1)
        return name, own
    return "misskey", version


def sql_literal(value):
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'%s'" % value.replace("'", "''")
    return str(value).lower()  # booleans and numbers


def meta_database(pg, version, row=None, prefix="mk_"):
    """A new database with Misskey ``version``'s meta table and its row (``id`` 'x', then ``row``:
    column -> value). Returns its name."""
    name = prefix + uuid.uuid4().hex[:10]
    pg.create_database(name)
    pg.execute(META_DDL[META_DDL_OF.get(version, version)], name)
    values = dict({"id": "x"}, **(row or {}))
    pg.execute("INSERT INTO meta (%s) VALUES (%s)" % (", ".join('"%s"' % c for c in values),
                                                      ", ".join(sql_literal(v) for v in values.values())), name)
    return name


def read_meta(pg, name):
    columns = [row[0] for row in pg.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'meta' ORDER BY ordinal_position", name)]
    rows = pg.execute("SELECT * FROM meta", name)
    return [dict(zip(columns, row)) for row in rows]


def set_meta(pg, name, values):
    assignments = ", ".join('"%s" = %s' % (column, sql_literal(value)) for column, value in values.items())
    pg.execute("UPDATE meta SET %s" % assignments, name)


def storage_of(pg, name):
    [row] = read_meta(pg, name)
    return dict((c, row[c]) for c in STORAGE_COLUMNS if c in row)


def default_yml(url, db, host, port, user, password):
    """A default.yml in the shape of Misskey's example: the instance URL, its port, the database."""
    return ("url: %s\nport: 3000\n\n# PostgreSQL\ndb:\n  host: %s\n  port: %d\n  db: %s\n  user: %s\n  pass: %s\n"
            "\nredis:\n  host: localhost\n  port: 6379\n" % (url, host, port, db, user, password))


def write_misskey(directory, version, config_text):
    """The install's tree under ``directory``: package.json of ``version``, .config/default.yml with
    ``config_text``. Returns the default.yml's path."""
    directory = Path(directory)
    (directory / ".config").mkdir(parents=True)
    name, own = package_of(version)
    (directory / "package.json").write_text(json.dumps({"name": name, "version": own}, indent="\t"))
    config = directory / ".config" / "default.yml"
    config.write_text(config_text)
    return config


def install_misskey(directory, pg, version, url="https://mk.example.net/", meta=None, db_prefix="mk_", db_host=None):
    """A Misskey ``version`` install: its meta database (``meta``: the row's values) and its tree under
    ``directory``, default.yml pointing at the database (as ``db_host`` when given: the address a
    container reaches PostgreSQL at). Returns ``(database name, default.yml's path)``."""
    name = meta_database(pg, version, meta, prefix=db_prefix)
    config = write_misskey(directory, version, default_yml(url, name, db_host or pg.host, pg.port, pg.user,
                                                           pg.password))
    return name, config


def role_vars(directory, marker, **more):
    extra = dict(
        misskey_dir=str(directory),
        misskey_domain="mk.example.net",
        misskey_proxy_mode="subdomain",
        misskey_s3_bucket="mk-example-media",
        misskey_s3_endpoint="ewr1",
        misskey_s3_verify=False,
        misskey_s3_access_key="AK" + secrets.token_hex(8).upper(),
        misskey_s3_secret_key="Sk" + secrets.token_urlsafe(24),
        misskey_services=[],
        misskey_restart_command="touch %s" % marker,
    )
    extra.update(more)
    return extra


def pg_misskey(tmp_path, pg, version):
    """A Misskey v11+ install under ``tmp_path/misskey`` (meta row with another provider's endpoint) and
    the misskey role's inputs for it (directory mode): ``(database, default.yml, restart marker, vars)``."""
    directory = tmp_path / "misskey"
    name, config = install_misskey(directory, pg, version, meta={
        "name": "Example", "smtpPass": "smtp-secret", "objectStorageEndpoint": "old.example"})
    marker = tmp_path / "restarted"
    return name, config, marker, role_vars(directory, marker, misskey_proxy_mode="directory")
