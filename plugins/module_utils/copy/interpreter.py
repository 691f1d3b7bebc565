# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python interpreter Ansible runs a host's modules with, decided the way ansible-core decides it
(``ansible.executor.module_common._get_shebang``), for the media_copy role's ``dependencies`` entry
point when it installs nothing itself (``media_copy_python: system`` or ``none``).

ansible-core reads its ``INTERPRETER_PYTHON`` setting, whose sources are, strongest first, the
``ansible_python_interpreter`` variable (inventory, play, task...), the ``ANSIBLE_PYTHON_INTERPRETER``
environment variable and ``interpreter_python`` in ansible.cfg, else ``auto``. A value that is empty or
a discovery mode (``auto``, ``auto_silent``, the former ``auto_legacy``...) means the interpreter found by
discovery, the host's ``discovered_interpreter_python`` fact; anything else is used as it is.

Plain Python, no Ansible import.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

DEFAULT_PYTHON = "/usr/bin/python3"


def is_discovery_mode(value):
    """True for a setting that asks Ansible to discover the interpreter (empty, ``auto``, ``auto_*``)."""
    value = (value or "").strip()
    return not value or value == "auto" or value.startswith("auto_")


def module_interpreter(configured, discovered=None, default=DEFAULT_PYTHON):
    """The interpreter Ansible uses for modules on the host.

    ``configured``: the INTERPRETER_PYTHON setting as Ansible resolves it for the host (the
    ``ansible_python_interpreter`` variable when set, else the environment, else ansible.cfg, else
    ``auto``: ``lookup('ansible.builtin.config', 'INTERPRETER_PYTHON')`` gives exactly that).
    ``discovered``: the host's ``discovered_interpreter_python`` fact, when discovery ran.
    ``default``: when discovery is asked for but has not run on the host yet.
    """
    for name, value in (("setting", configured), ("default", default)):
        if value is not None and not isinstance(value, str):
            raise TypeError("the interpreter %s must be a string, not %s" % (name, type(value).__name__))
    if not is_discovery_mode(configured):
        return configured.strip()
    if discovered and isinstance(discovered, str) and discovered.strip():
        return discovered.strip()
    return default
