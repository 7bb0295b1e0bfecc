"""End-to-end check on someone else's numbers: de Varda et al. (2025), DeepSeek-R1 vs human RT.

``tests/data/devarda_points.csv`` is a copy of
``shared/data/devarda2025-figure/full_scatter_unique_points.csv``: item-level points read off
the paper's published scatter figure (no item ids; approximate). Its README lists the
within-task Pearson r of log tokens vs log RT from these unique points; ``mimicry align``
must reproduce them through the CLI. Trace and norm files are written with plain csv/json so
the test does not depend on the trace importer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from experiments.cli import main

DATA = Path(__file__).parent / "data" / "devarda_points.csv"
# task: (r, n) from shared/data/README.md
EXPECTED = {"H-ARC": (0.37, 515), "Relational": (0.61, 86), "Syllogisms": (0.57, 32),
            "Logic-ALE": (0.89, 20), "Arith. (v)": (0.60, 84), "Arith. (n)": (0.63, 84)}


def _write_inputs(tmp: Path) -> tuple[Path, Path, list[dict]]:
    rows = list(csv.DictReader(DATA.open(encoding="utf-8")))
    traces, norms = tmp / "r1.jsonl", tmp / "norms.csv"
    count: dict[str, int] = {}
    with traces.open("w", encoding="utf-8") as ft, norms.open("w", newline="",
                                                              encoding="utf-8") as fn:
        w = csv.writer(fn)
        w.writerow(["item_id", "task", "human_rt_ms"])
        for r in rows:
            i = count.get(r["task"], 0)
            count[r["task"]] = i + 1
            iid = f"{r['task']}-{i}"
            ft.write(json.dumps({"item_id": iid, "model": "DeepSeek-R1",
                                 "reasoning_tokens": float(r["reasoning_tokens"])}) + "\n")
            w.writerow([iid, r["task"], float(r["human_rt_s"]) * 1000])
    return traces, norms, rows


def test_devarda_within_task_r_through_cli(tmp_path, capsys):
    traces, norms, rows = _write_inputs(tmp_path)
    out = tmp_path / "out"
    rc = main(["align", str(traces), "--tasks", str(norms), "--out", str(out),
               "--n-boot", "2000", "--n-perm", "2000", "--seed", "3"])
    assert rc == 0, capsys.readouterr().err
    table = {r["task"]: r for r in csv.DictReader((out / "alignment.csv").open())}
    assert set(table) == set(EXPECTED)
    for task, (r, n) in EXPECTED.items():
        row = table[task]
        assert int(row["n"]) == n, task
        assert float(row["r"]) == pytest.approx(r, abs=0.005), task
        assert row["measure"] == "log_rt_ms"
        assert float(row["ci_low"]) < float(row["r"]) < float(row["ci_high"])
        assert 0 < float(row["p_perm"]) < 0.01
    summary = json.loads((out / "summary.json").read_text())
    assert summary["seed"] == 3 and summary["n_boot"] == 2000 and summary["n_perm"] == 2000
    assert summary["exclusions"]["total"] == 0
    # across-task r of task means (mean log tokens vs mean log RT), independent numpy
    tasks = list(EXPECTED)
    lt = [np.mean([np.log(float(r["reasoning_tokens"])) for r in rows if r["task"] == t])
          for t in tasks]
    lr = [np.mean([np.log(float(r["human_rt_s"]) * 1000) for r in rows if r["task"] == t])
          for t in tasks]
    across = summary["per_model"]["DeepSeek-R1"]["across_task"]
    assert across["k"] == 6
    assert across["r"] == pytest.approx(np.corrcoef(lt, lr)[0, 1], abs=1e-9)
    # The figure prints 0.94 (p = 0.003); the unique points give 0.986 — see docs/alignment.md
    assert across["r"] == pytest.approx(0.986, abs=0.001)
    assert across["ci_low"] < across["r"] < across["ci_high"]
    for stem in ("scatter", "forest"):
        assert (out / f"{stem}.png").stat().st_size > 0
        assert (out / f"{stem}.pdf").stat().st_size > 0
