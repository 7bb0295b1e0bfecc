"""Every statistic of mimicry, shared by alignment and the probes (numpy/scipy only, vectorised).

Import from here (``from mimicry.stats import correlate, fisher_mean, mcnemar``). The code
lives in modules named by job:

- :mod:`~mimicry.stats.resampling` — bootstrap/permutation/stratified indices, the CI rule
  (:func:`percentile_ci`) and the p rules (:func:`bootstrap_p`, :func:`perm_p`);
- :mod:`~mimicry.stats.correlation` — Pearson/Spearman with CI and p (:func:`correlate`),
  Fisher z, paired Δr, column-vectorised correlations, partial Spearman;
- :mod:`~mimicry.stats.tests` — McNemar, paired Wilcoxon/t, Wilson interval, BH-FDR;
- :mod:`~mimicry.stats.regression` — OLS, Cook's distance, out-of-sample R², the probes'
  prediction summary (:func:`corr_summary`);
- :mod:`~mimicry.stats.rsa` — RDM, RSA, KL divergence;
- :mod:`~mimicry.stats.pooled` — tests pooled over items across tasks (stratified bootstrap).

A new statistic goes into the module of its job and into ``__all__`` here.

Every resampling function takes ``seed`` and draws from ``numpy.random.default_rng(seed)``;
arrays are ``[n]`` unless stated. One rule per kind of quantity, and why:

- **A bootstrap CI of any statistic over items** (a correlation, a mean difference, a slope,
  a decoder's ρ or R², pooled or per task): :func:`percentile_ci`, the *expanded percentile*
  interval (Hesterberg 2015) for the ``n`` units each resample drew. The plain percentile
  interval is too narrow at the item counts of a task (n = 40, ρ = 0.5: 93% coverage for a
  nominal 95%); the expansion is a t-based small-sample correction that vanishes as n grows,
  so alignment and every probe read their intervals alike. Fewer than 3 units: no interval.
- **A p for an effect measured by that bootstrap** (Δr, a drop, a rise, a paired difference):
  :func:`bootstrap_p`, the smallest α whose interval of the same rule excludes 0, so
  ``p < 0.05`` exactly when the 95% CI excludes 0 — a table never shows a CI and a p that
  disagree. (No permutation null exists for these: swapping two models' costs mixes their
  scales.)
- **A p for an association against chance** (r with human difficulty, a decoder, CKA, RSA):
  :func:`perm_p` against a permutation null, ``(1 + #{at least as extreme}) / (n_perm + 1)`` —
  exact under exchangeability and never 0. Two-sided for a signed association
  (:func:`permutation_p`, :func:`rsa`); one-sided (``"greater"``) for a score whose chance
  level is its floor (a cross-validated decoder's ρ or accuracy against its refit null, CKA);
  :func:`exact_permutation_p` enumerates all n! orders for n <= 8.
- **Exact and analytic tests** where the data are counts or few units: McNemar's exact
  binomial test for paired correct/incorrect, a t interval and test across k tasks (Fisher z:
  the tasks are the sample), the OLS slope's t interval, Wilson's interval for one proportion.

Two intervals outside this module keep their own rule, for stated reasons: the CKA interval of
``probes.similarity`` uses half-samples without replacement (a bootstrap's duplicated items
inflate a kernel statistic), and ``probes.baselines`` gives simultaneous max-t bounds over
layers (the verdict picks the best layer, so per-layer intervals would be too narrow).
"""

from .correlation import (
    CorrDiff,
    CorrResult,
    FisherMean,
    bootstrap_ci,
    bootstrap_corr,
    correlate,
    exact_permutation_p,
    fisher_ci,
    fisher_mean,
    paired_corr_diff,
    partial_spearman,
    pearson,
    pearson_cols,
    permutation_null,
    permutation_p,
    spearman,
    spearman_cols,
)
from .pooled import (
    PooledCorr,
    PooledCorrDiff,
    PooledPairedBinary,
    items_needed,
    pooled_corr,
    pooled_corr_diff,
    pooled_paired_binary,
)
from .regression import OLSResult, boot_r2, cooks_distance, corr_summary, ols, r2
from .resampling import (
    bootstrap_indices,
    bootstrap_p,
    ci_levels,
    percentile_ci,
    perm_p,
    permutation_indices,
    stratified_indices,
)
from .rsa import RSAResult, kl_divergence, rdm, rsa
from .tests import (
    McNemarResult,
    PairedTest,
    bh_fdr,
    exact_mcnemar_p,
    mcnemar,
    paired_test,
    wilson_ci,
)

__all__ = [
    # resampling: indices, the CI rule, the p rules
    "bootstrap_indices", "bootstrap_p", "ci_levels", "perm_p", "percentile_ci",
    "permutation_indices", "stratified_indices",
    # correlation
    "CorrDiff", "CorrResult", "FisherMean", "bootstrap_ci", "bootstrap_corr", "correlate",
    "exact_permutation_p", "fisher_ci", "fisher_mean", "paired_corr_diff", "partial_spearman",
    "pearson", "pearson_cols", "permutation_null", "permutation_p", "spearman", "spearman_cols",
    # tests
    "McNemarResult", "PairedTest", "bh_fdr", "exact_mcnemar_p", "mcnemar", "paired_test",
    "wilson_ci",
    # regression
    "OLSResult", "boot_r2", "cooks_distance", "corr_summary", "ols", "r2",
    # rsa
    "RSAResult", "kl_divergence", "rdm", "rsa",
    # pooled over tasks
    "PooledCorr", "PooledCorrDiff", "PooledPairedBinary", "items_needed", "pooled_corr",
    "pooled_corr_diff", "pooled_paired_binary",
]
