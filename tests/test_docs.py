"""The docs are tested: the README's sessions and docs blocks run against a demo run (sybil).

Every ``python`` block of the files in ``DOCS`` is run as a doctest (outputs compared with
NORMALIZE_WHITESPACE and ELLIPSIS) in a folder whose ``cache/demo`` is one demo run made for
the whole test session. Set ``MIMICRY_DEMO_RUN=/path/to/a/demo/run`` to reuse a run you
already have (quick local iteration); ``make test`` makes its own.
"""

from __future__ import annotations

import doctest
import os
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/alignment.md", "docs/experiments.md"]


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """Return a folder whose ``cache/demo`` holds a complete ``mimicry demo`` run."""
    root = tmp_path_factory.mktemp("docs")
    (root / "cache").mkdir()
    given = os.environ.get("MIMICRY_DEMO_RUN")
    if given:
        (root / "cache" / "demo").symlink_to(Path(given).resolve())
        return root
    org = pytest.importorskip("mimicry.organism")
    if any(not (org.CHECKPOINTS / r / "config.json").exists() for r in org.ROLES):
        pytest.skip("organism checkpoints not committed")
    from experiments.runner import demo

    demo(root / "cache" / "demo")
    return root


def _examples(name: str):
    from sybil import Sybil
    from sybil.parsers.markdown import PythonCodeBlockParser

    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    sy = Sybil(parsers=[PythonCodeBlockParser(doctest_optionflags=flags)], path=str(ROOT))
    doc = sy.parse(ROOT / name)
    return doc, list(doc.examples())


def test_doc_sessions_run_and_print_what_they_show(demo_root, monkeypatch):
    # one test, not one per file: under pytest-xdist a session fixture is made once per
    # worker, and the demo run is the expensive part
    monkeypatch.chdir(demo_root)
    monkeypatch.setenv("TQDM_DISABLE", "1")
    for name in DOCS:
        doc, examples = _examples(name)
        assert examples, f"{name}: no python examples found"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for ex in examples:
                ex.evaluate()
