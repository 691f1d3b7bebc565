"""How the roles talk to each other and to the modules, read from their YAML:

- every module that takes the S3 connection or the shared database options is in its action group;
- a role's module task runs inside a block whose module_defaults set its groups, and repeats none of
  the options they set;
- no role (or playbook) reads another role's private ``<role>__*`` variable;
- every ``tasks_from`` (roles, playbooks, extensions) names a documented entry point;
- media_copy's ``dependencies`` entry point documents its output fact;
- an option shared by several entry points is defined once in argument_specs.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES_DIR = ROOT / "roles"
NS = "fediverse.object_storage."
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks").is_dir())
RUNTIME = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
GROUPS = {name: set(members) for name, members in RUNTIME.get("action_groups", {}).items()}
INCLUDES = {"import_tasks", "include_tasks", "ansible.builtin.import_tasks", "ansible.builtin.include_tasks"}
ROLE_INCLUDES = {"import_role", "include_role", "ansible.builtin.import_role", "ansible.builtin.include_role"}
TASK_LISTS = ("block", "rescue", "always")


def load(path):
    return yaml.safe_load(Path(path).read_text())


def specs(role):
    path = ROLES_DIR / role / "meta" / "argument_specs.yml"
    return load(path)["argument_specs"] if path.exists() else {}


# The groups of a connection the roles keep once (vultr_object_storage runs once, in the bucket role).
CONNECTION_GROUPS = ("s3", "db")


def groups_of(module):
    return {group for group in CONNECTION_GROUPS if module in GROUPS.get(group, ())}


# --- modules and their action groups ---------------------------------------------------------------

def _module_sources():
    for path in sorted((ROOT / "plugins" / "modules").glob("*.py")):
        yield path.stem, path.read_text()


def test_modules_taking_the_shared_options_are_in_their_action_group():
    expected = {"s3": set(), "db": set()}
    for name, text in _module_sources():
        if "s3_argument_spec()" in text or re.search(r"^  - fediverse\.object_storage\.s3$", text, re.M):
            expected["s3"].add(name)
        if "db_argument_spec()" in text or re.search(r"^  - fediverse\.object_storage\.(mastodon|misskey)_db$", text, re.M):
            expected["db"].add(name)
    assert expected["db"] >= {"media_copy", "media_info", "misskey_meta", "misskey_drive_move", "misskey_storage_check"}
    for group, modules in expected.items():
        missing = modules - GROUPS.get(group, set())
        assert not missing, "meta/runtime.yml: action group %s lacks %s" % (group, sorted(missing))
    modules = {name for name, _text in _module_sources()}
    for group, members in GROUPS.items():
        assert members <= modules, (group, members - modules)


# --- module_defaults around every module task of a role --------------------------------------------

def _role_vars(role):
    path = ROLES_DIR / role / "vars" / "main.yml"
    return (load(path) or {}) if path.exists() else {}


def _defaults_options(role, value):
    """The option names a module_defaults value sets: a dict, or "{{ var }}" naming a dict of vars/main.yml."""
    if isinstance(value, dict):
        return set(value)
    match = re.fullmatch(r"\{\{\s*(\w+)\s*\}\}", str(value).strip())
    assert match, "%s: module_defaults value %r is neither a dict nor one variable" % (role, value)
    resolved = _role_vars(role).get(match.group(1))
    assert isinstance(resolved, dict), "%s: %s is not a dict in vars/main.yml" % (role, match.group(1))
    return set(resolved)


def _include_file(task):
    for key in INCLUDES:
        if key in task:
            value = task[key]
            return value["file"] if isinstance(value, dict) else value
    return None


def _walk(role, rel, context, seen, problems):
    seen.add(rel)
    tasks = load(ROLES_DIR / role / "tasks" / rel) or []
    _walk_list(role, rel, tasks, context, seen, problems)


def _walk_list(role, rel, tasks, context, seen, problems):
    for task in tasks:
        inner = dict(context)
        for key, value in (task.get("module_defaults") or {}).items():
            if key.startswith("group/"):
                inner[key.split("/", 1)[1].replace(NS, "")] = _defaults_options(role, value)
        if any(key in task for key in TASK_LISTS):
            for key in TASK_LISTS:
                _walk_list(role, rel, task.get(key) or [], inner, seen, problems)
            continue
        included = _include_file(task)
        if included is not None:
            _walk(role, included, inner, seen, problems)
            continue
        modules = [key for key in task if key.startswith(NS)]
        for key in modules:
            module = key[len(NS):]
            args = task[key] or {}
            for group in sorted(groups_of(module)):
                if group not in inner:
                    problems.append("%s/tasks/%s: %r (%s) runs without module_defaults for group %s"
                                    % (role, rel, task.get("name"), module, group))
                    continue
                repeated = sorted(set(args) & inner[group])
                if repeated:
                    problems.append("%s/tasks/%s: %r repeats %s, set by the module_defaults of group %s"
                                    % (role, rel, task.get("name"), repeated, group))


@pytest.mark.parametrize("role", ROLES)
def test_role_module_tasks_run_inside_their_groups_module_defaults(role):
    problems, seen = [], set()
    for entry_point in specs(role):
        _walk(role, entry_point + ".yml", {}, seen, problems)
    for path in sorted((ROLES_DIR / role / "tasks").glob("*.yml")):
        if path.name not in seen:  # not reached from an entry point: checked on its own
            _walk(role, path.name, {}, seen, problems)
    assert not problems, "\n".join(problems)


# --- private variables -------------------------------------------------------------------------------

def _yaml_files(*dirs):
    for base in dirs:
        base = ROOT / base
        if base.is_dir():
            yield from sorted(p for p in base.rglob("*") if p.suffix in (".yml", ".yaml", ".j2") and p.is_file())


def test_no_role_reads_another_roles_private_variable():
    private = re.compile(r"(?<![\w])(%s)__\w+" % "|".join(ROLES))
    role_text = {role: "\n".join(p.read_text() for p in _yaml_files("roles/" + role)) for role in ROLES}
    problems = []
    for path in _yaml_files("roles", "playbooks", "extensions", "templates"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] == "roles":
            owners = {rel.parts[1]}
        else:  # a shared template belongs to the roles that render it
            owners = {role for role, text in role_text.items() if "/".join(rel.parts[-2:]) in text}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in private.finditer(line):
                if match.group(1) not in owners:
                    problems.append("%s:%d: %s" % (rel, number, match.group(0)))
    assert not problems, "private variables of another role:\n" + "\n".join(problems)


# --- tasks_from names a documented entry point -------------------------------------------------------

def _mappings(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def _all_documents():
    for path in _yaml_files("roles", "playbooks", "extensions"):
        if path.suffix == ".j2":
            continue
        try:
            yield path, yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue


def _values_of(variable):
    """Every literal value a variable is given anywhere in the roles, playbooks and extensions."""
    return {m[variable] for _p, doc in _all_documents() for m in _mappings(doc)
            if isinstance(m.get(variable), str) and "{{" not in m[variable]}


def test_every_tasks_from_is_a_documented_entry_point():
    problems, checked = [], 0
    for path, doc in _all_documents():
        for mapping in _mappings(doc):
            for key in ROLE_INCLUDES & set(mapping):
                spec = mapping[key]
                if not isinstance(spec, dict) or "tasks_from" not in spec:
                    continue
                role = str(spec["name"]).replace(NS, "")
                if role not in ROLES:
                    continue
                value = str(spec["tasks_from"])
                templated = re.fullmatch(r"\{\{\s*(\w+)(?:\s*\|\s*default\('(\w+)'\))?\s*\}\}", value.strip())
                names = ({templated.group(2)} - {None}) | _values_of(templated.group(1)) if templated else {value}
                for name in sorted(names):
                    checked += 1
                    if name not in specs(role):
                        problems.append("%s: tasks_from %s of role %s is not in its meta/argument_specs.yml"
                                        % (path.relative_to(ROOT), name, role))
                    elif not (ROLES_DIR / role / "tasks" / (name + ".yml")).exists():
                        problems.append("%s: role %s has no tasks/%s.yml" % (path.relative_to(ROOT), role, name))
    assert checked >= 8
    assert not problems, "\n".join(problems)


def test_media_copy_dependencies_entry_point_documents_its_output():
    entry = specs("media_copy").get("dependencies")
    assert entry, "media_copy has no documented dependencies entry point"
    description = " ".join(entry.get("description") or [])
    assert "media_copy_interpreter" in description
    tasks = load(ROLES_DIR / "media_copy" / "tasks" / "dependencies.yml")
    set_facts = [m["ansible.builtin.set_fact"] for m in _mappings(tasks) if "ansible.builtin.set_fact" in m]
    assert any("media_copy_interpreter" in facts for facts in set_facts)


# --- argument_specs: shared options defined once ------------------------------------------------------

def _option_nodes(role):
    """{option: {id of each distinct YAML node defining it}} over every entry point (aliases share a node)."""
    root = yaml.compose((ROLES_DIR / role / "meta" / "argument_specs.yml").read_text())
    found = {}

    def options_of(mapping):
        for key, value in mapping.value:
            if key.value == "<<":
                options_of(value)
            else:
                found.setdefault(key.value, set()).add(id(value))

    for key, value in root.value:
        if key.value != "argument_specs":
            continue
        for _entry_key, entry in value.value:
            for field, options in entry.value:
                if field.value == "options":
                    options_of(options)
    return found


@pytest.mark.parametrize("role", [r for r in ROLES if specs(r)])
def test_argument_specs_define_each_shared_option_once(role):
    repeated = sorted(name for name, nodes in _option_nodes(role).items() if len(nodes) > 1)
    assert not repeated, "%s: options defined more than once (use an anchor or a merge key): %s" % (role, repeated)


def test_media_copy_entry_points_still_have_every_option():
    entry = specs("media_copy")
    assert set(entry["dependencies"]["options"]) < set(entry["main"]["options"])
    assert set(entry["main"]["options"]) < set(entry["retire_cache"]["options"])
    assert {"media_copy_bucket", "media_copy_db_host", "media_copy_endpoint", "media_copy_cache_dir",
            "media_copy_marker_dir", "media_copy_python"} <= set(entry["retire_cache"]["options"])
    assert set(entry["restore_cache"]["options"]) == {"media_copy_marker_dir", "media_copy_system_root",
                                                      "media_copy_cache_dir"}


def _role_includes(path):
    def walk(tasks):
        for task in tasks or []:
            for key in TASK_LISTS:
                yield from walk(task.get(key))
            for key in ROLE_INCLUDES:
                if key in task:
                    yield task[key]
    yield from walk(load(path))


def test_migrate_skips_a_roles_argument_check_only_where_preflight_made_it():
    """roles/migrate includes nginx_proxy with rolespec_validate: false (one "Validating arguments" line less per
    include): allowed only because preflight.yml validates nginx_proxy's 'validate' entry point, whose options are
    all those of the entry points included without the check, with the same values."""
    nginx = specs("nginx_proxy")
    validated = set(nginx["validate"]["options"])
    unchecked = []
    for path in sorted((ROLES_DIR / "migrate" / "tasks").glob("*.yml")):
        for args in _role_includes(path):
            if args.get("rolespec_validate") is False:
                unchecked.append((path.name, args["name"], args.get("tasks_from", "main")))
    assert unchecked, "nothing to check: the test no longer applies"
    for name, role, entry in unchecked:
        assert role == NS + "nginx_proxy", (name, role)
        assert set(nginx[entry]["options"]) <= validated, (name, entry)
    preflight = list(_role_includes(ROLES_DIR / "migrate" / "tasks" / "preflight.yml"))
    assert any(a["name"] == NS + "nginx_proxy" and a.get("tasks_from") == "validate" and a.get("rolespec_validate", True)
               for a in preflight), preflight
    # ...and pre-flight runs on every run of migrate.yml, whatever --tags says.
    main = load(ROLES_DIR / "migrate" / "tasks" / "main.yml")[0]["block"]
    assert [t for t in main if t.get("ansible.builtin.import_tasks") == "preflight.yml"][0]["tags"] == ["always"]


def test_no_include_passes_omit_as_a_variable():
    """`omit` leaves out a module's option; as the value of a variable given to an include it is the placeholder
    text itself (a Misskey prefix of '__omit_place_holder__...' once)."""
    def walk(tasks, where):
        for task in tasks or []:
            for key in TASK_LISTS:
                yield from walk(task.get(key), where)
            if any(key in task for key in ROLE_INCLUDES | INCLUDES):
                for name, value in (task.get("vars") or {}).items():
                    if "omit" in str(value):
                        yield "%s: %s: %s" % (where, task.get("name"), name)

    found = [item for path in sorted(ROLES_DIR.glob("*/tasks/*.yml"))
             for item in walk(load(path), path.relative_to(ROOT))]
    assert not found, found
