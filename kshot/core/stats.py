"""Uncertainty of a score: the normal-approximation interval of a mean (over episodes, users, seeds) and
percentile-bootstrap intervals (over test rows), seeded so the same call gives the same interval."""

from __future__ import annotations

import math

import numpy as np


def ci95(values) -> float:
    """Half-width of the 95% confidence interval of the mean: 1.96 * std / sqrt(n) (sample std)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float("nan")
    return float(1.96 * values.std(ddof=1) / math.sqrt(len(values)))


def bootstrap_weights(n: int, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """``[n_boot, n]`` multiplicities of the rows in each bootstrap resample (rows drawn with replacement)."""
    rng = np.random.default_rng(seed)
    return np.stack([np.bincount(rng.integers(n, size=n), minlength=n) for _ in range(n_boot)])


def percentile_interval(values) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of bootstrap ``values``: a 95 % interval."""
    lo, hi = np.percentile(np.asarray(values, dtype=np.float64), [2.5, 97.5])
    return float(lo), float(hi)
