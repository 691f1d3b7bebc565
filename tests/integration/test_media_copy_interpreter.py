"""Issue 20, finding 14: with ``media_copy_python: none`` (migrate_python: none) the media_copy role's
``dependencies`` entry point chooses the interpreter Ansible itself uses on the host: the
``ansible_python_interpreter`` variable, else ANSIBLE_PYTHON_INTERPRETER, else ``interpreter_python`` in
ansible.cfg, else the discovered one (``auto``), never a silent /usr/bin/python3."""

import sys

import pytest

from tests.ansible_helpers import run_playbook

PLAY = """
- hosts: target
  gather_facts: false
  vars:
    media_copy_bucket: some-bucket
    media_copy_python: none
  tasks:
    - name: Dependencies
      ansible.builtin.include_role:
        name: fediverse.object_storage.media_copy
        tasks_from: dependencies
    - name: Show the interpreter
      ansible.builtin.debug:
        msg:
          chosen: "{{ media_copy_interpreter }}"
          discovered: "{{ ansible_facts['discovered_interpreter_python'] | default('') }}"
"""


@pytest.fixture
def python_link(tmp_path):
    """A path to this venv's Python that no discovery would find, distinguishable from /usr/bin/python3."""
    link = tmp_path / "custom-python" / "bin" / "python3"
    link.parent.mkdir(parents=True)
    link.symlink_to(sys.executable)
    return str(link)


def run(tmp_path, env=None, host_vars=""):
    inventory = tmp_path / "inventory.ini"
    inventory.write_text("target ansible_connection=local %s\n" % host_vars)
    res = run_playbook(PLAY, inventory=str(inventory), env=env)
    assert res.rc == 0, res
    return res.task("Show the interpreter", host="target")["msg"]


def test_the_environment_setting_is_used(tmp_path, python_link):
    assert run(tmp_path, env={"ANSIBLE_PYTHON_INTERPRETER": python_link})["chosen"] == python_link


def test_interpreter_python_in_ansible_cfg_is_used(tmp_path, python_link, monkeypatch):
    import tests.ansible_helpers as helpers

    cfg = tmp_path / "ansible.cfg"
    cfg.write_text("[defaults]\ninterpreter_python = %s\n" % python_link)
    original = helpers.ansible_env

    def without_the_variable(extra=None, callback="json", venv=None):
        # ansible_helpers sets ANSIBLE_PYTHON_INTERPRETER, which is stronger than ansible.cfg.
        env = original(extra, callback, venv)
        env.pop("ANSIBLE_PYTHON_INTERPRETER", None)
        return env

    monkeypatch.setattr(helpers, "ansible_env", without_the_variable)
    assert run(tmp_path, env={"ANSIBLE_CONFIG": str(cfg)})["chosen"] == python_link


def test_the_host_variable_wins_over_the_environment(tmp_path, python_link):
    chosen = run(tmp_path, env={"ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"},
                 host_vars="ansible_python_interpreter=%s" % python_link)["chosen"]
    assert chosen == python_link


def test_auto_is_the_discovered_interpreter(tmp_path):
    shown = run(tmp_path, env={"ANSIBLE_PYTHON_INTERPRETER": "auto_silent"})
    assert shown["discovered"] and shown["chosen"] == shown["discovered"]
