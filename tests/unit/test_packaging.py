"""Packaging, read from the files the collection ships (issue 24, item 8):

- LICENSE is the full GPL-3.0 text, galaxy.yml says GPL-3.0-or-later;
- bindep.txt and requirements.txt name exactly what the media_copy role installs on the managed host
  (read from roles/media_copy/vars/*.yml and defaults/main.yml, so they cannot drift), with floors
  that agree with the modules' documentation;
- ansible-builder is told the controller needs nothing (meta/execution-environment.yml), and the AWX
  execution environment installs this collection from the project's source and nothing unused;
- the changelog is released as 0.1.0 (no "breaking changes" in a first release), lints clean with
  antsibull-changelog, CHANGELOG.rst is what antsibull-changelog generates from changelog.yaml, and
  an unreleased fragment after the release lints clean too.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((ROOT / "galaxy.yml").read_text())
ANTSIBULL = Path(sys.executable).parent / "antsibull-changelog"
# OS family of roles/media_copy/vars/<family>.yml -> bindep's platform selector for it.
FAMILY_PLATFORM = {"Debian": "platform:dpkg", "RedHat": "platform:rpm"}


def media_copy_os_vars():
    found = {}
    for path in sorted((ROOT / "roles/media_copy/vars").glob("*.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        if "__media_copy_os" in data:
            found[path.stem] = data["__media_copy_os"]
    return found


def bindep_entries():
    """(name, selectors) of each line of bindep.txt."""
    entries = []
    for line in (ROOT / "bindep.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9.+_-]*)(?:\s+\[([^\]]*)\])?", line)
        assert m, "not bindep syntax (name [selectors]): %r" % line
        entries.append((m.group(1), (m.group(2) or "").split()))
    return entries


def bindep_select(entries, platform, profiles):
    """bindep's rule: positive platform selectors, then positive and negative (!x) profiles."""
    chosen = []
    for name, selectors in entries:
        plats = [s for s in selectors if s.startswith("platform:")]
        wanted = [s for s in selectors if not s.startswith(("platform:", "!"))]
        unwanted = [s[1:] for s in selectors if s.startswith("!")]
        if plats and platform not in plats:
            continue
        if wanted and not set(wanted) & set(profiles):
            continue
        if set(unwanted) & set(profiles):
            continue
        chosen.append(name)
    return chosen


def requirement_floors():
    floors = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*>=\s*([0-9][0-9.]*)", line)
        assert m, "a requirement is NAME>=VERSION (a floor, no pin or cap: it is combined with others): %r" % line
        floors[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)
    return floors


def test_license_is_the_full_gpl3_text():
    text = (ROOT / "LICENSE").read_text()
    for marker in ("GNU GENERAL PUBLIC LICENSE", "Version 3, 29 June 2007", "TERMS AND CONDITIONS",
                   "15. Disclaimer of Warranty.", "END OF TERMS AND CONDITIONS", "How to Apply These Terms"):
        assert marker in text, marker
    assert len(text) > 30000
    debian = Path("/usr/share/common-licenses/GPL-3")
    if debian.is_file():
        assert text == debian.read_text()
    assert GALAXY["license"] == ["GPL-3.0-or-later"] and "license_file" not in GALAXY


def test_bindep_names_what_the_media_copy_role_installs_per_os_family():
    families = media_copy_os_vars()
    assert set(families) == set(FAMILY_PLATFORM), "an OS family without a bindep platform: %s" % families
    entries = bindep_entries()
    for family, os_vars in families.items():
        platform = FAMILY_PLATFORM[family]
        # media_copy_python: system (the default): the distribution's Python libraries.
        assert sorted(bindep_select(entries, platform, ["default"])) == sorted(os_vars["system_packages"]), family
        # media_copy_python: virtualenv: what provides python3 -m venv (the libraries come from pip).
        assert sorted(bindep_select(entries, platform, ["virtualenv"])) == sorted(os_vars["virtualenv_system_packages"]), family
    text = (ROOT / "bindep.txt").read_text()
    assert "managed host" in text.lower()


def test_requirements_txt_names_the_virtualenv_packages_with_floors_the_docs_agree_with():
    defaults = yaml.safe_load((ROOT / "roles/media_copy/defaults/main.yml").read_text())
    venv = {re.sub(r"[-_.]+", "-", p).lower() for p in defaults["media_copy_virtualenv_packages"]}
    floors = requirement_floors()
    # boto3's own dependency botocore is named for its floor (the retry mode and checksum options the
    # client factory sets are botocore's).
    assert venv <= set(floors) <= venv | {"botocore"}, floors
    assert "managed host" in (ROOT / "requirements.txt").read_text().lower()
    # The S3 modules' documented requirement states the same floors.
    fragment = (ROOT / "plugins/doc_fragments/s3.py").read_text()
    stated = dict(re.findall(r"\b(boto3|botocore) >= ([0-9.]+)", fragment))
    assert stated == {"boto3": floors["boto3"], "botocore": floors["botocore"]}


