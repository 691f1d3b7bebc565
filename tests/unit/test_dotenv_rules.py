"""The collection reads .env.production as Mastodon does: Ruby dotenv's parser rules.

The table is taken from bkeepers/dotenv spec/dotenv/parser_spec.rb (version 3.x, the parser
Mastodon loads .env.production with); each row is (dotenv text, expected {KEY: value}).
Rows marked "was wrong" gave another value with the collection's earlier line reader.
"""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.db import (
    connection_params,
    parse_env_text,
)
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.envfile import read_env

DOTENV_TABLE = [
    # (text, expected)
    ("FOO=bar", {"FOO": "bar"}),
    ("FOO= bar", {"FOO": "bar"}),
    ("FOO=bar\\ bar", {"FOO": "bar bar"}),  # was wrong: unquoted escapes
    ("FOO =bar", {"FOO": "bar"}),
    ("  FOO=bar", {"FOO": "bar"}),
    ("FOO=bar  ", {"FOO": "bar"}),
    ('FOO="bar"', {"FOO": "bar"}),
    ('FOO="bar"  ', {"FOO": "bar"}),
    ("FOO='bar'", {"FOO": "bar"}),
    ('FOO="escaped\\"bar"', {"FOO": 'escaped"bar'}),
    ("FOO=", {"FOO": ""}),
    ("FOO=test\nBAR=$FOO", {"FOO": "test", "BAR": "test"}),  # was wrong: no expansion
    ("FOO=test\nBAR=${FOO}bar", {"FOO": "test", "BAR": "testbar"}),
    ("BAR=$FOO", {"BAR": ""}),
    ('FOO=test\nBAR="quote $FOO"', {"FOO": "test", "BAR": "quote test"}),
    ("BAR='quote $FOO'", {"BAR": "quote $FOO"}),
    ('FOO="foo\\$BAR"', {"FOO": "foo$BAR"}),
    ('FOO="foo\\${BAR}"', {"FOO": "foo${BAR}"}),
    ('FOO=test\nBAR="foo\\${FOO} ${FOO}"', {"FOO": "test", "BAR": "foo${FOO} test"}),
    ("OPTION_A: 1", {"OPTION_A": "1"}),  # was wrong: YAML-style separator
    ("export OPTION_A=2", {"OPTION_A": "2"}),
    ("OPTION_A=2\nexport OPTION_A", {"OPTION_A": "2"}),
    ('FOO="bar\\nbaz"', {"FOO": "bar\\nbaz"}),  # was wrong: \n stays two characters
    ('DOTENV_LINEBREAK_MODE=legacy\nFOO="bar\\nbaz\\rfizz"',
     {"DOTENV_LINEBREAK_MODE": "legacy", "FOO": "bar\nbaz\rfizz"}),
    ("FOO.BAR=foobar", {"FOO.BAR": "foobar"}),
    ("foo=bar ", {"foo": "bar"}),
    ("lol$wut", {}),
    ("\n \t  \nfoo=bar\n \nfizz=buzz", {"foo": "bar", "fizz": "buzz"}),
    ('FOO="a\n\nb\n\nc"', {"FOO": "a\n\nb\n\nc"}),  # was wrong: multi-line value
    ("foo=bar # this is foo", {"foo": "bar"}),
    ('foo="bar#baz" # comment', {"foo": "bar#baz"}),
    ('foo= "bar#baz" # comment', {"foo": "bar#baz"}),
    ("\n\n\n # HERE GOES FOO \nfoo=bar", {"foo": "bar"}),
    ("# HELLO=world\n", {}),
    ("DATABASE_PASSWORD=\nDATABASE_USERNAME=root\nDATABASE_HOST=/tmp/mysql.sock",
     {"DATABASE_PASSWORD": "", "DATABASE_USERNAME": "root", "DATABASE_HOST": "/tmp/mysql.sock"}),
    ('foo="ba#r"', {"foo": "ba#r"}),
    ("foo='ba#r'  ", {"foo": "ba#r"}),
    ("OPTION_A=first line\nexport OPTION_B='line 1\nline 2\nline 3'\nOPTION_C=\"last line\"\n"
     "OPTION_ESCAPED='line one\nthis is \\'quoted\\'\none more line'",
     {"OPTION_A": "first line", "OPTION_B": "line 1\nline 2\nline 3", "OPTION_C": "last line",
      "OPTION_ESCAPED": "line one\nthis is \\'quoted\\'\none more line"}),  # was wrong: multi-line
    ('OPTION_B="line 1\nline 2"\nOPTION_ESCAPED="line one\nthis is \\"quoted\\"\none more line"',
     {"OPTION_B": "line 1\nline 2", "OPTION_ESCAPED": 'line one\nthis is "quoted"\none more line'}),
    ("echo=escaped-\\$(echo hello)", {"echo": "escaped-$(echo hello)"}),
    ("FOO=bar\rbaz=fbb", {"FOO": "bar", "baz": "fbb"}),
    ("FOO=bar\r\nbaz=fbb", {"FOO": "bar", "baz": "fbb"}),
    ('FOO="bar\\rbaz"', {"FOO": "bar\\rbaz"}),
    ('FOO="bar\\$ \\$\\$"', {"FOO": "bar$ $$"}),
    ('FOO="bar $ "', {"FOO": "bar $ "}),
    # The issue's own case, and what Mastodon's sample and admins write.
    ("DB_PASS=abc#def", {"DB_PASS": "abc"}),  # was wrong: "abc#def"
    ("DB_PASS=abc #def", {"DB_PASS": "abc"}),
    ("DB_PASS='abc#def'", {"DB_PASS": "abc#def"}),
    ("export DB_HOST=/var/run/postgresql\nexport DB_PORT=5432", {"DB_HOST": "/var/run/postgresql", "DB_PORT": "5432"}),
    ("DB_USER=a\nDB_USER=b", {"DB_USER": "b"}),
]


@pytest.mark.parametrize("text, expected", DOTENV_TABLE, ids=[repr(t)[:40] for t, _e in DOTENV_TABLE])
def test_dotenv_rules(text, expected):
    assert read_env(text) == expected
    assert parse_env_text(text) == expected  # the reader the DB options use


def test_db_settings_follow_dotenv(tmp_path):
    path = tmp_path / ".env.production"
    path.write_text("DB_HOST=db.internal # primary\nDB_PASS=abc#def\nexport DB_USER=mastodon\n"
                    "DB_NAME=\"mastodon_\n_production\"\n")
    params = connection_params(env_file=str(path))
    assert params["host"] == "db.internal"
    assert params["password"] == "abc"
    assert params["user"] == "mastodon"
    assert params["dbname"] == "mastodon_\n_production"
