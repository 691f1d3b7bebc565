"""plugins/module_utils/db/postgres.py, the PostgreSQL room both apps share, without a server.

The column lookup and the connection to a live server are covered by tests/integration/test_mastodon_db.py
and the Misskey module tests; here: the shared options, libpq's wording, a refused connection.
"""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import db
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey import db as misskey_db
from ansible_collections.fediverse.object_storage.plugins.module_utils.db import postgres
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import MisskeyConfigError
from tests.services.base import free_port


def without_aliases(spec):
    return dict((name, dict((k, v) for k, v in option.items() if k != "aliases")) for name, option in spec.items())


def test_both_apps_take_the_shared_db_options():
    shared = postgres.connection_argument_spec()
    assert shared["db_password"]["no_log"] is True and not any("aliases" in option for option in shared.values())
    mastodon, misskey = db.db_argument_spec(), misskey_db.db_argument_spec()
    assert without_aliases(mastodon) == dict(shared, env_file=dict(type="path"))
    assert without_aliases(misskey) == dict(shared, config_file=dict(type="path"))
    assert misskey["db_host"]["aliases"] == ["login_host"]
    # the aliases are the caller's: asking for them does not change the shared spec
    assert postgres.connection_argument_spec() == shared


def test_libpq_message_is_one_line_without_its_severity():
    error = Exception("FATAL:  password authentication failed for user \"mastodon\"\nconnection to server ...\n")
    assert postgres.clean_pg_message(error) == 'password authentication failed for user "mastodon"'
    assert postgres.clean_pg_message(Exception("")) == "Exception"


def test_a_refused_connection_is_one_sentence_per_app():
    port = free_port()
    params = dict(host="127.0.0.1", port=port, dbname="misskey", user="example", password="s3cret-pw")
    with pytest.raises(postgres.ConnectError) as shared:
        postgres.connect(params, "the test database")
    assert shared.value.reason and str(shared.value) == "cannot connect to the test database: " + shared.value.reason
    with pytest.raises(MisskeyConfigError) as misskey:
        misskey_db.connect(params)
    assert str(misskey.value) == "cannot connect to Misskey's database example@127.0.0.1:%d/misskey: %s" % (
        port, shared.value.reason)
    with pytest.raises(db.DBError) as mastodon:
        db.connect(**params)
    assert str(mastodon.value).startswith("cannot connect to PostgreSQL at example@127.0.0.1:%d/misskey: " % port)
    assert not [str(err.value) for err in (shared, misskey, mastodon) if "s3cret-pw" in str(err.value)]
