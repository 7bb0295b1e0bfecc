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
             f.probe_figure("<name>", "<unit>").with_suffix(".pdf"),
             f.intervene_plan("<probe>", k), f.intervene_rows("<probe>", k)]
    paths += [p(k, c) for p in (f.self_control, f.after_control) for c in ("empty", "filler")]
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


def _layout_block() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Layout", 1)[1].split("```", 2)[1]
    return [line for line in block.splitlines() if line.strip()]


def test_readme_layout_is_the_real_tree():
    lines = _layout_block()
    parent, named = ROOT, set()
    for line in lines:
        if not line.startswith(" "):
            head = line.split()[0]
            if head.endswith("/"):
                parent = ROOT / head
                assert parent.is_dir(), head
                named.add(parent)
            else:  # a row of top-level files
                for name in head.split():
                    assert (ROOT / name).exists(), name
            continue
        if line.startswith("   "):
            continue  # a continued description
        entry = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]  # "tasks/", "a.py, b.py" ...
        for name in (n.strip() for n in entry.split(",")):
            if "*" in name:
                assert list(parent.glob(name)), name
            else:
                assert (parent / name).exists(), f"{parent.relative_to(ROOT)}/{name}"
                named.add(parent / name)
    text = "\n".join(lines)
    subpackages = [p for p in (ROOT / "src" / "mimicry").iterdir()
                   if p.is_dir() and (p / "__init__.py").exists()]
    for p in subpackages:  # every package of the library has its own line
        assert p in named, f"README Layout lacks src/mimicry/{p.name}/"
    for p in (ROOT / "experiments").glob("*.py"):  # every experiments module is mentioned
        assert p.name.startswith("__") or p.name in text, f"README Layout lacks {p.name}"
