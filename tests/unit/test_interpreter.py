"""plugins/module_utils/copy/interpreter.py and its filter: the interpreter Ansible runs modules with, decided
as ansible-core's module_common does (issue 20, finding 14)."""

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.interpreter import (
    is_discovery_mode,
    module_interpreter,
)


@pytest.mark.parametrize("configured,discovered,expected", [
    ("/opt/py/bin/python3", "/usr/bin/python3.11", "/opt/py/bin/python3"),  # a configured path wins
    (" /opt/py/bin/python3\n", "", "/opt/py/bin/python3"),
    ("/usr/bin/env python3", "", "/usr/bin/env python3"),  # used as Ansible uses it, verbatim
    ("auto", "/usr/bin/python3.11", "/usr/bin/python3.11"),
    ("auto_silent", "/usr/bin/python3.11", "/usr/bin/python3.11"),
    ("auto_legacy_silent", "/usr/libexec/platform-python", "/usr/libexec/platform-python"),
    ("", "/usr/bin/python3.12", "/usr/bin/python3.12"),
    (None, "/usr/bin/python3.12", "/usr/bin/python3.12"),
    ("auto", "", "/usr/bin/python3"),  # discovery did not run yet
    ("auto", None, "/usr/bin/python3"),
])
def test_module_interpreter(configured, discovered, expected):
    assert module_interpreter(configured, discovered) == expected


def test_a_name_that_only_starts_like_auto_is_a_path():
    assert not is_discovery_mode("/opt/auto/python3") and not is_discovery_mode("automatic-python")
    assert module_interpreter("automatic-python", "/usr/bin/python3.11") == "automatic-python"


def test_default_and_type():
    assert module_interpreter("auto", "", default="/usr/local/bin/python3") == "/usr/local/bin/python3"
    with pytest.raises(TypeError):
        module_interpreter(["/usr/bin/python3"])


def test_the_filter():
    from ansible.errors import AnsibleFilterError

    from ansible_collections.fediverse.object_storage.plugins.filter.module_interpreter import FilterModule

    f = FilterModule().filters()["module_interpreter"]
    assert f("/opt/py/bin/python3", "/usr/bin/python3.11") == "/opt/py/bin/python3"
    assert f("auto_silent", "/usr/bin/python3.11") == "/usr/bin/python3.11"
    assert f("auto") == "/usr/bin/python3"
    assert f("auto", "", "/bin/python3") == "/bin/python3"
    with pytest.raises(AnsibleFilterError):
        f("auto", "", ["x"])
