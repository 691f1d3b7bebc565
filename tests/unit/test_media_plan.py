"""The media plan (module_utils/migrate/media_plan.py): one computation of where the media are served, for each
app x proxy mode x media domain; and no role or template composes a media URL itself."""

import re
from pathlib import Path

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.migrate.media_plan import MediaPlanError, media_plan

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "example.social"


@pytest.mark.parametrize("app, mode, media_domain, host, location, alias, base_url, prefix", [
    ("mastodon", "subdomain", "", "s3.example.social", "/", "s3.example.social", "https://s3.example.social", None),
    ("mastodon", "subdomain", "media.example.net", "media.example.net", "/", "media.example.net",
     "https://media.example.net", None),
    ("mastodon", "directory", "", DOMAIN, "/storage/", DOMAIN + "/storage", "https://" + DOMAIN, "storage"),
    # The media domain is mode subdomain's only: ignored by the other modes.
    ("mastodon", "directory", "media.example.net", DOMAIN, "/storage/", DOMAIN + "/storage", "https://" + DOMAIN,
     "storage"),
    ("mastodon", "system", "", DOMAIN, "/system/", DOMAIN + "/system", "https://" + DOMAIN, None),
    ("mastodon", "system", "media.example.net", DOMAIN, "/system/", DOMAIN + "/system", "https://" + DOMAIN, None),
    ("misskey", "subdomain", "", "s3.example.social", "/", "s3.example.social", "https://s3.example.social", None),
    ("misskey", "subdomain", "media.example.net", "media.example.net", "/", "media.example.net",
     "https://media.example.net", None),
    ("misskey", "directory", "", DOMAIN, "/storage/", DOMAIN + "/storage", "https://" + DOMAIN, "storage"),
    ("misskey", "directory", "media.example.net", DOMAIN, "/storage/", DOMAIN + "/storage", "https://" + DOMAIN,
     "storage"),
])
def test_the_plan_of_each_app_mode_and_media_domain(app, mode, media_domain, host, location, alias, base_url, prefix):
    plan = media_plan({"app": app, "proxy_mode": mode, "domain": DOMAIN, "media_domain": media_domain})
    assert plan["media_host"] == host
    assert plan["location"] == location
    assert plan["alias_host"] == alias
    assert plan["media_url"] == "https://" + alias
    assert plan["media_domain"] == (host if mode == "subdomain" else "")
    assert plan["misskey_base_url"] == base_url and plan["misskey_prefix"] == prefix
    if app == "misskey":  # Misskey's URL (baseUrl/PREFIX/NAME) is the one Mastodon's alias host gives.
        assert "/".join(filter(None, [plan["misskey_base_url"], plan["misskey_prefix"]])) == plan["media_url"]
    assert plan["verify_base_url"] == plan["media_url"] and plan["verify_host_header"] == ""


def test_the_directory_location_follows_nginx_proxys_directory_path():
    plan = media_plan({"app": "mastodon", "proxy_mode": "directory", "domain": DOMAIN, "directory_path": "/media/"})
    assert plan["location"] == "/media/" and plan["alias_host"] == DOMAIN + "/media"
    assert media_plan({"app": "misskey", "proxy_mode": "directory", "domain": DOMAIN,
                       "directory_path": "/m/"})["misskey_prefix"] == "m"


def test_the_verify_overrides():
    plan = media_plan({"app": "mastodon", "proxy_mode": "subdomain", "domain": DOMAIN,
                       "verify_base_url": "https://127.0.0.1:8443/", "verify_host_header": "s3.example.social"})
    assert plan["verify_base_url"] == "https://127.0.0.1:8443" and plan["verify_host_header"] == "s3.example.social"
    assert plan["media_url"] == "https://s3.example.social"


@pytest.mark.parametrize("values", [
    {"app": "mastodon", "proxy_mode": "cdn", "domain": DOMAIN},
    {"app": "mastodon", "proxy_mode": "", "domain": DOMAIN},
])
def test_a_mode_the_plan_cannot_serve_is_refused(values):
    with pytest.raises(MediaPlanError):
        media_plan(values)


# --- one computation ----------------------------------------------------------------------------------

# A media URL or alias composed in YAML or a template: "https://" or "s3." joined to a domain variable, or a
# domain variable joined to '/storage' or '/system'.
_NAME = r"\w*(domain|alias|media)\w*"
COMPOSED = re.compile("|".join([
    r"""['"]https?://['"]\s*~\s*""" + _NAME,            # 'https://' ~ migrate_media_domain
    r"""https?://\{\{\s*""" + _NAME,                     # https://{{ migrate__alias_host }}
    r"""['"]https?://s3\.|['"]s3\.['"]?\s*~|s3\.\{\{""",   # 'https://s3.' ~ d, 's3.' ~ d, s3.{{ d }}
    r"""['"]/(storage|system)['"]""",                    # ~ '/storage', else '/system'
    r"""\}\}/(storage|system)\b""",                      # {{ domain }}/storage
]))


def test_no_role_or_template_composes_a_media_url():
    found = []
    for path in sorted(list((ROOT / "roles").rglob("*.yml")) + list((ROOT / "templates").rglob("*.j2"))):
        if "meta" in path.parts or path.name == "argument_specs.yml":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            if COMPOSED.search(line):
                found.append("%s:%d: %s" % (path.relative_to(ROOT), number, line.strip()))
    assert not found, "a media URL composed outside module_utils/migrate/media_plan.py:\n" + "\n".join(found)
