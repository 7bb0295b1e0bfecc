"""The docs are tested: every block of README.md and docs/*.md runs (sybil) or says why not.

Every ``python`` block is run (a ``>>>`` session as a doctest, outputs compared with
NORMALIZE_WHITESPACE and ELLIPSIS) and every ``bash`` block's ``mimicry`` commands are run
(tests/_docs_blocks.py: how, and which names are swapped for the organism's), in a folder whose
``cache/demo`` is one demo run made for the whole test session. A block that cannot run here
carries ``<!-- skip: next "why" -->``; each such reason is listed as a skipped test. Set
``MIMICRY_DEMO_RUN=/path/to/a/demo/run`` to reuse a run you already have (quick local
iteration); ``make test`` makes its own.
"""

from __future__ import annotations

import os
import re
import unittest
import warnings
from pathlib import Path

import _docs_blocks as blocks
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r'<!-- skip: next "([^"]+)" -->')


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


def _skips() -> list[tuple[str, int, str]]:
    """Return every skipped block of the docs: (file, line of its fence, reason)."""
    out = []
    for name in DOCS:
        for line, _, _, above in blocks.fences(ROOT / name):
            m = SKIP.fullmatch(above.strip())
            if m:
                out.append((name, line, m.group(1)))
    return out


def test_doc_sessions_run_and_print_what_they_show(demo_root, monkeypatch):
    # one test, not one per file: under pytest-xdist a session fixture is made once per
    # worker, and the demo run is the expensive part
    monkeypatch.setenv("TQDM_DISABLE", "1")
    from mimicry.tasks import registry, scoring

    # docs/tasks.md registers a suite and a scorer: put the registries back afterwards
    saved = [(d, dict(d)) for d in (registry._REGISTRY, registry._CACHE, scoring._SCORERS)]
    sy = blocks.sybil()
    try:
        _run_docs(sy, demo_root, monkeypatch, counts := [0, 0])
    finally:
        for d, old in saved:
            d.clear()
            d.update(old)
    ran, skipped = counts
    assert not _gallery_misses(demo_root / "cache" / "demo")
    if not os.environ.get("MIMICRY_DOCS"):   # every doc ran: every skip marker was seen
        assert skipped == len(_skips()) and ran > 40, counts


def _gallery_misses(run: Path) -> list[str]:
    """Return the figure kinds a demo run writes that docs/figures.md does not show."""
    text = (ROOT / "docs" / "figures.md").read_text(encoding="utf-8")
    shown = set(re.findall(r"\]\((figures/[\w.-]+)\)", text))
    miss = [f"docs/{p}: no such image" for p in shown if not (ROOT / "docs" / p).is_file()]
    for png in sorted(run.glob("*/*.png")):
        kind = png.stem.split("__")[0]
        if f"**{kind}" not in text and f"`{png.parent.name}/{kind}__" not in text:
            miss.append(f"{png.relative_to(run)}: not in docs/figures.md")
    return miss


def _run_docs(sy, demo_root, monkeypatch, counts):
    only = os.environ.get("MIMICRY_DOCS")    # e.g. docs/probes.md: iterate on one page
    for name in DOCS:
        if only and name not in only.split(","):
            continue
        folder = demo_root / "blocks" / Path(name).stem
        folder.mkdir(parents=True)
        (folder / "cache").mkdir()
        (folder / "cache" / "demo").symlink_to((demo_root / "cache" / "demo").resolve())
        monkeypatch.chdir(folder)
        blocks.prepare(name, folder)
        doc = sy.parse(ROOT / name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for ex in doc.examples():
                try:
                    ex.evaluate()
                except unittest.SkipTest:
                    counts[1] += 1
                    continue
                counts[0] += 1


@pytest.mark.parametrize("name,line,reason", _skips(),
                         ids=[f"{n}:{ln}" for n, ln, _ in _skips()])
def test_block_skipped_here(name, line, reason):
    # listed so that every block not run by make test shows, with its reason, in -ra's summary
    pytest.skip(f"{name}:{line}: {reason}")


def test_every_command_block_is_tagged_and_skips_say_why():
    bad = []
    for name in DOCS:
        text = (ROOT / name).read_text(encoding="utf-8")
        for line, lang, body, _above in blocks.fences(ROOT / name):
            first = next((x for x in body.splitlines() if x.strip()), "")
            if not lang and blocks.COMMAND.match(first.strip()):
                bad.append(f"{name}:{line}: a command block without a language (sybil would "
                           "not see it): tag it bash")
            if lang in ("sh", "shell", "console"):
                bad.append(f"{name}:{line}: tag it bash")
        for m in re.finditer(r"<!-- skip:[^>]*-->", text):
            if not SKIP.fullmatch(m.group(0)):
                bad.append(f"{name}: {m.group(0)}: a skip names its reason: "
                           '<!-- skip: next "why" -->')
    assert not bad, "\n".join(bad)
