"""What a long run shows on the console: progress with an ETA, and no library noise.

:func:`stage_progress` wraps the steps of a stage in a tqdm bar with elapsed time and ETA
(one line, on stderr). :func:`quiet_numeric_warnings` keeps numpy's RuntimeWarnings (means of
empty slices, all-NaN quantiles: expected where a probe meets an empty or constant column)
off the console: they are counted, logged at DEBUG with where they came from, and summed up in
one line, so nothing is hidden and nothing floods.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Iterable
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


def stage_progress(items: Iterable[Any], desc: str, total: int | None = None) -> Any:
    """Return ``items`` under a tqdm bar with elapsed time and ETA (TQDM_DISABLE=1: none)."""
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=total, unit="step", dynamic_ncols=True,
                    bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed} elapsed, ETA "
                               "{remaining}]")


@contextmanager
def quiet_numeric_warnings(what: str = "this stage"):
    """Collect RuntimeWarnings raised inside; log each at DEBUG and print one summary line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        yield
    counts: Counter[str] = Counter()
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            msg = str(w.message).split("\n", 1)[0]
            counts[msg] += 1
            log.debug("%s (%s:%s)", msg, w.filename, w.lineno)
        else:  # anything else is re-issued as it was
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if counts:
        top = "; ".join(f"{m} ×{n}" for m, n in counts.most_common(3))
        print(f"  note: {sum(counts.values())} numeric warnings in {what} (empty or constant "
              f"columns, handled as n/a): {top}", flush=True)
