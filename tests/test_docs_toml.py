"""Every ```toml block of README.md and docs/*.md parses and passes the runner's config checks.

A block is a config fragment (a few tables of an experiment config): it is merged into the
dict of experiments/configs/qwen-32b.toml (the docs' running example: keys teacher, student,
base) (tables merged key by key, ``[[models]]`` replaced) and validated by
``experiments.config.config_from_dict``, which rejects unknown keys and bad values exactly as
``mimicry run`` does. Commented-out alternatives of the form ``# key = value`` (several may be
joined by ``;``) are checked the same way, one commented line at a time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from experiments.config import config_from_dict

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BASE = ROOT / "experiments" / "configs" / "qwen-32b.toml"
FENCE = re.compile(r"^```toml[^\n]*\n(.*?)^```", re.M | re.S)
ALT = re.compile(r"^\s*#\s*([A-Za-z_]\w*\s*=.*)$")


def _blocks() -> list[tuple[str, int, str]]:
    """Return (doc, line, text) of every ```toml block of the docs."""
    out = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            out.append((doc.relative_to(ROOT).as_posix(), line, m.group(1)))
    return out


def _merge(base: dict, frag: dict) -> dict:
    """Return ``base`` with ``frag`` merged in (tables recursively, other values replaced)."""
    out = dict(base)
    for k, v in frag.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


def _alternatives(text: str) -> list[str]:
    """Return the block once per commented-out ``# key = value`` line, that line switched on."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        m = ALT.match(line)
        if not m:
            continue
        body = re.sub(r"\s+#.*$", "", m.group(1))          # its own trailing comment
        keys = [p.strip() for p in body.split(";") if p.strip()]
        names = {p.split("=")[0].strip() for p in keys}
        kept = [ln for j, ln in enumerate(lines[:i + 1]) if j < i
                and not (re.match(r"^\s*([A-Za-z_]\w*)\s*=", ln)
                         and re.match(r"^\s*([A-Za-z_]\w*)", ln).group(1) in names)]
        out.append("\n".join([*kept, *keys, *lines[i + 1:]]))
    return out


BLOCKS = _blocks()


def test_the_docs_have_toml_blocks():
    # the parametrised test below would pass vacuously if the fence pattern stopped matching
    assert len(BLOCKS) >= 3, BLOCKS


@pytest.mark.parametrize("doc,line,text", BLOCKS, ids=[f"{d}:{n}" for d, n, _ in BLOCKS])
def test_toml_block_is_a_valid_config_fragment(doc, line, text):
    base = tomllib.loads(BASE.read_text(encoding="utf-8"))
    for variant in [text, *_alternatives(text)]:
        try:
            frag = tomllib.loads(variant)
        except tomllib.TOMLDecodeError as e:
            pytest.fail(f"{doc}:{line}: not valid TOML ({e}):\n{variant}")
        assert frag, f"{doc}:{line}: empty block"
        config_from_dict(_merge(base, frag), source=f"{doc}:{line}")


def test_an_unknown_key_in_a_fragment_is_caught():
    # the check this file relies on: a misspelt key in a docs fragment fails
    from mimicry.errors import InputError

    base = tomllib.loads(BASE.read_text(encoding="utf-8"))
    with pytest.raises(InputError, match=r"unknown key 'ranks_per_nod' in \[capture\]"):
        config_from_dict(_merge(base, tomllib.loads("[capture]\nranks_per_nod = 8\n")),
                         source="frag")
    alt = _alternatives("[capture]\nranks_per_node = 8\n# nodes = 2; gpus_per_rank = 4  # x\n")
    assert [tomllib.loads(a) for a in alt] == [
        {"capture": {"ranks_per_node": 8, "nodes": 2, "gpus_per_rank": 4}}]
