"""Statistics of the comparison report: seed bootstrap CIs, paired arm differences, pass@k.

- A table cell is the mean over training seeds of a per-seed Pass@1; its 95% CI is a percentile
  bootstrap over seeds. With 2-3 seeds this interval is narrow (it cannot exceed the range of the
  seeds); the report says so rather than pretending otherwise.
- A paired comparison (arm − reference) uses the units (seed, problem) matched between the two
  arms. Its CI and p-value come from a **two-way paired bootstrap**: seeds and problems are resampled
  independently with replacement and the mean difference is recomputed over the crossed sample.
  Deliberate choice: resampling (seed, problem) pairs as if independent ignores that one training
  seed moves every problem at once and gives too many false positives; the crossed resampling keeps
  the seed-level variance and is conservative (it counts the within-cell noise about twice; Owen,
  "The pigeonhole bootstrap", 2007). The two-sided p-value is read off the same bootstrap
  distribution (share of resamples on the far side of zero, doubled), so p < 0.05 exactly when the
  95% percentile interval excludes zero, up to resampling granularity. Limitation: no resampling
  scheme can learn run-to-run variance from 2-3 seeds. In simulation (tests/unit/test_report_stats.py)
  the false-positive rate stays near or below 5% while the seed effect is small against the
  per-problem noise, but reaches ~15% at S = 3 and ~25% at S = 2 when seeds disagree by several pp;
  the report therefore prints the per-seed differences next to every Avg comparison.
- Every random draw uses a fixed seed (``RNG_SEED``) so a report is reproducible byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RNG_SEED = 0
N_BOOT = 4000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A mean with its bootstrap interval; ``lo``/``hi`` are NaN when there is one unit only."""

    mean: float
    lo: float
    hi: float
    n: int
    p: float = float("nan")
    n_problems: int = 0
    per_seed: tuple[float, ...] = ()

    @property
    def significant(self) -> bool:
        return bool(np.isfinite(self.p) and self.p < 1 - LEVEL)


def bootstrap_mean(
    values: Sequence[float], *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = RNG_SEED
) -> Estimate:
    """Mean of ``values`` (one per seed, shape (S,)) with a percentile bootstrap CI over seeds.

    Args:
        values: per-seed values, shape (S,); NaNs are dropped.
        n_boot: bootstrap resamples.
        level: coverage of the interval.
        seed: RNG seed (fixed so that reports are reproducible).

    Returns:
        ``Estimate`` with n = number of finite values; lo = hi = NaN when n < 2.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    if n == 1:
        return Estimate(float(x[0]), float("nan"), float("nan"), 1)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return Estimate(float(x.mean()), float(lo), float(hi), n)


def _resample_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """Multiplicities of n units in each of n_boot resamples with replacement, shape (n_boot, n)."""
    idx = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def paired_bootstrap(
    diffs: Sequence[np.ndarray], *, n_boot: int = N_BOOT, level: float = LEVEL, seed: int = RNG_SEED
) -> Estimate:
    """Mean paired difference over benchmarks, with a two-way (seed x problem) bootstrap CI and p-value.

    The statistic is the mean over benchmarks k of the mean of ``diffs[k]`` (each benchmark weighs
    the same, as in the paper's Avg column). Seeds are resampled once per replicate and shared by
    every benchmark (a seed is one training run); problems are resampled within each benchmark.

    Args:
        diffs: one array per benchmark, shape (S, P_k): arm minus reference for matched seed s
            (same row order in every array) and problem p.
        n_boot: bootstrap resamples.
        level: coverage of the interval.
        seed: RNG seed.

    Returns:
        ``Estimate`` (mean, lo, hi, n = S seeds, p = two-sided bootstrap p-value,
        n_problems = sum of P_k, per_seed = the statistic of each seed alone, shape (S,)).
    """
    diffs = [np.asarray(d, dtype=float) for d in diffs if np.size(d)]
    if not diffs:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    S = diffs[0].shape[0]
    if any(d.ndim != 2 or d.shape[0] != S for d in diffs):
        raise ValueError("every diff array must be (S, P_k) with the same S")
    point = float(np.mean([d.mean() for d in diffs]))
    rng = np.random.default_rng(seed)
    ws = _resample_weights(rng, n_boot, S) / S  # (B, S)
    boot = np.zeros(n_boot)
    for d in diffs:
        P = d.shape[1]
        wp = _resample_weights(rng, n_boot, P) / P  # (B, P)
        boot += np.einsum("bp,bp->b", ws @ d, wp)
    boot /= len(diffs)
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    per_seed = tuple(float(x) for x in np.mean([d.mean(axis=1) for d in diffs], axis=0))
    return Estimate(
        point, float(lo), float(hi), S, bootstrap_p(boot), int(sum(d.shape[1] for d in diffs)), per_seed
    )


def bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided p-value of 'difference = 0' from bootstrap replicates of a difference, shape (B,).

    Twice the smaller share of replicates at or beyond zero on either side, with the usual +1
    correction so that a finite number of resamples never reports p = 0. A bootstrap that never
    moves (all replicates equal to zero) gives p = 1.
    """
    boot = np.asarray(boot, dtype=float)
    if np.all(boot == 0):
        return 1.0
    b = boot.size
    tail = min(int((boot <= 0).sum()), int((boot >= 0).sum()))
    return float(min(1.0, 2 * (tail + 1) / (b + 1)))


def pass_at_k(n: np.ndarray, c: np.ndarray, k: int) -> np.ndarray:
    """Unbiased pass@k per problem (``ebpo_bench.eval.sampling.pass_at_k``) over arrays, shape (P,).

    Args:
        n: samples per problem, shape (P,); problems with n < k get NaN.
        c: correct samples per problem, shape (P,).
        k: the k of pass@k.
    """
    from ebpo_bench.eval.metrics import (
        pass_at_k as one,
    )  # the evaluator's formula; that module imports no torch

    return np.array([one(int(ni), int(ci), k) if ni >= k else np.nan for ni, ci in zip(n, c)], dtype=float)
