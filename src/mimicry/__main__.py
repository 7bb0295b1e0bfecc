"""``python -m mimicry`` (what ``torchrun -m mimicry capture ...`` runs on every rank)."""

import sys

from .cli import main

sys.exit(main())
