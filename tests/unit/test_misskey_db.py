"""plugins/module_utils/misskey/db.py: connection settings from default.yml, what the meta row gets."""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import MisskeyConfigError
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.db import (
    connection_params,
    connection_params_from,
    db_argument_spec,
    endpoint_url,
    wanted_meta,
)

KEYS = dict(bucket="b", base_url="https://s3.example.net", access_key="a", secret_key="s")


@pytest.mark.parametrize("endpoint,region,expected", [
    ("ewr1", None, "ewr1"),
    ("ewr1", "", "ewr1"),
    ("https://sgp1.vultrobjects.com", "  ", "sgp1"),
    ("https://127.0.0.1:8443", None, "us-east-1"),
    ("s3.example.org", None, "us-east-1"),
    ("ewr1", "eu-central-1", "eu-central-1"),
])
def test_region_is_never_null(endpoint, region, expected):
    assert wanted_meta(endpoint=endpoint, region=region, **KEYS)["objectStorageRegion"] == expected


def test_port_goes_into_the_endpoint_column():
    wanted = wanted_meta(endpoint="https://127.0.0.1:8443", **KEYS)
    assert wanted["objectStorageEndpoint"] == "127.0.0.1:8443" and wanted["objectStoragePort"] == 8443
    assert endpoint_url(wanted) == "https://127.0.0.1:8443"
    explicit = wanted_meta(endpoint="h.example", port=9000, use_ssl=False, **KEYS)
    assert explicit["objectStorageEndpoint"] == "h.example:9000" and endpoint_url(explicit) == "http://h.example:9000"
    default = wanted_meta(endpoint="https://ewr1.vultrobjects.com:443", **KEYS)
    assert default["objectStorageEndpoint"] == "ewr1.vultrobjects.com"
    assert wanted_meta(endpoint="ewr1", port=0, **KEYS)["objectStoragePort"] is None
    assert wanted_meta(use_object_storage=False) == {"useObjectStorage": False}


def test_connection_params_from_default_yml(tmp_path):
    config = tmp_path / "default.yml"
    config.write_text("url: https://mk.example/\ndb:\n  host: db.internal\n  port: 5433\n  db: misskey\n"
                      "  user: example-misskey-user\n  pass: 'p@ss:word'\n")
    assert connection_params(config_file=str(config)) == {
        "host": "db.internal", "port": 5433, "dbname": "misskey", "user": "example-misskey-user",
        "password": "p@ss:word"}
    # options win; an empty password option does not override the file's
    params = dict((name, None) for name in db_argument_spec())
    params.update(config_file=str(config), db_host="/run/postgresql", db_port=6432, db_password="")
    got = connection_params_from(params)
    assert (got["host"], got["port"], got["password"]) == ("/run/postgresql", 6432, "p@ss:word")
    assert connection_params(dbname="mk") == {"dbname": "mk", "port": 5432}
    with pytest.raises(MisskeyConfigError, match="no database name"):
        connection_params(host="x")
    with pytest.raises(MisskeyConfigError, match="does not exist"):
        connection_params(config_file=str(tmp_path / "missing.yml"))


def test_argument_spec_keeps_the_old_option_names():
    spec = db_argument_spec()
    assert spec["db_password"]["no_log"] is True
    assert {alias for option in spec.values() for alias in option.get("aliases", [])} == {
        "login_host", "login_port", "login_user", "login_password", "db"}
