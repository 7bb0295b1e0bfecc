"""``mimicry`` command line: one sub-command per pipeline step.

Each step lives in its own module exposing ``register(subparsers)``; the handler it sets
(``set_defaults(func=...)``) returns an exit code. User errors (:class:`MimicryError`) print
one line and exit 2, with no traceback. Library code reports progress through
:mod:`logging`; :func:`main` decides what the console shows (:func:`console_logging`).
"""

from __future__ import annotations

import argparse
import logging
import re
import sys

from . import __version__
from .errors import MimicryError


def library_commands() -> tuple:
    """Return the library's command modules, in the order they appear in --help."""
    from .alignment import cli as align_cli  # align
    from .capture import cli as capture_cli  # capture, cache info
    from .generate import cli as generate_cli  # generate, traces import
    from .organism import cli as organism_cli  # organism train
    from .tasks import cli as tasks_cli  # tasks list / export
    from .traces import cli as traces_cli  # scramble

    return (tasks_cli, generate_cli, align_cli, capture_cli, organism_cli, traces_cli)


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
    """Return the top-level parser with every sub-command registered.

    Every command module has ``register(subparsers)``; ``extra`` adds further such modules
    (the ``experiments`` package adds ``probe``, ``run`` and ``demo`` this way; the library
    itself never imports it).
    """
    parser = Parser(
        prog="mimicry",
        description="Policy transfer or surface mimicry? Behaviour, activations and probes "
                    "for teacher/student/base reasoning models.")
    parser.add_argument("--version", action="version", version=f"mimicry {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in (*library_commands(), *extra):
        mod.register(sub)
    return parser


def _exit_now_if_hdf5_broken(code: int) -> None:
    """Exit at once (no interpreter shutdown) after a failed HDF5 write: HDF5 would retry
    closing the broken file at exit and can crash (exit 139) after the error was printed.
    Only for a real command line (``main()`` without ``argv``), never inside a caller."""
    from .diskspace import hdf5_broken

    if hdf5_broken():
        import os

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# Where each package's progress lines go: the runner's on stdout (as its plan and stage lines
# always were), the library's and the probes' on stderr (results stay alone on stdout).
LOGGERS = {"mimicry": "stderr", "probes": "stderr", "experiments": "stdout"}


class _ConsoleHandler(logging.StreamHandler):
    """Progress lines as plain text on the current sys.stdout / sys.stderr."""

    def __init__(self, stream_name: str) -> None:
        super().__init__()
        self.stream_name = stream_name
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):  # looked up on every record, so a redirected stream is honoured
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value) -> None:
        pass


def console_logging(level: int = logging.INFO) -> None:
    """Show INFO records of mimicry, probes and experiments on the console (idempotent)."""
    for name, stream in LOGGERS.items():
        lg = logging.getLogger(name)
        if not any(isinstance(h, _ConsoleHandler) for h in lg.handlers):
            lg.addHandler(_ConsoleHandler(stream))
        lg.setLevel(level)


def main(argv: list[str] | None = None, extra: tuple = ()) -> int:
    """Run the CLI; return the exit code (0 ok, 2 user error)."""
    console_logging()
    parser = build_parser(extra)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        rc = args.func(args)
    except MimicryError as e:
        print(f"error: {e.render()}", file=sys.stderr)
        if argv is None:  # a real command line (not a call from Python code or a test)
            _exit_now_if_hdf5_broken(e.exit_code)
        return e.exit_code
    except OSError as e:
        import errno

        if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT):
            raise
        from .diskspace import write_error

        print(f"error: {write_error(e.filename or '?', e, 'writing').render()}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished items are kept, re-run the same command to resume",
              file=sys.stderr)
        if argv is None:
            _exit_now_if_hdf5_broken(130)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
