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

Conventions: every resampling function takes ``seed`` and draws from
``numpy.random.default_rng(seed)``; bootstrap CIs resample items and are expanded
percentile intervals by default (``ci="percentile"`` for the plain one); permutation
p-values are two-sided with the +1 correction, ``p = (1 + #{|stat*| >= |stat|}) / (n_perm + 1)``; arrays are ``[n]`` unless stated.
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
