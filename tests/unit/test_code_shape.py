"""The shape of plugins/ (issue 13): each piece of logic written once, read from the source files.

These tests read the code (text and AST), they run none of it: the behaviour is the other tests'.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
MODULES = PLUGINS / "modules"
UTILS = PLUGINS / "module_utils"
CONFIG_EDITING_MODULES = ("mastodon_env", "misskey_config")
MISSKEY_MODULES = sorted(p.stem for p in MODULES.glob("misskey_*.py"))


def source(path):
    return path.read_text(encoding="utf-8")


def tree(path):
    return ast.parse(source(path), filename=str(path))


def functions(module_tree):
    """{qualified name: FunctionDef} of every function and method of a module."""
    found = {}
    for node in module_tree.body:
        if isinstance(node, ast.FunctionDef):
            found[node.name] = node
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    found["%s.%s" % (node.name, item.name)] = item
    return found


def called_names(node):
    """The names called anywhere below ``node`` (``f(...)``, ``x.f(...)`` -> ``f``)."""
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            func = call.func
            if isinstance(func, ast.Name):
                names.add(func.id)
            elif isinstance(func, ast.Attribute):
                names.add(func.attr)
    return names


def imported_from(module_tree, module_utils_name):
    """The names a module imports from ``plugins/module_utils/<module_utils_name>.py`` (dotted: ``fs.atomic``)."""
    names = set()
    for node in ast.walk(module_tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.endswith(
                "plugins.module_utils." + module_utils_name):
            names.update(alias.name for alias in node.names)
    return names


def test_one_retry_loop_in_the_copy_engine():
    engine = tree(UTILS / "copy/engine.py")
    retrying = sorted(name for name, fn in functions(engine).items() if "is_retryable" in called_names(fn))
    assert retrying == ["CopyEngine._with_retries"]
    # a retry loop: a loop whose exception handler goes round again (``continue``)
    loops = sorted(name for name, fn in functions(engine).items()
                   if any(isinstance(handler, ast.ExceptHandler) and any(isinstance(c, ast.Continue) for c in ast.walk(handler))
                          for loop in ast.walk(fn) if isinstance(loop, (ast.While, ast.For)) for handler in ast.walk(loop)))
    assert loops == ["CopyEngine._with_retries"], "a second retry loop: %s" % loops
    backoff = sorted(name for name, fn in functions(engine).items() if "self.backoff" in ast.unparse(fn))
    assert backoff == ["CopyEngine.__init__", "CopyEngine._with_retries"]
    methods = functions(engine)
    for user in ("CopyEngine.copy_one", "CopyEngine.ensure_private"):
        assert "_with_retries" in called_names(methods[user]), user


# --- issue 21 item 4: composition, no monkey-patching ---------------------------------------------

# Methods of third-party objects replaced on purpose, by attribute name, with the reason. The
# collection's own classes take their collaborators as arguments instead.
THIRD_PARTY_PATCHES = {
    "_do_parse": "botocore's ListObjectsV2 parser: the fast ElementTree parse (s3_listing.use_fast_timestamps)",
    "_create_connection": "http.client's connection to a pinned address (misskey_storage)",
}


def outside_attribute_assignments(module_tree):
    """``[(line, base, attribute, value)]`` of every ``x.attr = value`` whose ``x`` is not self/cls."""
    found = []
    for node in ast.walk(module_tree):
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets, value = [node.target], node.value
        else:
            continue
        for target in targets:
            for attr in ast.walk(target):
                if isinstance(attr, ast.Attribute) and isinstance(attr.ctx, ast.Store) and not (
                        isinstance(attr.value, ast.Name) and attr.value.id in ("self", "cls")):
                    found.append((node.lineno, ast.unparse(attr.value), attr.attr, value))
    return found


def own_methods():
    """The names of the methods of every class of plugins/module_utils."""
    return {f.name for path in sorted(UTILS.rglob("*.py")) for node in ast.walk(tree(path))
            if isinstance(node, ast.ClassDef) for f in node.body if isinstance(f, ast.FunctionDef)}


def replaced_methods(module_tree, methods):
    """The ``x.attr = ...`` of a module that replace a method: the value is a lambda, a function of the
    module or a bound method of one of ``methods``, or the attribute is the name of one of ``methods``."""
    local_functions = {f.name for f in ast.walk(module_tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))}
    found = []
    for line, base, attr, value in outside_attribute_assignments(module_tree):
        callable_value = isinstance(value, ast.Lambda) or (
            isinstance(value, ast.Name) and value.id in local_functions) or (
            isinstance(value, ast.Attribute) and value.attr in methods)
        if (callable_value or attr in methods) and attr not in THIRD_PARTY_PATCHES:
            found.append((line, "%s.%s = %s" % (base, attr, ast.unparse(value))))
    return found


def test_no_room_replaces_another_objects_methods():
    """copy_record.py used to replace CopyEngine's triage, copy_one and stats.record on the instance: a
    reader of copy/engine.py could not tell what a run did. The engine takes a tracer instead."""
    methods = own_methods()
    assert {"triage", "copy_one", "record"} <= methods
    offenders = ["%s:%d %s" % (path.relative_to(PLUGINS), line, text) for path in sorted(PLUGINS.rglob("*.py"))
                 for line, text in replaced_methods(tree(path), methods)]
    assert offenders == [], "methods replaced from outside their class:\n" + "\n".join(offenders)


# What CopyEngine works with: given to its constructor (or made by it), never set from outside.
ENGINE_COLLABORATORS = ("client", "source", "index", "limiter", "tracer", "stats", "progress")


def test_the_engines_collaborators_are_never_swapped_from_outside():
    """copy_record.py used to swap ``engine.index`` for its HeadIndex after building the engine; the
    caller passes the index (and the limiter and tracer it shares) to the constructor instead."""
    offenders = ["%s:%d %s.%s" % (path.relative_to(PLUGINS), line, base, attr) for path in sorted(PLUGINS.rglob("*.py"))
                 for line, base, attr, _value in outside_attribute_assignments(tree(path))
                 if attr in ENGINE_COLLABORATORS]
    assert offenders == [], "CopyEngine's collaborators set from outside the engine:\n" + "\n".join(offenders)
    init = functions(tree(UTILS / "copy/engine.py"))["CopyEngine.__init__"]
    set_in_init = {t.attr for t in ast.walk(init) if isinstance(t, ast.Attribute) and isinstance(t.ctx, ast.Store)}
    assert set(ENGINE_COLLABORATORS) <= set_in_init
    # ...each given as an argument (the stats and the progress file are the engine's own)
    assert set(ENGINE_COLLABORATORS) - {"stats", "progress"} <= {a.arg for a in init.args.args}


def test_the_monkey_patch_guards_see_what_they_guard():
    """The guards find the shapes they forbid, and leave plain data alone (a guard that finds nothing
    proves nothing)."""
    sample = ast.parse(
        "def attach(engine, tracker, stats):\n"
        "    def traced(kind, obj):\n"
        "        return None\n"
        "    engine.triage = traced\n"
        "    engine.copy_one = lambda *a: None\n"
        "    engine.stats.record = tracker.record\n"
        "    engine.index = object()\n"
        "    stats.phase = 'listing'\n")
    assert [text for _line, text in replaced_methods(sample, own_methods())] == [
        "engine.triage = traced", "engine.copy_one = lambda *a: None", "engine.stats.record = tracker.record"]
    swapped = [attr for _line, _base, attr, _value in outside_attribute_assignments(sample)
               if attr in ENGINE_COLLABORATORS]
    assert swapped == ["index"]


def test_one_definition_of_a_public_grant():
    plugin_files = sorted(PLUGINS.rglob("*.py"))
    for name in ("PUBLIC_GROUPS", "acl_is_public", "public_bucket_grants"):
        assert not [p.name for p in plugin_files if re.search(r"\b%s\b" % name, source(p))], name
    # the group URIs are spelled in one file only
    assert [str(p.relative_to(UTILS)) for p in plugin_files if "groups/global/AllUsers" in source(p)] == ["bucket/rules.py"]
    assert "public_grants" in functions(tree(UTILS / "bucket/rules.py"))
    for user in ("copy/engine.py", "bucket/steps.py"):
        module_tree = tree(UTILS / user)
        assert "public_grants" in imported_from(module_tree, "bucket.rules"), user
        assert "public_grants" in called_names(module_tree), user


@pytest.mark.parametrize("name", CONFIG_EDITING_MODULES)
def test_config_editing_modules_read_and_write_through_atomic_edit_helpers(name):
    module_tree = tree(MODULES / (name + ".py"))
    assert {"read_for_edit", "finish_edit"} <= imported_from(module_tree, "fs.atomic")
    assert {"read_for_edit", "finish_edit"} <= called_names(module_tree)
    # no module repeats the read/backup/write steps itself
    assert not {"read_bytes", "write_atomic", "backup_copy"} & (imported_from(module_tree, "fs.atomic")
                                                               | called_names(module_tree))


@pytest.mark.parametrize("name", MISSKEY_MODULES)
def test_misskey_modules_end_in_run_module(name):
    module_tree = tree(MODULES / (name + ".py"))
    main = functions(module_tree)["main"]
    assert "run_module" in called_names(main)
    # the missing-library and error tails are run_module's
    assert not {"fail_json", "exit_json", "missing_required_lib"} & called_names(main)
    assert not [n for n in ast.walk(main) if isinstance(n, ast.Try)]


@pytest.mark.parametrize("name", ["misskey_config", "misskey_meta"])
def test_drive_options_are_one_argument_spec(name):
    text = source(MODULES / (name + ".py"))
    assert "drive_argument_spec(" in text
    for option in ("bucket", "base_url", "s3_force_path_style", "secret_key"):
        assert not re.search(r"\b%s=dict\(" % option, text), option


def test_meta_row_changes_share_one_transaction():
    text = source(UTILS / "misskey/db.py")
    assert text.count("conn.commit()") == 1
    assert text.count("except PGError") <= 2  # connect() and the one meta-row transaction
    assert text.count("database error on the meta table") == 1


@pytest.mark.parametrize("name", ["bucket", "bucket_object"])
def test_bucket_modules_take_their_endpoint_from_s3(name):
    module_tree = tree(MODULES / (name + ".py"))
    assert "client_and_endpoint" in called_names(module_tree)
    assert not {"resolve_endpoint", "client_from_module"} & called_names(module_tree)


def test_fixture_drive_file_ddl_written_once():
    text = source(ROOT / "tests" / "fixtures" / "misskey_drive.py")
    assert text.count("CREATE TABLE drive_file") == 1
    assert text.count('"webpublicAccessKey" character varying') <= 1


def test_no_plugin_file_over_500_lines():
    # a guard: every file is within the limit already
    long_files = dict((str(p.relative_to(ROOT)), n) for p in PLUGINS.rglob("*.py")
                      if (n := len(source(p).splitlines())) > 500)
    assert long_files == {}


# --- issue 20: one safe file-system room ---------------------------------------------------------

SAFE_ROOM = UTILS / "fs/safe_fs.py"
SAFE_ROOM_FILES = (SAFE_ROOM, UTILS / "fs/safe_fs_open.py")  # the room, and its fast open below an anchor
_OS_PATH_OPS = {"exists", "lexists", "isdir", "isfile", "islink", "realpath", "getsize", "samefile"}
_OS_OPS = {"open", "stat", "lstat", "rename", "renames", "replace", "unlink", "remove", "rmdir", "mkdir",
           "makedirs", "walk", "fwalk", "listdir", "scandir", "chmod", "chown", "lchown", "link", "symlink",
           "readlink", "access", "mkfifo", "utime", "truncate"}
# Functions that touch only files of root's own, outside every app tree, with the reason. Anything
# else in plugins/ that opens, stats, lists, removes or renames a path goes through safe_fs.
OWN_FILES = {
    ("module_utils/copy/record.py", "_safe_dir"): "record_dir: root's 0700 directory of run records",
    ("module_utils/copy/record.py", "load"): "the run record, in record_dir",
    ("module_utils/copy/record.py", "save"): "the run record, in record_dir",
    ("module_utils/mastodon/cache_retirement.py", "_open_marker_dir"): "creates the marker directory: root's own 0700 "
                                                               "directory outside every app tree",
    ("module_utils/s3/client.py", "s3_client"): "ca_bundle: an admin's CA file on the controller's path, only tested "
                                                 "for existence",
}


def path_operations(path):
    """``[(function, call)]`` of every by-name file-system call in a plugin file (AST)."""
    module_tree = tree(path)
    found = []

    def visit(node, where):
        for child in ast.iter_child_nodes(node):
            name = where
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = child.name
            if isinstance(child, ast.Call):
                func = child.func
                label = None
                if isinstance(func, ast.Name) and func.id == "open":
                    label = "open"
                elif isinstance(func, ast.Attribute):
                    value = func.value
                    if isinstance(value, ast.Name) and value.id == "os" and func.attr in _OS_OPS:
                        label = "os." + func.attr
                    elif isinstance(value, ast.Name) and (value.id in ("shutil", "pathlib", "tempfile") or (
                            value.id == "io" and func.attr == "open")):
                        label = "%s.%s" % (value.id, func.attr)
                    elif (isinstance(value, ast.Attribute) and value.attr == "path" and isinstance(value.value, ast.Name)
                          and value.value.id == "os" and func.attr in _OS_PATH_OPS):
                        label = "os.path." + func.attr
                if label:
                    found.append((name, label))
            visit(child, name)

    visit(module_tree, "<module>")
    return found


def test_only_the_safe_room_touches_files_by_name():
    offenders = []
    for path in sorted(PLUGINS.rglob("*.py")):
        if path in SAFE_ROOM_FILES:
            continue
        rel = str(path.relative_to(PLUGINS))
        for function, label in path_operations(path):
            if (rel, function) not in OWN_FILES:
                offenders.append("%s:%s %s" % (rel, function, label))
    assert offenders == [], ("file-system calls by name outside the safe room (fs/safe_fs.py, fs/safe_fs_open.py):\n"
                             + "\n".join(offenders))


def test_the_guard_sees_what_it_guards():
    """The guard finds the calls it looks for (a guard that finds nothing proves nothing)."""
    assert ("write_atomic", "os.open") in path_operations(SAFE_ROOM.parent / "atomic.py") or any(
        label.startswith("os.") for _f, label in path_operations(SAFE_ROOM))
    assert {label for _f, label in path_operations(SAFE_ROOM)} >= {"os.open", "os.stat", "os.rename", "os.unlink",
                                                                   "os.rmdir", "os.mkdir", "os.link", "os.listdir"}


# --- issue 21: logic in Python, not in long Jinja expressions ------------------------------------------

def test_no_long_jinja_expression_in_roles():
    """No {{ }} or {% %} in roles/ longer than 160 characters (whitespace folded): what needs more is a
    module_utils function behind a filter (nginx_proxy's input checks: nginx/inputs.py), or named parts."""
    long_ones = []
    for path in sorted((ROOT / "roles").rglob("*")):
        if path.suffix not in (".yml", ".yaml", ".j2") or not path.is_file():
            continue
        for match in re.finditer(r"\{\{(.*?)\}\}|\{%(.*?)%\}", path.read_text(encoding="utf-8"), re.S):
            expression = " ".join((match.group(1) or match.group(2) or "").split())
            if len(expression) > 160:
                long_ones.append("%s: %d characters: %s..." % (path.relative_to(ROOT), len(expression), expression[:60]))
    assert long_ones == [], "\n".join(long_ones)
