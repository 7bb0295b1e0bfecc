"""Every run-folder path the docs mention is one that RunFolder (the runner) writes."""

from __future__ import annotations

import re
from pathlib import Path

from experiments.layout import RunFolder

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# RUN/..., or a concrete run folder: cache/demo/... or cache/runs/<name>/...
MENTION = re.compile(r"(?:\bRUN|\bcache/demo|\bcache/runs/[\w.-]+)/[\w<>./-]*[\w>/]")
NAME = r"[\w.<>-]+"


def _templates() -> list[str]:
    """Return regexes of every path RunFolder makes (placeholders match any name)."""
    f, k, t = RunFolder("RUN"), "<key>", "<teacher>"
    paths = [f.config, f.status, f.marker("<stage>"), f.report_md, f.report_html,
             f.organism_models / "<role>", f.traces(k), f.scrambled_traces(t),
             f.self_scrambled(k), f.after_scrambled(k), f.alignment_pair(k) / "<file>",
             f.alignment / "<file>", f.cache(k), f.cache(f.cross_stem(k, t)),
             f.cache(f.scrambled_stem(k)), f.probe_table("<name>"),
             f.probe_table("<name>", "<table>"), f.probe_meta("<name>"),
             f.probe_figure("<name>", "<unit>").with_suffix(".png"),
             f.probe_figure("<name>", "<unit>").with_suffix(".pdf")]
    out = []
    for p in paths:
        rx = re.escape(p.as_posix())
        rx = re.sub(r"<\w+>", lambda _: NAME, rx)
        out.append(rx)
    return out


def _ok(path: str, templates: list[str]) -> bool:
    path = re.sub(r"^(cache/demo|cache/runs/[\w.-]+)", "RUN", path).rstrip("/.")
    for rx in templates:
        if re.fullmatch(rx, path):
            return True
        # a folder on the way to a path RunFolder makes (RUN/caches, RUN/alignment/pairs/<key>)
        parts = rx.split("/")
        if any(re.fullmatch("/".join(parts[:i]), path) for i in range(2, len(parts))):
            return True
    return False


def test_docs_name_only_paths_the_runner_writes():
    templates = _templates()
    bad = []
    for doc in DOCS:
        for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), start=1):
            for m in MENTION.finditer(line):
                if not _ok(m.group(0), templates):
                    bad.append(f"{doc.relative_to(ROOT)}:{n}: {m.group(0)}")
    assert not bad, "paths RunFolder does not write:\n" + "\n".join(bad)


def test_the_check_catches_a_wrong_path():
    templates = _templates()
    assert _ok("cache/demo/caches/student_mastery__on_teacher.h5", templates)
    assert _ok("RUN/alignment/pairs/<key>/", templates)
    assert not _ok("cache/demo/student__on_teacher.h5", templates)   # caches/ missing
    assert not _ok("RUN/probes/verdict/calls.csv", templates)         # no such folder
