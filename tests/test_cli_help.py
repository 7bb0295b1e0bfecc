"""Every option of every sub-command has help text; help is plain text; help loads no pandas."""

from __future__ import annotations

import argparse
import subprocess
import sys

from experiments.cli import build_parser


def _actions(p, path=("mimicry",)):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sp in a.choices.items():
                yield from _actions(sp, (*path, name))
        else:
            yield path, a, p


def test_every_option_has_help_and_shows_its_default():
    missing = [(" ".join(path), a.option_strings or a.dest) for path, a, _ in
               _actions(build_parser()) if not a.help and "-h" not in a.option_strings]
    assert not missing
    gen = next(p for path, a, p in _actions(build_parser()) if path[-1] == "generate")
    assert "(default: 4096)" in gen.format_help()


def test_help_is_plain_text():
    org = next(p for path, a, p in _actions(build_parser()) if path[-1] == "organism")
    text = org.format_help()
    assert "``" not in text and ":func:" not in text


def test_help_imports_no_heavy_library():
    code = ("import sys; from experiments.cli import build_parser; build_parser();"
            "print(sorted(m for m in ('pandas', 'numpy', 'scipy', 'torch', 'transformers')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
