"""``mimicry`` command line: one sub-command per pipeline step.

Each step lives in its own module exposing ``register(subparsers)``; the handler it sets
(``set_defaults(func=...)``) returns an exit code. User errors (:class:`MimicryError`) print
one line and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import MimicryError

# Modules that add sub-commands, in the order they appear in --help.
COMMAND_MODULES = [
    "mimicry.tasks.cli",        # tasks list / export
    "mimicry.generate.cli",     # generate, traces import
    "mimicry.alignment.cli",    # align
    "mimicry.capture.cli",      # capture, cache info
    "mimicry.organism.cli",     # organism train, demo
]


def build_parser(extra: tuple = ()) -> argparse.ArgumentParser:
    """Return the top-level parser with every available sub-command registered.

    ``extra``: further modules with ``register(subparsers)`` (the ``experiments`` package adds
    ``probe``, ``run`` and ``demo`` this way; the library itself never imports it).
    """
    parser = argparse.ArgumentParser(
        prog="mimicry",
        description="Policy transfer or surface mimicry? Behaviour, activations and probes "
                    "for teacher/student/base reasoning models.")
    parser.add_argument("--version", action="version", version=f"mimicry {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for modname in COMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name == modname:  # step not built yet
                continue
            raise
        mod.register(sub)
    for mod in extra:
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None, extra: tuple = ()) -> int:
    """Run the CLI; return the exit code (0 ok, 2 user error)."""
    parser = build_parser(extra)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc = args.func(args)
    except MimicryError as e:
        print(f"error: {e.render()}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished items are kept, re-run the same command to resume",
              file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
