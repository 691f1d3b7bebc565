# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The attributes block shared by the modules that edit an app's settings (a file or a DB row):
    # extends_documentation_fragment: [fediverse.object_storage.attributes]
    DOCUMENTATION = r"""
attributes:
  check_mode:
    support: full
    description: Reports what would change; nothing is written.
  diff_mode:
    support: full
    description: Shows the change with the values of secrets masked.
"""

    # The modules that only read: extends_documentation_fragment: [fediverse.object_storage.attributes.read_only]
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Runs unchanged in check mode; the module only reads.
  diff_mode:
    support: none
    description: Nothing to show; the module changes nothing.
"""
