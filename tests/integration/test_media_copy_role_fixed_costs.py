"""The media_copy role's fixed costs (issue 15): the dependency step runs once per play.

migrate.yml enters the role five times (preflight, two copy passes, verify, retirement); only the
first entry installs the packages and chooses the interpreter, unless the interpreter settings change.
"""

from tests.ansible_helpers import run_playbook

PLAY = """
- hosts: localhost
  gather_facts: false
  vars:
    media_copy_bucket: some-bucket
    media_copy_python: none
  tasks:
    - name: First entry
      ansible.builtin.include_role:
        name: fediverse.object_storage.media_copy
        tasks_from: dependencies
    - name: Second entry
      ansible.builtin.include_role:
        name: fediverse.object_storage.media_copy
        tasks_from: dependencies
    - name: Third entry, another interpreter
      ansible.builtin.include_role:
        name: fediverse.object_storage.media_copy
        tasks_from: dependencies
      vars:
        media_copy_python_interpreter: /usr/bin/python3
    - name: Show the interpreter
      ansible.builtin.debug:
        var: media_copy_interpreter
"""


def test_dependency_step_runs_once_per_play():
    res = run_playbook(PLAY)
    assert res.rc == 0, res
    chosen = [t for t in res.tasks if "Choose the interpreter" in t["name"]]
    assert [bool(t["result"].get("skipped")) for t in chosen] == [False, True, False], chosen
    assert res.task("Show the interpreter")["media_copy_interpreter"] == "/usr/bin/python3"
