"""The layout of tests/ (issue 21 item 8): a newcomer finds a test by its file name, and the helpers
the test files share in support modules (tests/*.py that are not test_*.py: ansible_helpers.py,
migrate_support.py, misskey_host.py, media_copy_support.py...), never inside another test module.

These tests read the files (names and AST); they run none of them.
"""

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def imported_modules(text):
    """The dotted names of the modules a Python source imports from (relative imports keep their dots):
    ``import a.b`` and ``from a.b import c`` give ``a.b``; ``from a import b`` also gives ``a.b``, as
    ``b`` may be a module."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append(base)
            found.extend("%s%s%s" % (base, "" if base.endswith(".") else ".", alias.name) for alias in node.names)
    return found


def imports_of_test_modules(text):
    """The test modules (a last component test_*) among what ``text`` imports."""
    return sorted({name for name in imported_modules(text) if name.rsplit(".", 1)[-1].startswith("test_")})


def python_files():
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def test_no_file_of_tests_imports_a_test_module():
    """A helper two test files need lives in a support module: importing a test module runs its
    module-level code and its fixtures a second time, and hides the helper where nobody looks for it."""
    offenders = ["%s imports %s" % (path.relative_to(ROOT), ", ".join(names)) for path in python_files()
                 for names in [imports_of_test_modules(path.read_text(encoding="utf-8"))] if names]
    assert offenders == [], "move the shared helpers into a support module (tests/*.py):\n" + "\n".join(offenders)


def test_the_import_guard_sees_every_form():
    """The guard finds the imports it looks for (a guard that finds nothing proves nothing)."""
    assert imports_of_test_modules("from tests.integration.test_migrate import migrate") == [
        "tests.integration.test_migrate"]
    assert imports_of_test_modules("from .test_bucket import run_module\n") == [".test_bucket"]
    assert imports_of_test_modules("def f():\n    from tests.integration import test_misskey_role\n") == [
        "tests.integration.test_misskey_role"]
    assert imports_of_test_modules("import tests.unit.test_atomic as t\n") == ["tests.unit.test_atomic"]
    assert imports_of_test_modules("from tests.migrate_support import prepare\nimport pytest\n"
                                 "from tests.ansible_helpers import run_module\n") == []


def test_test_files_have_unique_names():
    """pytest imports test files by base name (no packages): two files of one name stop the whole run."""
    names = collections.Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
    assert names["test_atomic.py"] == 1 and sum(names.values()) > 50  # the files are found
