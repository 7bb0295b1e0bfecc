"""``mimicry`` command line: one sub-command per pipeline step.

Each step lives in its own module exposing ``register(subparsers)``; the handler it sets
(``set_defaults(func=...)``) returns an exit code. User errors (:class:`MimicryError`) print
one line and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import re
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


_REST = re.compile(r":[a-z]+:`~?([^`]+)`|``([^`]+)``")


def plain(text: str) -> str:
    """Return ``text`` without reST markup (``code``, :func:`name`) for the terminal."""
    return _REST.sub(lambda m: (m.group(1) or m.group(2)).rsplit(".", 1)[-1]
                     if m.group(1) else m.group(2), text)


class HelpFormatter(argparse.HelpFormatter):
    """Plain-text help: no reST markup, each option's default shown, lists wrap at commas."""

    def _format_text(self, text: str) -> str:
        return super()._format_text(plain(text))

    def _split_lines(self, text: str, width: int) -> list[str]:
        # break comma-separated lists after a comma, never inside a word
        return super()._split_lines(plain(text).replace(",", ", ").replace(",  ", ", "),
                                    width)

    def _get_help_string(self, action: argparse.Action) -> str:
        h = action.help or ""
        d = action.default
        if (action.option_strings and "default" not in h.lower()
                and not (d is None or d is False or d is argparse.SUPPRESS)):
            h += " (default: %(default)s)"
        return h


class Parser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`HelpFormatter` for every (sub-)command."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(extra: tuple = ()) -> argparse.ArgumentParser:
    """Return the top-level parser with every available sub-command registered.

    ``extra``: further modules with ``register(subparsers)`` (the ``experiments`` package adds
    ``probe``, ``run`` and ``demo`` this way; the library itself never imports it).
    """
    parser = Parser(
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
