"""Statistical primitives shared by alignment and the probes (numpy/scipy only, vectorised).

Import everything from here (``from mimicry.stats import correlate, fisher_mean, mcnemar``);
the code lives in :mod:`mimicry.stats.core` (correlations, bootstrap, permutation, Fisher z,
paired Δr), :mod:`mimicry.stats.tools` (McNemar, paired tests, OLS, Cook's distance, RDM/RSA,
KL divergence, BH-FDR) and :mod:`mimicry.stats.pooled` (tests pooled over items across tasks:
stratified bootstrap, Fisher-z mean Δr, pooled exact McNemar, the CI-consistent bootstrap p).

Conventions: every resampling function takes ``seed`` and draws from
``numpy.random.default_rng(seed)``; bootstrap CIs resample items and are expanded
percentile intervals by default (``ci="percentile"`` for the plain one); permutation
p-values are two-sided with the +1 correction, ``p = (1 + #{|stat*| >= |stat|}) / (n_perm + 1)``; arrays are ``[n]`` unless stated.
"""

from .core import (
    CorrDiff,
    CorrResult,
    FisherMean,
    bootstrap_ci,
    bootstrap_corr,
    bootstrap_indices,
    ci_levels,
    correlate,
    exact_permutation_p,
    fisher_ci,
    fisher_mean,
    paired_corr_diff,
    pearson,
    percentile_ci,
    permutation_indices,
    permutation_null,
    permutation_p,
    spearman,
)
from .pooled import (
    PooledCorr,
    PooledCorrDiff,
    PooledPairedBinary,
    bootstrap_p,
    items_needed,
    pooled_corr,
    pooled_corr_diff,
    pooled_paired_binary,
    stratified_indices,
)
from .tools import (
    McNemarResult,
    OLSResult,
    PairedTest,
    RSAResult,
    bh_fdr,
    cooks_distance,
    kl_divergence,
    mcnemar,
    ols,
    paired_test,
    rdm,
    rsa,
    wilson_ci,
)

__all__ = [
    "PooledCorr", "PooledCorrDiff", "PooledPairedBinary", "bootstrap_p", "items_needed",
    "pooled_corr", "pooled_corr_diff", "pooled_paired_binary", "stratified_indices",
    "CorrDiff", "CorrResult", "FisherMean", "McNemarResult", "OLSResult", "PairedTest",
    "RSAResult", "bh_fdr", "bootstrap_ci", "bootstrap_corr", "bootstrap_indices", "ci_levels",
    "cooks_distance",
    "correlate", "exact_permutation_p", "fisher_ci", "fisher_mean", "kl_divergence", "mcnemar",
    "ols", "paired_corr_diff", "paired_test", "pearson", "percentile_ci", "permutation_indices",
    "permutation_null",
    "permutation_p", "rdm", "rsa", "spearman", "wilson_ci",
]
