"""migrate.yml's input checks (plugins/module_utils/migrate/inputs.py, issue 24 item 5): each wrong input
gets exactly one message, which names the migrate_* variable the user set; no request is sent."""

import pytest
from ansible_collections.fediverse.object_storage.plugins.filter.migrate_inputs import migrate_input_problems
from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate import inputs as mi
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3 import client as s3u

# What a correct run passes (roles/migrate/defaults/main.yml with the required inputs set).
GOOD = {
    "migrate_app": "mastodon",
    "migrate_proxy_mode": "subdomain",
    "migrate_domain": "example.social",
    "migrate_media_domain": "s3.example.social",
    "migrate_extra_media_hosts": [],
    "migrate_bucket": "example-social-media",
    "migrate_endpoint": "ewr1",
    "migrate_access_key": "AKIAEXAMPLE",
    "migrate_secret_key": "secret",
    "migrate_vultr_api_key": "",
    "migrate_copy_scope": ["cache", "local"],
    "migrate_shard_index": 0,
    "migrate_shard_count": 1,
}


def with_(**changes):
    values = dict(GOOD, **changes)
    # The role's default: migrate_media_domain is s3.<migrate_domain> unless set.
    if "migrate_domain" in changes and "migrate_media_domain" not in changes:
        values["migrate_media_domain"] = "s3." + str(changes["migrate_domain"])
    return values


@pytest.mark.parametrize("values", [
    GOOD,
    with_(migrate_app="misskey", migrate_proxy_mode="directory"),
    with_(migrate_proxy_mode="system", migrate_media_domain="not checked; in mode system"),
    with_(migrate_extra_media_hosts=["https://media.example.com", "cdn.example.net:8443"]),
    with_(migrate_endpoint="https://127.0.0.1:7480"),
    with_(migrate_endpoint="fra1.vultrobjects.com"),  # a cluster newer than the list, by its host name
    with_(migrate_access_key="", migrate_secret_key="", migrate_vultr_api_key="vultr-key"),
    with_(migrate_copy_scope=["cache"]),
    with_(migrate_shard_index="1", migrate_shard_count="2"),  # -e name=value gives strings
], ids=lambda v: ",".join("%s=%r" % (k, v[k]) for k in v if v[k] != GOOD.get(k)) or "defaults")
def test_good_inputs_give_no_message(values):
    assert mi.input_problems(values) == []


# (case, changes, the variable named, words of the message: what was given, what is accepted)
BAD = [
    ("unknown app", dict(migrate_app="mastodn"), "migrate_app", ["'mastodn'", "mastodon or misskey"]),
    ("unknown proxy mode", dict(migrate_proxy_mode="subdir"), "migrate_proxy_mode",
     ["'subdir'", "subdomain, directory or system"]),
    ("system mode for Misskey", dict(migrate_app="misskey", migrate_proxy_mode="system"), "migrate_proxy_mode",
     ["does not apply to Misskey", "subdomain or directory"]),
    ("no domain", dict(migrate_domain=""), "migrate_domain", ["required", "example.social"]),
    ("domain injection", dict(migrate_domain="example.social; return 200"), "migrate_domain",
     ["must be a DNS name", "'example.social; return 200'"]),
    ("one-label domain", dict(migrate_domain="localhost"), "migrate_domain", ["must be a DNS name", "'localhost'"]),
    ("media domain injection", dict(migrate_media_domain="s3.example.social; return 200"), "migrate_media_domain",
     ["must be a DNS name", "'s3.example.social; return 200'"]),
    ("media domain is the app's", dict(migrate_media_domain="Example.Social"), "migrate_media_domain",
     ["other than migrate_domain", "example.social"]),
    ("extra media host injection", dict(migrate_extra_media_hosts=["https://ok.example", "https://a.example,\nS3=x"]),
     "migrate_extra_media_hosts", ["refused 'https://a.example,\\nS3=x'", "https URL or a host name"]),
    ("extra media hosts not a list", dict(migrate_extra_media_hosts="https://a.example"), "migrate_extra_media_hosts",
     ["must be a list", "'https://a.example'"]),
    ("no bucket", dict(migrate_bucket=""), "migrate_bucket", ["required"]),
    ("dotted bucket", dict(migrate_bucket="media.example.social"), "migrate_bucket",
     ["'media.example.social'", "contains dots", "Try 'media-example-social'"]),
    ("unknown Vultr cluster", dict(migrate_endpoint="ewr9"), "migrate_endpoint",
     ["'ewr9' is not a Vultr Object Storage cluster", "ewr1, ewr2", "sjc1", "ewr9.vultrobjects.com"]),
    ("no endpoint", dict(migrate_endpoint=""), "migrate_endpoint", ["required", "ewr1"]),
    ("endpoint scheme", dict(migrate_endpoint="ftp://s3.example.net"), "migrate_endpoint", ["http or https"]),
    ("access key without secret", dict(migrate_secret_key=""), "migrate_secret_key",
     ["migrate_access_key is set", "AWS_SECRET_ACCESS_KEY"]),
    ("secret without access key", dict(migrate_access_key=""), "migrate_access_key",
     ["migrate_secret_key is set", "AWS_ACCESS_KEY_ID"]),
    ("no keys at all", dict(migrate_access_key="", migrate_secret_key=""), "migrate_access_key",
     ["no S3 keys", "migrate_secret_key", "migrate_vultr_api_key"]),
    ("unknown copy scope", dict(migrate_copy_scope=["cache", "remote"]), "migrate_copy_scope",
     ["['cache', 'remote']", "cache and/or local"]),
    ("copy scope not a list", dict(migrate_copy_scope="cache"), "migrate_copy_scope", ["a list", "'cache'"]),
    ("no shard", dict(migrate_shard_count=0), "migrate_shard_count", ["1 or more", "0"]),
    ("shard count not a number", dict(migrate_shard_count="two"), "migrate_shard_count", ["whole number", "'two'"]),
    ("shard index too high", dict(migrate_shard_index=2, migrate_shard_count=2), "migrate_shard_index",
     ["from 0 to 1", "not 2"]),
    ("negative shard index", dict(migrate_shard_index=-1), "migrate_shard_index", ["from 0 to 0", "not -1"]),
]


