"""docs/ARCHITECTURE.md is the newcomer's map (issue 21 item 7): it must name every piece a newcomer can
meet, and name nothing that is gone. The names are read from the tree, so adding a module, a
module_utils room, a filter, an action, a role entry point, a playbook or a template without putting it
on the map fails here, and so does a map that still names a removed file.

These tests read files only; what the pieces do is the other tests' business.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "docs" / "ARCHITECTURE.md"
PLUGINS = ROOT / "plugins"


def map_text():
    return MAP.read_text(encoding="utf-8")


def code_spans(text):
    """Everything written between backticks on the map."""
    return set(re.findall(r"`([^`\n]+)`", text))


def python_stems(folder):
    """The Python files below plugins/FOLDER, as paths below it without .py (module_utils has sub-packages:
    `s3/client`)."""
    return sorted(str(p.relative_to(PLUGINS / folder).with_suffix("")) for p in (PLUGINS / folder).rglob("*.py")
                  if p.stem != "__init__")


def filter_names():
    """The names each filter plugin's FilterModule.filters() returns (read from the AST)."""
    names = []
    for path in sorted((PLUGINS / "filter").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                        names += [k.value for k in ret.value.keys if isinstance(k, ast.Constant)]
    return sorted(names)


def entry_points():
    """(role, entry point) of every role's meta/argument_specs.yml."""
    found = []
    for spec in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        doc = yaml.safe_load(spec.read_text(encoding="utf-8"))
        found += [(spec.parents[1].name, entry) for entry in doc["argument_specs"]]
    return found


def pieces():
    """(kind, name) of every piece the map must name."""
    found = [("module", name) for name in python_stems("modules")]
    found += [("module_utils room", name) for name in python_stems("module_utils")]
    found += [("action", name) for name in python_stems("action")]
    found += [("doc fragment", name) for name in python_stems("doc_fragments")]
    found += [("filter", name) for name in filter_names()]
    found += [("playbook", "playbooks/%s" % p.name) for p in sorted((ROOT / "playbooks").glob("*.yml"))]
    found += [("template", str(p.relative_to(ROOT / "templates")))
              for p in sorted((ROOT / "templates").rglob("*.j2"))]
    return found


def test_the_tree_has_the_pieces_this_test_reads():
    kinds = {kind for kind, _name in pieces()}
    assert kinds == {"module", "module_utils room", "action", "doc fragment", "filter", "playbook", "template"}
    assert ("filter", "s3_endpoint") in pieces() and ("module_utils room", "fs/safe_fs") in pieces()
    assert ("migrate", "rollback") in entry_points() and len(entry_points()) >= 15


@pytest.mark.parametrize("kind,name", pieces(), ids=lambda v: str(v))
def test_the_map_names_every_piece(kind, name):
    spans = code_spans(map_text())
    # a room may be written `name` or `name.py`; a template by its path below templates/ or with it
    accepted = {name, name + ".py", "templates/" + name, "plugins/modules/%s.py" % name}
    assert spans & accepted, "docs/ARCHITECTURE.md does not name the %s `%s`" % (kind, name)


@pytest.mark.parametrize("role,entry", entry_points(), ids=lambda v: str(v))
def test_the_map_names_every_role_entry_point(role, entry):
    """In the roles' table: the role's row names each of its entry points."""
    rows = [line for line in map_text().splitlines() if line.startswith("| `%s` |" % role)]
    assert rows, "docs/ARCHITECTURE.md has no row for the role `%s`" % role
    assert any("`%s`" % entry in row for row in rows), \
        "docs/ARCHITECTURE.md: the row of role `%s` does not name its entry point `%s`" % (role, entry)


def test_every_path_on_the_map_exists():
    """A file the map names by its path (plugins/..., roles/..., templates/..., playbooks/..., tests/...) exists."""
    missing = []
    for span in sorted(code_spans(map_text())):
        for token in span.split():
            if re.match(r"^(plugins|roles|templates|playbooks|tests|docs|extensions|meta|scripts)/", token):
                path = token.rstrip(".,;:)")
                if "*" in path:
                    if not list(ROOT.glob(path)):
                        missing.append(path)
                elif not (ROOT / path).exists():
                    missing.append(path)
    assert not missing, "docs/ARCHITECTURE.md names files that do not exist: %s" % missing


def test_every_room_the_map_describes_exists():
    """A `**`name.py`** ...` heading on the map is a module_utils room that exists."""
    described = re.findall(r"^\*\*`([a-z_0-9*/]+)\.py`", map_text(), flags=re.M)
    assert described
    rooms = set(python_stems("module_utils"))
    gone = [name for name in described if "*" not in name and name not in rooms]
    assert not gone, "docs/ARCHITECTURE.md describes rooms that do not exist: %s" % gone


def test_module_utils_is_grouped_by_concern():
    """Issue 21 item 9: every room lives in a folder per concern (no flat room at the top), and the tree
    drawn at the start of the map's rooms section is the tree on disk, folder by folder."""
    utils = PLUGINS / "module_utils"
    flat = sorted(p.name for p in utils.glob("*.py") if p.name != "__init__.py")
    assert not flat, "module_utils rooms outside a concern's folder: %s" % flat
    on_disk = {p.name: sorted(f.name for f in p.glob("*.py") if f.name != "__init__.py")
               for p in utils.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert all((utils / folder / "__init__.py").is_file() for folder in on_disk)
    block = map_text().split("## The module_utils rooms", 1)[1].split("```", 2)[1]
    drawn, folder = {}, None
    for line in block.strip("\n").splitlines():
        if not line.startswith(" "):
            folder = line.split("/", 1)[0]
            drawn[folder] = []
        else:
            drawn[folder] += [name.strip() for name in line.split(",") if name.strip()]
    assert drawn == on_disk
