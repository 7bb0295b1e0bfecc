"""Benchmark the probes' heavy paths: the full layer × layer CKA matrix and layer-wise ridge CV.

    .venv/bin/python benchmarks/probes.py            # n=1000, d=3584, 28 layers (the targets)
    .venv/bin/python benchmarks/probes.py --quick    # small shapes, seconds

Random float32 activations (as a cache stores them) are generated per layer with a fixed seed;
generation time is excluded. CKA: float64 Grams (cast from float32 inputs), debiased, the
whole 28 × 28 matrix (every pair, two models). The per-pair loop (Gram + centring of both
layers for every pair, as a naive implementation does) is timed on a few pairs and
extrapolated to all pairs — stated in the output. Ridge: 5-fold outer CV with inner
leave-one-out α selection over 15 α, per layer, with and without 100 label permutations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

# this file is named like the package it measures: keep its folder off the import path
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(
    os.path.abspath(__file__))]


def _layer(seed: int, layer: int, n: int, d: int, shared: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng((seed, layer))
    X = rng.standard_normal((n, d), dtype=np.float32)
    X[:, :16] += shared[:, :16] * (layer / 10)     # some cross-model structure
    return X


class _Clock:
    """Accumulates wall and process-CPU seconds of the timed blocks (data generation excluded)."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._w, self._c = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._w
        self.cpu += time.process_time() - self._c


def bench_cka(n: int, d: int, L: int, n_pairs: int) -> dict:
    from probes import similarity as sim

    shared = np.random.default_rng(0).standard_normal((n, 16)).astype(np.float32)
    fast = _Clock()
    cen = {}
    for m, seed in (("a", 1), ("b", 2)):
        stack = np.empty((L, n, n))
        for i in range(L):
            X = _layer(seed, i, n, d, shared)
            with fast:
                stack[i] = sim.center_gram(sim.gram(X), True)
        cen[m] = stack
    with fast:
        M = sim.cka_matrix(cen["a"], cen["b"])
    # naive: per pair, Gram + centring of both layers, then the inner products
    pairs = [(i, (3 * i + 1) % L) for i in range(n_pairs)]
    naive_clock, naive = _Clock(), []
    for i, j in pairs:
        Xa, Xb = _layer(1, i, n, d, shared), _layer(2, j, n, d, shared)
        with naive_clock:
            naive.append(sim.cka(Xa, Xb))
    err = max(abs(naive[k] - M[i, j]) for k, (i, j) in enumerate(pairs))
    pw, pc = naive_clock.wall / n_pairs, naive_clock.cpu / n_pairs
    return {"cka_matrix_wall_s": fast.wall, "cka_matrix_cpu_s": fast.cpu,
            "naive_per_pair_wall_s": pw, "naive_per_pair_cpu_s": pc,
            "naive_extrapolated_wall_s": pw * L * L, "naive_extrapolated_cpu_s": pc * L * L,
            "speedup_wall": pw * L * L / fast.wall, "speedup_cpu": pc * L * L / fast.cpu,
            "naive_pairs_timed": n_pairs, "max_abs_diff_vs_naive": err}


def bench_ridge(n: int, d: int, L: int, n_perm: int) -> dict:
    from probes import difficulty
    from probes.base import group_kfold
    from probes.ridge import ridge_cv_predict

    rng = np.random.default_rng(3)
    y = rng.standard_normal(n)
    folds = group_kfold(np.arange(n), 5, 0)
    perms = np.array([rng.permutation(n) for _ in range(n_perm)], dtype=int).reshape(n_perm, n)
    w = rng.standard_normal(d).astype(np.float32) / np.sqrt(d)
    cv, full, rhos = _Clock(), _Clock(), []
    for layer in range(L):
        X = _layer(4, layer, n, d, np.zeros((n, 16), np.float32))
        X += np.outer(y, w) * (layer % 7)
        with cv:
            ridge_cv_predict(X, y, folds)            # the CV alone (no CIs, no permutations)
        with full:
            s = difficulty.cv_scores(X, y, folds, perms=perms, n_boot=1000, seed=0)
        rhos.append(s["rho"])
    return {"ridge_cv_only_wall_s": cv.wall, "ridge_cv_only_cpu_s": cv.cpu,
            "ridge_cv_ci_perm_wall_s": full.wall, "ridge_cv_ci_perm_cpu_s": full.cpu,
            "n_perm": n_perm, "n_boot": 1000, "rho_by_layer": [round(r, 3) for r in rhos]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--d", type=int, default=3584)
    ap.add_argument("--layers", type=int, default=28)
    ap.add_argument("--naive-pairs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip", default="", help="comma list: cka,ridge,ridge_perm")
    a = ap.parse_args()
    if a.quick:
        a.n, a.d, a.layers = 200, 512, 6
    skip = set(a.skip.split(","))
    out = {"n": a.n, "d": a.d, "layers": a.layers, "machine": platform.platform(),
           "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
    if "cka" not in skip:
        out.update(bench_cka(a.n, a.d, a.layers, a.naive_pairs))
    if "ridge" not in skip:
        out["ridge_no_perm"] = bench_ridge(a.n, a.d, a.layers, 0)
    if "ridge_perm" not in skip:
        out["ridge_100_perm"] = bench_ridge(a.n, a.d, a.layers, 100)
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