@pytest.mark.parametrize("case, changes, variable, words", BAD, ids=[b[0] for b in BAD])
def test_each_bad_input_gets_exactly_its_own_message(case, changes, variable, words):
    problems = mi.input_problems(with_(**changes))
    assert len(problems) == 1, problems
    (named, message), = problems
    assert named == variable
    assert variable in message
    for word in words:
        assert word in message, (word, message)
    # No empty list shown ("refused: []"), no key.
    assert "[]" not in message and GOOD["migrate_access_key"] not in message


def test_several_bad_inputs_get_one_message_each_in_order():
    problems = mi.input_problems(with_(migrate_app="mastodn", migrate_endpoint="ewr9", migrate_copy_scope=["x"]))
    assert [v for v, _ in problems] == ["migrate_app", "migrate_endpoint", "migrate_copy_scope"]
    assert [v for v, m in problems if v in m] == ["migrate_app", "migrate_endpoint", "migrate_copy_scope"]


def test_the_filter_maps_each_variable_to_its_message():
    values = with_(migrate_endpoint="ewr9", migrate_shard_count=0)
    assert list(migrate_input_problems(values).items()) == mi.input_problems(values)
    assert migrate_input_problems(GOOD) == {}


def test_at_most_one_message_per_variable():
    everything_wrong = {name: "$;{" for name in GOOD}
    problems = mi.input_problems(everything_wrong)
    assert len({v for v, _ in problems}) == len(problems) and len(problems) >= 8, problems


def test_every_known_vultr_cluster_is_a_shortcut_and_others_are_refused_with_the_list():
    for name in s3u.VULTR_CLUSTERS:
        assert s3u.resolve_endpoint(name) == "https://%s.vultrobjects.com" % name
    with pytest.raises(s3u.S3ConfigError) as exc:
        s3u.resolve_endpoint("ewr9")
    assert all(name in str(exc.value) for name in s3u.VULTR_CLUSTERS)
    assert s3u.resolve_endpoint("ewr9.vultrobjects.com") == "https://ewr9.vultrobjects.com"


@pytest.mark.parametrize("module_message, words", [
    ("S3 credentials rejected at https://x: the secret key does not match the access key "
     "(SignatureDoesNotMatch). Check access_key/secret_key.", "migrate_access_key/migrate_secret_key"),
    ("authentication failed for mastodon@db:5432/mastodon: check db_user/db_password (or DB_USER/DB_PASS)",
     "migrate_db_user/migrate_db_password"),
    ("/srv/misskey/package.json does not exist: is Misskey installed in /srv/misskey? Set the Misskey directory "
     "(misskey_dir) or the version (misskey_version)", "(migrate_misskey_dir) or the version (migrate_misskey_version)"),
])
def test_module_messages_name_the_migrate_variables(module_message, words):
    text = mi.in_user_words(module_message)
    assert words in text
    assert " access_key/" not in text and " db_password" not in text and "(misskey_dir)" not in text
