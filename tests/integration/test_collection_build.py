"""The collection builds, installs from its tarball, and its modules are listed by ansible-doc."""

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(cmd, env=None, cwd=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)
    assert proc.returncode == 0, "%s failed:\n%s\n%s" % (cmd, proc.stdout, proc.stderr)
    return proc.stdout


def test_build_install_and_list_modules(tmp_path):
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert (galaxy["namespace"], galaxy["name"], galaxy["version"]) == ("fediverse", "object_storage", "0.1.0")
    _run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO)])
    tarball = tmp_path / "fediverse-object_storage-0.1.0.tar.gz"
    assert tarball.is_file()

    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert "meta/runtime.yml" in names and "plugins/module_utils/s3/client.py" in names
    # Development material stays out: the harness and its tests (only tests/sanity, which ansible-test
    # sanity reads from the built collection, may ship), molecule scenarios (they need the harness),
    # the developers' map, unreleased changelog fragments, the AWX project's own requirements file.
    for ignored in (".venv", ".cache", ".ci", ".git", ".gitignore", ".ansible-lint", "bench", "scripts",
                    "requirements", "pyproject.toml", "collections", "docs", "extensions/molecule",
                    "changelogs/fragments", "changelogs/.plugin-cache.yaml"):
        assert not any(n == ignored or n.startswith(ignored + "/") for n in names), ignored
    assert [n for n in names if n.startswith("tests/") and not n.startswith("tests/sanity/")] == []
    assert not any(n.endswith((".pyc", ".tar.gz")) or "__pycache__" in n for n in names)
    # What an admin, ansible-builder and Galaxy read ships.
    for shipped in ("LICENSE", "README.md", "CHANGELOG.rst", "changelogs/changelog.yaml", "bindep.txt",
                    "requirements.txt", "meta/execution-environment.yml", "extensions/awx/execution-environment.yml",
                    "extensions/awx/job_template.yml", "playbooks/migrate.yml"):
        assert shipped in names, shipped

    collections = tmp_path / "collections"
    collections.mkdir()
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR="1")
    env["PATH"] = str(BIN) + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)  # the source tree must not be found instead of the installed copy
    _run([str(BIN / "ansible-galaxy"), "collection", "install", "--offline", "-p", str(collections), str(tarball)], env=env)
    assert (collections / "ansible_collections/fediverse/object_storage/MANIFEST.json").is_file()

    listing = _run([str(BIN / "ansible-doc"), "-t", "module", "-l", "fediverse.object_storage"], env=env, cwd=str(tmp_path))
    listed = {line.split()[0] for line in listing.splitlines() if line.strip()}
    modules = {p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__"}
    assert modules, "the collection has no modules"
    assert listed == {"fediverse.object_storage." + m for m in modules}
