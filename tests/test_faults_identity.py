"""Fault injection, same name but other weights: identity is the weights, not the folder name.

Two checkpoint folders with the same name, one with perturbed weights (a real copy on disk);
a hub-style cache where ``A/tiny`` and ``B/tiny`` share the short name; and probes handed
caches of two different models where one model is required.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
from _faults import write_items, write_traces

from experiments.cli import main
from mimicry.capture import CaptureConfig, capture
from mimicry.errors import CacheMismatchError, InputError
from mimicry.fingerprint import model_identity
from mimicry.generate import generate
from mimicry.store import open_cache

CFG = CaptureConfig(entropy="off")


def _perturbed_copy(src: str, dest: Path, scale: float = 1e-2) -> Path:
    """Copy a model folder and add seeded noise to every weight (a different model)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dest)
    w = load_file(str(dest / "model.safetensors"))
    g = torch.Generator().manual_seed(1)
    w = {k: v + scale * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in w.items()}
    save_file(w, str(dest / "model.safetensors"), metadata={"format": "pt"})
    return dest


@pytest.fixture
def twins(tmp_path, tiny_model_dir):
    a = Path(shutil.copytree(tiny_model_dir("qwen2"), tmp_path / "a" / "tiny"))
    b = _perturbed_copy(str(a), tmp_path / "b" / "tiny")
    return a, b


def test_capture_resume_with_other_weights_is_refused(twins, tmp_path):
    a, b = twins
    traces = write_traces(tmp_path / "t.jsonl", n=12)
    out = tmp_path / "c.h5"
    capture(str(a), traces, out, CFG, limit=10, progress=False, log=lambda s: None)
    with pytest.raises(CacheMismatchError, match="other weights") as e:
        capture(str(b), traces, out, CFG, progress=False, log=lambda s: None)
    assert "new --out" in e.value.render()
    with open_cache(out) as c:  # untouched: still the 10 items of model a
        assert len(c) == 10 and c.meta["weights_hash"] == model_identity(a)["weights_hash"]
    capture(str(a), traces, out, CFG, progress=False, log=lambda s: None)  # same weights: ok
    with open_cache(out) as c:
        assert len(c) == 12


def test_generate_resume_with_other_weights_or_tokenizer_is_refused(twins, tmp_path):
    a, b = twins
    items = write_items(tmp_path / "items.csv")
    out = tmp_path / "traces.jsonl"
    kw = dict(max_new_tokens=4, batch_size=4, progress=False)
    generate(str(a), str(items), out, limit=3, **kw)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert {r["meta"]["weights_hash"] for r in rows} == {model_identity(a)["weights_hash"]}
    with pytest.raises(InputError, match="other weights"):
        generate(str(b), str(items), out, **kw)
    # same weights, another tokenizer file (e.g. a re-saved template): refused as well
    (a / "chat_template.jinja").write_text((a / "chat_template.jinja").read_text() + " ")
    with pytest.raises(InputError, match="other tokenizer files"):
        generate(str(a), str(items), out, **kw)
    assert len(out.read_text().splitlines()) == 3


def _hub_repo(cache: Path, repo: str, folder: Path, commit: str) -> None:
    """Lay ``folder`` out as the HF hub cache does: blobs named by SHA-256, snapshot links."""
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "blobs").mkdir(parents=True)
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    for f in folder.iterdir():
        sha = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, base / "blobs" / sha)
        os.symlink(os.path.relpath(base / "blobs" / sha, snap), snap / f.name)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit)


def test_hub_ids_with_the_same_short_name_differ_by_weights(twins, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    a, b = twins
    cache = tmp_path / "hub"
    _hub_repo(cache, "A/tiny", a, "1" * 40)
    _hub_repo(cache, "B/tiny", b, "2" * 40)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    ia, ib = model_identity("A/tiny"), model_identity("B/tiny")
    assert ia["weights_hash"] and ia["weights_hash"] != ib["weights_hash"]
    assert ia == model_identity(a)  # the blob names ARE the content hashes: same identity
    assert model_identity("C/tiny") == {"weights_hash": "", "tokenizer_files_hash": ""}


def test_probes_refuse_caches_of_different_models(tmp_path, tiny_model_dir, capsys):
    traces = write_traces(tmp_path / "t.jsonl", n=12)
    small = capture(tiny_model_dir("qwen2"), traces, tmp_path / "student.h5", CFG,
                    progress=False, log=lambda s: None)
    deep = capture(tiny_model_dir("qwen2", num_hidden_layers=3), traces,
                   tmp_path / "teacher.h5", CFG, progress=False, log=lambda s: None)
    args = ["--out", str(tmp_path / "p"), "--target", "log_reasoning_tokens"]
    rc = main(["probe", "ablation", f"own={small}", f"scrambled={deep}", *args])
    err = capsys.readouterr().err
    assert rc == 2 and "hold different models" in err and "Traceback" not in err
    rc = main(["probe", "difficulty", str(small), "--random-cache", str(deep), *args])
    err = capsys.readouterr().err
    assert rc == 2 and "SAME architecture" in err
    assert not (tmp_path / "p").exists()
