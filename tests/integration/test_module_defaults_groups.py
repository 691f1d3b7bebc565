"""The action group fediverse.object_storage.db with module_defaults, as the collection's roles use it
(against the real PostgreSQL of the harness, through media_info):

- the defaults of a block reach the tasks of an include_tasks and of an include_role inside it;
- a value ``omit`` in the defaults leaves the option out (here the password then comes from env_file);
- a role's own defaults for the group replace the caller's whole dict for that group (an option the
  role leaves out is not filled from the caller's).
"""

import uuid

import yaml

from tests.ansible_helpers import run_playbook
from tests.fixtures.mastodon_instance import build_instance

MEDIA_INFO = {"fediverse.object_storage.media_info": {"env_file": "{{ env_file }}", "sample_size": 0}}


def _task(name):
    return [dict({"name": name, "register": "out"}, **MEDIA_INFO)]


def test_db_group_defaults_reach_included_tasks_and_roles(pg, tmp_path):
    inst = build_instance(pg, "mdgroups_" + uuid.uuid4().hex[:8], tmp_path / "system")
    p = inst.db_params
    env_file = tmp_path / ".env.production"
    # Only the password and the database name come from here: a host, port or user not taken from
    # the defaults fails to connect.
    env_file.write_text("DB_HOST=/nonexistent-socket-dir\nDB_PORT=1\nDB_USER=nobody\n"
                        "DB_NAME=%s\nDB_PASS=%s\n" % (p["dbname"], p["password"]))
    (tmp_path / "child.yml").write_text(yaml.safe_dump(_task("Media info in included tasks")))
    for role, tasks in {
        "probe": _task("Media info in included role"),
        # The role's own defaults have no db_name: the caller's db_name must not fill it in.
        "own": [{"name": "The role's own database connection",
                 "module_defaults": {"group/fediverse.object_storage.db": "{{ own__db_connection }}"},
                 "block": _task("Media info in a role with its own defaults")}],
    }.items():
        (tmp_path / "roles" / role / "tasks").mkdir(parents=True)
        (tmp_path / "roles" / role / "tasks" / "main.yml").write_text(yaml.safe_dump(tasks))
    (tmp_path / "roles" / "own" / "vars").mkdir()
    (tmp_path / "roles" / "own" / "vars" / "main.yml").write_text(yaml.safe_dump(
        {"own__db_connection": {"db_host": p["host"], "db_port": p["port"], "db_user": p["user"]}}))
    connection = {"db_host": p["host"], "db_port": p["port"], "db_user": p["user"],
                  "db_password": "{{ '' or omit }}"}
    play = [
        {"hosts": "localhost", "gather_facts": False,
         "vars": {"env_file": str(env_file), "conn": dict(connection, db_name=p["dbname"])},
         "tasks": [{"name": "Defaults for the db group", "module_defaults": {
             "group/fediverse.object_storage.db": "{{ conn }}"}, "block": [
             {"name": "Included tasks", "ansible.builtin.include_tasks": "child.yml"},
             {"name": "Included role", "ansible.builtin.include_role": {"name": "probe"}}]}]},
        {"hosts": "localhost", "gather_facts": False,
         "vars": {"env_file": str(env_file), "conn": dict(connection, db_name="not_this_database")},
         "tasks": [{"name": "Caller's defaults with another database name", "module_defaults": {
             "group/fediverse.object_storage.db": "{{ conn }}"}, "block": [
             {"name": "Role with its own defaults", "ansible.builtin.include_role": {"name": "own"}}]}]},
    ]
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    result = run_playbook(str(playbook))
    assert result.rc == 0, result
    for name in ("Media info in included tasks", "Media info in included role",
                 "Media info in a role with its own defaults"):
        out = result.task(name)
        assert out["database"].endswith("/" + p["dbname"]), (name, out)
        assert out["total_rows"] > 0 and out["changed"] is False, (name, out)
