"""Property-based tests (hypothesis): the env-file editor on any input, Mastodon's key layout on
ids of every length, and the diff mask on any credential."""

import os
import re
import tempfile

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir


from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import layout as L
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.envfile import (
    EnvFileError,
    _covered_lines,
    _lines,
    _split_ending,
    assignments,
    format_value,
    mask_secrets,
    read_env,
    update_env,
)

# Hypothesis' caches stay out of the tree (the collection is built from it).
set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "fediverse-object-storage-hypothesis"))

KEYS = st.sampled_from(["S3_BUCKET", "S3_ENABLED", "AWS_SECRET_ACCESS_KEY", "DB_PASS", "X", "export_Y"])
VALUES = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=30)

# Lines an admin's .env.production holds, and fragments that are not well formed at all.
LINE_PARTS = st.one_of(
    st.builds(lambda k, v: "%s=%s" % (k, v), KEYS, st.text(alphabet="ab #'\"\\$=:x{}", max_size=8)),
    st.builds(lambda k, v: "export %s=%s" % (k, v), KEYS, st.text(alphabet="ab #'\"", max_size=6)),
    st.builds(lambda k: "# %s=sample" % k, KEYS),
    st.just(""), st.just("   "), st.just("# comment"), st.just("not an assignment"),
    st.text(max_size=12),
)
TEXTS = st.builds(lambda parts, endings: "".join(p + e for p, e in zip(parts, endings)),
                  st.lists(LINE_PARTS, max_size=8),
                  st.lists(st.sampled_from(["\n", "\r\n", "\n"]), min_size=8, max_size=8))


def _touched(text, key):
    """Indexes of the lines an edit of ``key`` may change."""
    found = assignments(text)
    active = [a for a in found if a.key == key]
    covered = _covered_lines(text, found)
    if active:
        return {n for n, (entry, _f, _l) in covered.items() if entry.key == key}
    return set(range(len(_lines(text))))  # a commented sample or an append: checked separately


def _is_subsequence(small, big):
    it = iter(big)
    return all(any(item == other for other in it) for item in small)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS, key=KEYS, value=VALUES)
def test_editor_keeps_other_lines_and_is_idempotent(text, key, value):
    try:
        new, changed = update_env(text, {key: value})
    except EnvFileError:
        return  # refused (before anything is written): allowed for values/files dotenv cannot take
    assert read_env(new)[key] == value
    again, changed_again = update_env(new, {key: value})
    assert again == new and changed_again == []
    if not changed:
        assert new == text
        return
    old_lines = _lines(text)
    touched = _touched(text, key)
    kept = [line for index, line in enumerate(old_lines) if index not in touched]
    new_lines = _lines(new)
    if not any(a.key == key for a in assignments(text)):  # commented sample replaced or appended
        # every line but at most one comment is kept, the last one may gain its newline
        normal = [line if _split_ending(line)[1] else line + "\n" for line in old_lines]
        assert sum(1 for line in normal if line not in new_lines) <= 1
        assert len(new_lines) <= len(old_lines) + 3
    else:
        assert _is_subsequence(kept, new_lines)
        assert len(new_lines) == len(old_lines) - len(touched) + sum(
            1 for a in assignments(text) if a.key == key)


@settings(max_examples=200, deadline=None, database=None)
@given(values=st.dictionaries(KEYS, VALUES, max_size=4))
def test_written_values_read_back_exactly(values):
    text = "# Mastodon\nLOCAL_DOMAIN=example.com\n"
    try:
        new, _changed = update_env(text, values)
    except EnvFileError:
        assume(False)
    env = read_env(new)
    for key, value in values.items():
        assert env[key] == value
        assert ("%s=%s" % (key, format_value(value))) in new
    assert env["LOCAL_DOMAIN"] == "example.com"


PASSWORDS = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="@#'\"\\$"),
                    min_size=6, max_size=20)


@settings(max_examples=200, deadline=None, database=None)
@given(password=PASSWORDS, scheme=st.sampled_from(["postgres", "postgresql", "redis", "rediss", "amqp"]),
       user=st.sampled_from(["", "mastodon", "u"]))
def test_url_passwords_never_reach_a_diff(password, scheme, user):
    text = "DATABASE_URL=%s://%s:%s@db.internal:5432/mastodon\nCACHE_REDIS_URL=%s://:%s@r:6379/1\n" % (
        scheme, user, password, scheme, password)
    assert password not in mask_secrets(text)


# --- Mastodon's key layout -------------------------------------------------------------------

IDS = st.one_of(st.integers(min_value=0, max_value=10 ** 9 + 5), st.integers(min_value=0, max_value=2 ** 63 - 1))
SAFE_NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
                     min_size=1, max_size=40).filter(lambda n: n not in (".", ".."))


@settings(max_examples=400, deadline=None, database=None)
@given(record_id=IDS)
def test_id_partition_every_length(record_id):
    partition = L.id_partition(record_id)
    groups = partition.split("/")
    digits = ("%09d" if record_id < 10 ** 9 else "%012d") % record_id
    assert all(re.match(r"^\d{3}$", g) for g in groups)
    assert len(groups) == len(digits) // 3  # Ruby scan(/\d{3}/): complete groups only
    assert "".join(groups) == digits[: len(groups) * 3]
    assert (len(groups) == 3) is (record_id < 10 ** 9)


@settings(max_examples=300, deadline=None, database=None)
@given(record_id=IDS, name=SAFE_NAMES, kind=st.sampled_from(L.KINDS),
       content_type=st.sampled_from([None, "image/png", "image/gif", "video/mp4", "audio/ogg", "image/heic"]),
       remote=st.booleans(), version=st.sampled_from([None, 0, 1]))
def test_keys_stay_in_their_kind_for_every_id_and_safe_name(record_id, name, kind, content_type, remote, version):
    row = L.row_objects(kind, {"id": record_id, "file_name": name, "content_type": content_type, "var": None},
                        remote=remote, storage_schema_version=version)
    assert row.rejected == ()
    assert row.objects
    prefix = ("cache/" if (remote and version) else "") + kind + "/" + L.id_partition(record_id) + "/"
    for obj in row.objects:
        assert obj.key.startswith(prefix)
        style, filename = obj.key[len(prefix):].split("/", 1)
        assert "/" not in filename and filename not in (".", "..")
    assert row.objects[0].key == prefix + "original/" + name


@settings(max_examples=200, deadline=None, database=None)
@given(record_id=IDS, kind=st.sampled_from(L.KINDS),
       name=st.one_of(st.builds(lambda a, b: a + "/" + b, st.text(max_size=8), st.text(max_size=8)),
                      st.builds(lambda a, b: a + "\\" + b, st.text(max_size=8), st.text(max_size=8)),
                      st.builds(lambda a: a + "\x00", st.text(max_size=8)),
                      st.sampled_from(["", ".", ".."])))
def test_unsafe_names_are_rejected_for_every_id(record_id, kind, name):
    row = L.row_objects(kind, {"id": record_id, "file_name": name, "content_type": "image/png", "var": None})
    assert row.objects == ()
    assert len(row.rejected) == 1 and row.rejected[0][0] == kind
