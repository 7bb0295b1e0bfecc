"""``python -m experiments``: the full ``mimicry`` command (library and experiment sub-commands)."""

import sys

from .cli import main

sys.exit(main())
