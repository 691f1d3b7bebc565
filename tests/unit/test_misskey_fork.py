"""plugins/module_utils/misskey/fork.py: which Misskey-family software a package.json describes.

The package.json shapes are the real ones (name/version as read from each project's root package.json;
see the module's docstring for the trees read)."""

import json

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import MisskeyConfigError
from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.fork import (
    detect,
    from_version,
    upload_headers_of,
)


def pkg(name, version, **more):
    data = {"name": name, "version": version, "codename": "nasubi", "private": True}
    data.update(more)
    return json.dumps(data, indent="\t")


@pytest.mark.parametrize("version, generation", [
    ("11.37.1", "v12"), ("12.119.0", "v12"), ("13.0.0", "v12"), ("13.8.1", "v12"),
    ("13.9.0", "13.9"), ("13.9.2", "13.9"), ("13.12.2", "13.9"), ("13.14.1", "13.9"),
    ("13.14.2", "named"), ("2023.9.0", "named"), ("2025.4.0", "named"), ("2026.3.2-alpha.2-tp.1", "named"),
])
def test_upload_headers_per_version(version, generation):
    assert upload_headers_of(version)[0] == generation


def test_the_unread_13_x_versions_say_so():
    assert "not read" in upload_headers_of("13.12.2")[1]
    assert "not read" not in upload_headers_of("13.9.2")[1]


def test_misskey():
    found = detect(pkg("misskey", "2025.4.0")).as_dict()
    assert (found["fork"], found["fork_version"], found["upstream_version"]) == ("Misskey", "2025.4.0", "2025.4.0")
    assert (found["major"], found["uses_postgresql"], found["upload_headers"]) == (2025, True, "named")
    assert detect(pkg("misskey", "12.119.0")).upload_headers == "v12"


def test_a_fork_keeping_misskeys_name_and_numbering():
    # Type4ny-Project/Misskey: Misskey's numbering plus a suffix of its own.
    found = detect(pkg("misskey", "2026.3.2-alpha.2-tp.1"))
    assert (found.fork, found.upstream.major, found.upload_headers) == ("Misskey", 2026, "named")


def test_meisskey_is_the_v10_line():
    found = detect(pkg("misskey", "10.102.544-m544"))
    assert found.fork == "meisskey" and not found.upstream.uses_postgresql and found.upload_headers is None


def test_sharkey_has_its_own_calver():
    # transfem-org/Sharkey package.json
    found = detect(pkg("sharkey", "2023.9.0-beta.10")).as_dict()
    assert (found["fork"], found["fork_version"], found["upstream_version"]) == ("Sharkey", "2023.9.0-beta.10", None)
    assert found["uses_postgresql"] and found["upload_headers"] == "named"
    assert "Sharkey" in found["upload_headers_source"]
    # transfem-org/Sharkey package.json at f02573cc: a fourth dotted part, which Misskey's versions never have
    later = detect(pkg("sharkey", "2023.11.2.beta1"))
    assert later.version == "2023.11.2.beta1" and later.as_dict()["fork_version"] == "2023.11.2.beta1"
    assert later.upstream.major == 2023 and later.upstream.uses_postgresql and later.upload_headers == "named"


def test_cherrypick_is_placed_by_its_based_misskey_version():
    # kokonect-link/cherrypick package.json
    found = detect(pkg("cherrypick", "1.0.1-4.14.0-alpha.3", basedMisskeyVersion="2024.11.0-beta.4")).as_dict()
    assert (found["fork"], found["upstream_version"], found["major"]) == ("CherryPick", "2024.11.0-beta.4", 2024)
    assert found["upload_headers"] == "named" and "2024.11.0-beta.4" in found["fork_note"]


def test_cherrypick_without_based_version_is_refused():
    with pytest.raises(MisskeyConfigError, match="not Misskey's.*basedMisskeyVersion"):
        detect(pkg("cherrypick", "4.14.0"))


@pytest.mark.parametrize("name, version, words", [
    ("iceshrimp", "2026.5.1", "CalVer of its own"),       # Ernous/iceshrimp (mirror of iceshrimp.dev)
    ("firefish", "1.0.5-rc", "1.x"),                      # tag v1.0.5-rc
    ("calckey", "14.0.0-rc2c-jp3", "not Misskey 13/14"),  # a Calckey nodeinfo
    ("calckey", "13.1.2", "not Misskey 13/14"),
])
def test_forks_with_numbers_that_only_look_like_misskeys_are_refused(name, version, words):
    with pytest.raises(MisskeyConfigError, match="is not supported") as info:
        detect(pkg(name, version))
    assert words in str(info.value) and "Nothing was changed" in str(info.value)


def test_an_unknown_package_name_is_refused_not_guessed():
    # haru0416-dev/misskey: a fork renamed "erebia" with a CalVer version.
    with pytest.raises(MisskeyConfigError, match="'erebia'.*neither Misskey nor a fork"):
        detect(pkg("erebia", "2026.6.1-alpha.1"))


def test_an_explicit_version_is_taken_as_misskeys():
    found = from_version("2024.5.0").as_dict()
    assert found["fork"] == "Misskey (version given)" and found["upload_headers"] == "named"
    assert from_version("13.9.2").upload_headers == "13.9"


def test_bad_package_json():
    with pytest.raises(MisskeyConfigError, match="not valid JSON"):
        detect("{")
    with pytest.raises(MisskeyConfigError, match='no "version"'):
        detect(json.dumps({"name": "sharkey"}))