def test_ansible_builder_is_told_the_controller_needs_nothing():
    # Without meta/execution-environment.yml, ansible-builder reads the root requirements.txt and
    # bindep.txt as the controller's needs and installs the managed host's libraries into the image.
    meta = yaml.safe_load((ROOT / "meta/execution-environment.yml").read_text())
    assert meta["version"] == 1
    assert not (meta.get("dependencies") or {}).get("python") and not (meta.get("dependencies") or {}).get("system")


def used_collections():
    """Collections (namespace.name) a role, playbook, plugin or AWX file refers to by FQCN."""
    used = set()
    for top in ("roles", "playbooks", "plugins", "extensions/awx", "meta", "templates"):
        for path in (ROOT / top).rglob("*"):
            if path.is_file() and path.suffix in (".yml", ".yaml", ".py", ".j2"):
                used.update(re.findall(r"\b([a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*)\.[a-z_][a-z0-9_]*", path.read_text()))
    return used


def test_awx_ee_installs_this_collection_from_the_project_source_and_nothing_unused():
    ee_path = ROOT / "extensions/awx/execution-environment.yml"
    ee = yaml.safe_load(ee_path.read_text())
    project = yaml.safe_load((ROOT / "collections/requirements.yml").read_text())
    deps = ee["dependencies"]
    galaxy = deps["galaxy"]
    if isinstance(galaxy, str):  # a requirements file next to the EE definition
        galaxy = yaml.safe_load((ee_path.parent / galaxy).read_text())
    this = "%s.%s" % (GALAXY["namespace"], GALAXY["name"])
    used = used_collections()
    for entry in galaxy["collections"] + project["collections"]:
        if entry["name"].startswith(("https://", "git+")):
            assert entry["type"] == "git" and entry["name"] == GALAXY["repository"] + ".git", entry
        else:
            assert entry["name"] != this, "this collection from Galaxy, where AWX does not take it: %s" % entry
            assert entry["name"] in used, "listed but never used: %s" % entry["name"]
    # The same source as the AWX project's, inline so that the file also works from the built collection.
    assert isinstance(deps["galaxy"], dict) and galaxy["collections"] == project["collections"]
    # The controller side needs nothing but ansible-core: boto3, psycopg2 and PyYAML are the managed host's.
    assert not deps.get("python") and not deps.get("system"), deps


def run_antsibull(args, cwd):
    proc = subprocess.run([str(ANTSIBULL)] + args, capture_output=True, text=True, cwd=str(cwd), timeout=300,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    return proc.returncode, proc.stdout + proc.stderr


def changelog_copy(tmp_path):
    work = tmp_path / "collection"
    work.mkdir()
    shutil.copy(ROOT / "galaxy.yml", work / "galaxy.yml")
    shutil.copytree(ROOT / "changelogs", work / "changelogs")
    if (ROOT / "CHANGELOG.rst").exists():
        shutil.copy(ROOT / "CHANGELOG.rst", work / "CHANGELOG.rst")
    return work


def test_changelog_is_released_as_the_galaxy_version_and_lints_clean(tmp_path):
    changes = yaml.safe_load((ROOT / "changelogs/changelog.yaml").read_text())
    assert GALAXY["version"] == "0.1.0"
    assert "0.1.0" in changes["releases"], "the changelog has no release 0.1.0"
    release = changes["releases"]["0.1.0"]
    assert release.get("release_date") and release["changes"].get("release_summary")
    # A first release has nothing to break: no entry of it is a breaking change.
    assert "breaking_changes" not in release["changes"]
    # Every plugin that says it was added in 0.1.0 is listed as new in 0.1.0, and no plugin claims a
    # version that is neither released nor the next one.
    listed = {p["name"] for kind in release.get("plugins", {}).values() for p in kind} | \
             {m["name"] for m in release.get("modules", [])}
    claimed = set()
    for path in list((ROOT / "plugins/modules").glob("*.py")) + list((ROOT / "plugins/filter").glob("*.yml")):
        m = re.search(r"^\s*version_added:\s*['\"]?([0-9.]+)", path.read_text(), re.M)
        if m and m.group(1) == "0.1.0":
            claimed.add(path.stem)
    assert claimed == listed

    rc, out = run_antsibull(["lint"], ROOT)
    assert rc == 0 and not out.strip(), out

    # CHANGELOG.rst is what antsibull-changelog makes of changelog.yaml (not edited by hand).
    work = changelog_copy(tmp_path)
    rc, out = run_antsibull(["generate"], work)
    assert rc == 0, out
    assert (work / "CHANGELOG.rst").read_text() == (ROOT / "CHANGELOG.rst").read_text()


def test_an_unreleased_fragment_after_the_release_lints_clean(tmp_path):
    work = changelog_copy(tmp_path)
    assert yaml.safe_load((work / "changelogs/changelog.yaml").read_text())["releases"], "nothing released yet"
    (work / "changelogs/fragments/next-change.yml").write_text(
        "---\nbugfixes:\n  - media_copy - a change made after the 0.1.0 release.\n")
    rc, out = run_antsibull(["lint"], work)
    assert rc == 0 and not out.strip(), out
    bad = work / "changelogs/fragments/bad.yml"
    bad.write_text("---\nbugfixes:\n  - media_copy: a mapping, not a string\n")
    rc, out = run_antsibull(["lint"], work)
    assert rc != 0 or out.strip(), "lint accepted a broken fragment: the check cannot fail"
