"""The ``mimicry`` console command: the library's sub-commands plus the experiment ones.

The library (:mod:`mimicry.cli`) registers tasks, generate, align, capture and organism; this
module adds ``probe`` (:mod:`experiments.probe_cli`), ``run`` and ``demo``
(:mod:`experiments.runner`) the same way, through each module's ``register(subparsers)``.
"""

from __future__ import annotations

import sys

from mimicry import cli as _cli

from . import probe_cli, runner

COMMANDS = (probe_cli, runner)


def build_parser():
    """Return the full ``mimicry`` parser (library and experiment sub-commands)."""
    return _cli.build_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Run the ``mimicry`` command; return the exit code (0 ok, 2 user error)."""
    return _cli.main(argv, COMMANDS)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
