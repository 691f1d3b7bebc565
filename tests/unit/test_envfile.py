"""plugins/module_utils/mastodon/envfile.py: dotenv editing that keeps every other line byte for byte."""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.envfile import (
    MARKER,
    EnvFileError,
    format_value,
    mask_secrets,
    parse_value,
    read_env,
    update_env,
)

SAMPLE = (
    "# File storage (optional)\n"
    "# Set S3_BUCKET= to the bucket.\n"
    "# S3_ENABLED=true\n"
    "#S3_BUCKET=files.example.com\n"
    "S3_REGION=us-east-1\n"
    "export S3_PROTOCOL=http  # set by hand\n"
    "DB_PASS=hunter2\n"
    "IP_RETENTION_PERIOD=31556952\n"
)


def test_existing_key_updated_in_place_keeping_export_and_comment():
    text, changed = update_env(SAMPLE, {"S3_REGION": "ewr1", "S3_PROTOCOL": "https"})
    lines = text.splitlines(True)
    assert lines[4] == "S3_REGION=ewr1\n"
    assert lines[5] == "export S3_PROTOCOL=https  # set by hand\n"
    assert changed == ["S3_REGION", "S3_PROTOCOL"]
    assert len(lines) == len(SAMPLE.splitlines())


def test_commented_sample_key_replaced_in_place_not_duplicated():
    text, changed = update_env(SAMPLE, {"S3_ENABLED": True, "S3_BUCKET": "media-bucket"})
    lines = text.splitlines(True)
    assert lines[2] == "S3_ENABLED=true\n"
    assert lines[3] == "S3_BUCKET=media-bucket\n"
    # the prose comment mentioning S3_BUCKET= is not a sample assignment
    assert lines[1] == "# Set S3_BUCKET= to the bucket.\n"
    assert MARKER not in text
    assert sum(1 for line in lines if "S3_BUCKET" in line) == 2
    assert changed == ["S3_ENABLED", "S3_BUCKET"]


def test_new_key_appended_below_one_marker():
    text, changed = update_env(SAMPLE, {"S3_ENDPOINT": "https://ewr1.vultrobjects.com"})
    assert text.startswith(SAMPLE)
    assert text[len(SAMPLE):] == "\n%s\nS3_ENDPOINT=https://ewr1.vultrobjects.com\n" % MARKER
    text2, _ = update_env(text, {"S3_ALIAS_HOST": "s3.example.net"})
    assert text2.count(MARKER) == 1
    assert text2.endswith("S3_ENDPOINT=https://ewr1.vultrobjects.com\nS3_ALIAS_HOST=s3.example.net\n")


def test_every_other_line_byte_identical_including_crlf_and_non_utf8():
    raw = b"A=1\r\n# caf\xe9 latin-1 comment\r\nS3_BUCKET=old\r\nB='x y'\r\n"
    text = raw.decode("utf-8", "surrogateescape")
    new, changed = update_env(text, {"S3_BUCKET": "new"})
    out = new.encode("utf-8", "surrogateescape")
    assert out == raw.replace(b"S3_BUCKET=old", b"S3_BUCKET=new")
    assert changed == ["S3_BUCKET"]


def test_idempotent_and_equal_values_keep_their_quotes():
    text = 'S3_BUCKET="media"\nS3_ENABLED=true # on\n'
    new, changed = update_env(text, {"S3_BUCKET": "media", "S3_ENABLED": True})
    assert new == text and changed == []
    once, _ = update_env(SAMPLE, {"S3_ENABLED": True, "S3_ENDPOINT": "https://e", "AWS_SECRET_ACCESS_KEY": "a/b+c="})
    twice, changed = update_env(once, {"S3_ENABLED": True, "S3_ENDPOINT": "https://e", "AWS_SECRET_ACCESS_KEY": "a/b+c="})
    assert twice == once and changed == []


def test_every_active_duplicate_is_updated():
    new, _ = update_env("S3_BUCKET=a\nX=1\nS3_BUCKET=b\n", {"S3_BUCKET": "c"})
    assert new == "S3_BUCKET=c\nX=1\nS3_BUCKET=c\n"


def test_parse_and_format_values():
    assert parse_value("value # comment") == ("value", " # comment")
    assert parse_value('"a b" # c') == ("a b", " # c")
    assert parse_value("'x#y'") == ("x#y", "")
    assert parse_value("a#b") == ("a", "#b")  # Ruby dotenv: an unquoted value ends at "#"
    assert format_value("https://ewr1.vultrobjects.com") == "https://ewr1.vultrobjects.com"
    assert format_value("a b") == '"a b"'
    assert format_value('a"b') == "'a\"b'"
    assert read_env('K="a b"\nexport L=2 # x\n# M=3\n') == {"K": "a b", "L": "2"}
    with pytest.raises(EnvFileError):
        format_value("two\nlines")
    with pytest.raises(EnvFileError):
        update_env("", {"BAD NAME": "x"})


def test_values_written_are_read_back_equal():
    for value in ("plain", "with space", "a#b c", "quote\"d", "sl/ash+eq=", "$HOME", ""):
        text, _ = update_env("X=0\n", {"X": value})
        assert read_env(text)["X"] == value, text


def test_mask_secrets_hides_values_of_secret_keys_only():
    text = ("AWS_ACCESS_KEY_ID=AKIAEXAMPLE\nAWS_SECRET_ACCESS_KEY=s3cr3t\nDB_PASS=pw\nSECRET_KEY_BASE=abc\n"
            "# AWS_SECRET_ACCESS_KEY=oldsecret\nS3_BUCKET=media\nSMTP_PASSWORD=\n")
    masked = mask_secrets(text, changed_keys=["AWS_SECRET_ACCESS_KEY"])
    for secret in ("AKIAEXAMPLE", "s3cr3t", "pw\n", "abc", "oldsecret"):
        assert secret not in masked
    assert "AWS_SECRET_ACCESS_KEY=******** (changed)\n" in masked
    assert "AWS_ACCESS_KEY_ID=********\n" in masked
    assert "S3_BUCKET=media\n" in masked
    assert "SMTP_PASSWORD=\n" in masked
    assert len(masked.splitlines()) == len(text.splitlines())
