"""python -m tests.services up|down|leftovers (see cli.py)."""

import sys

from .cli import main

sys.exit(main())
