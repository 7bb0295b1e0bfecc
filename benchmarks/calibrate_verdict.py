"""Calibrate the verdict by simulation: call rates per scenario at the bundled and organism sizes.

    PYTHONPATH=src:. python benchmarks/calibrate_verdict.py --n-sets 500 --out calib.csv

``--no-m`` leaves row M (compute_rise) out of the simulated evidence (the rule as applied to
runs without the computation probe).

Scenarios (probes/verdict_calibration.py): a = student identical to an aligned teacher,
b = length copier, c = post-hoc student, d = unaligned teacher. Target: the wrong definite call
(surface mimicry for a, policy transfer for b/c/d) in ≤ 5% of data sets, every scenario.
Prints a markdown table (the one in docs/probes.md) and, for inconclusive calls, which rows
were open.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import pandas as pd

# benchmarks/probes.py would shadow the probes package when run as a script
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

from probes import verdict_calibration as vc  # noqa: E402
from probes.verdict_rule import decide  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-sets", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--n-perm", type=int, default=100, help="P's max-stat permutations")
    ap.add_argument("--n-perm-compute", type=int, default=20,
                    help="M's shuffled-label refits (20: smallest p 1/21 < 0.05)")
    ap.add_argument("--no-m", action="store_true", help="simulate without row M")
    ap.add_argument("--out", default=None, help="CSV of the rates")
    a = ap.parse_args()
    rows, t0 = [], time.time()
    for sizes in (vc.BUNDLED, vc.ORGANISM):
        for sc in vc.SCENARIOS:
            calls, opens, fired = [], collections.Counter(), collections.Counter()
            for k in range(a.n_sets):
                call, why = decide(vc.simulate(sc, sizes, seed=a.seed + k, n_boot=a.n_boot,
                                               n_perm=a.n_perm,
                                               n_perm_compute=a.n_perm_compute,
                                               m_row=not a.no_m))
                calls.append(call)
                if call.startswith("inconclusive"):
                    opens.update(w.removeprefix("open: ").split(":")[0]
                                 for w in why if w.startswith(("open: ", "T:")))
                else:
                    fired.update(w.split(":")[0] for w in why
                                 if call == "surface mimicry" and not w.startswith("("))
            c = pd.Series(calls)
            r = {"sizes": "+".join(map(str, sizes)), "scenario": sc, "n_sets": a.n_sets}
            for name in ("policy transfer", "surface mimicry", "inconclusive (underpowered)",
                         "inconclusive"):
                r[name] = float((c == name).mean())
            r["wrong"] = r[vc.WRONG[sc]]
            r["open rows (inconclusive)"] = ", ".join(f"{k} {v}" for k, v in opens.most_common())
            r["against rows (surface)"] = ", ".join(f"{k} {v}" for k, v in fired.most_common())
            rows.append(r)
            print(r, f"{time.time() - t0:.0f}s", flush=True)
    df = pd.DataFrame(rows)
    if a.out:
        df.to_csv(a.out, index=False)
    fmt = df.copy()
    for c in ("policy transfer", "surface mimicry", "inconclusive (underpowered)",
              "inconclusive", "wrong"):
        fmt[c] = (100 * fmt[c]).map("{:.1f}%".format)
    cols = list(fmt.columns)
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for r in fmt.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in r) + " |")


if __name__ == "__main__":
    main()
