"""Statistics of the report: known answers, and detection / false-positive rates over repeated draws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ebpo_bench.report.stats import bootstrap_mean, bootstrap_p, paired_bootstrap, pass_at_k


# ---------------------------------------------------------------- seed bootstrap of a cell
def test_bootstrap_mean_known_values():
    e = bootstrap_mean([20.0, 40.0, 60.0])
    assert e.mean == pytest.approx(40.0) and e.n == 3
    # a percentile bootstrap of a mean never leaves the range of the data
    assert 20.0 <= e.lo < 40.0 < e.hi <= 60.0


def test_bootstrap_mean_single_seed_has_no_interval_and_nans_are_dropped():
    e = bootstrap_mean([55.0, float("nan")])
    assert e.mean == 55.0 and e.n == 1
    assert math.isnan(e.lo) and math.isnan(e.hi)
    assert bootstrap_mean([]).n == 0


def test_bootstrap_mean_constant_values_give_a_point_interval():
    e = bootstrap_mean([30.0, 30.0, 30.0, 30.0])
    assert (e.mean, e.lo, e.hi) == (30.0, 30.0, 30.0)


def test_bootstrap_is_reproducible():
    a, b = bootstrap_mean([1.0, 5.0, 2.0]), bootstrap_mean([1.0, 5.0, 2.0])
    assert (a.lo, a.hi) == (b.lo, b.hi)


# ---------------------------------------------------------------- paired bootstrap
def test_paired_constant_difference():
    e = paired_bootstrap([np.full((3, 50), 5.0)], n_boot=999)
    assert (e.mean, e.lo, e.hi) == pytest.approx((5.0, 5.0, 5.0))
    assert e.per_seed == pytest.approx((5.0, 5.0, 5.0))
    assert e.p == pytest.approx(2 / 1000)  # every replicate is > 0: the smallest p 999 resamples give
    assert e.significant and e.n == 3 and e.n_problems == 50


def test_paired_zero_difference_is_p_one():
    e = paired_bootstrap([np.zeros((3, 20))])
    assert e.mean == 0.0 and e.p == 1.0 and not e.significant


def test_paired_benchmarks_weigh_equally_not_by_problem_count():
    # benchmark A: 3 problems, diff 2; benchmark B: 10 problems, diff 4 -> Avg = 3 (problem-weighted: 3.54)
    e = paired_bootstrap([np.full((2, 3), 2.0), np.full((2, 10), 4.0)])
    assert e.mean == pytest.approx(3.0)
    assert e.lo == pytest.approx(3.0) and e.hi == pytest.approx(3.0)


def test_paired_rejects_mismatched_seed_rows():
    with pytest.raises(ValueError):
        paired_bootstrap([np.zeros((3, 4)), np.zeros((2, 4))])


def test_paired_keeps_seed_level_variance():
    # the difference lives entirely in the training seed: +-2 pp per seed, identical on every problem.
    # Treating the 1000 (seed, problem) units as independent would call the 0.06 pp mean significant.
    seed_effect = np.array([2.0, -2.0, 1.5, -1.5, 0.3])
    d = np.repeat(seed_effect[:, None], 200, axis=1)
    e = paired_bootstrap([d])
    assert e.mean == pytest.approx(0.06)
    assert e.lo < 0 < e.hi and e.p > 0.5
    assert e.lo >= -2.0 and e.hi <= 2.0  # never wider than the seeds themselves


def test_bootstrap_p_two_sided():
    boot = np.array([-1.0] * 10 + [1.0] * 90)
    assert bootstrap_p(boot) == pytest.approx(2 * 11 / 101)
    assert bootstrap_p(-boot) == pytest.approx(2 * 11 / 101)
    assert bootstrap_p(np.ones(99)) == pytest.approx(2 / 100)


# ---------------------------------------------------------------- pass@k
def test_pass_at_k_hand_values():
    n = np.array([4, 4, 4, 5, 2])
    c = np.array([1, 0, 4, 2, 1])
    # 1 - C(3,2)/C(4,2) = 0.5; 0; 1; 1 - C(3,3)/C(5,3) = 0.9; k > n -> nan
    got = pass_at_k(n, c, 2)
    assert got[:3] == pytest.approx([0.5, 0.0, 1.0])
    assert pass_at_k(n[3:4], c[3:4], 3)[0] == pytest.approx(0.9)
    assert math.isnan(pass_at_k(np.array([2]), np.array([1]), 4)[0])
    assert pass_at_k(n, c, 1) == pytest.approx(c / n)


# ---------------------------------------------------------------- rates over repeated draws
def _draw(
    rng: np.random.Generator, effect: float, seeds: int = 5, problems: int = 250, n: int = 4
) -> np.ndarray:
    """Per-problem Pass@1 (pp) differences of two arms sharing problems and seeds, shape (S, P).

    Each training run (arm, seed) gets its own skill offset (sd 1 pp), every problem its difficulty,
    and each problem is scored from n Bernoulli samples, as the evaluator does.
    """
    q = rng.uniform(0.15, 0.85, problems)
    diffs = []
    for _ in range(seeds):
        pa = np.clip(q + effect + rng.normal(0, 0.01), 0, 1)
        pb = np.clip(q + rng.normal(0, 0.01), 0, 1)
        a = rng.binomial(n, pa) / n
        b = rng.binomial(n, pb) / n
        diffs.append(100 * (a - b))
    return np.array(diffs)


def test_planted_5pp_difference_is_detected_at_least_80_percent():
    rng = np.random.default_rng(123)
    hits = [paired_bootstrap([_draw(rng, 0.05)], n_boot=1000, seed=i).significant for i in range(40)]
    assert sum(hits) >= 32, sum(hits)


def test_null_difference_false_positives_at_most_10_percent():
    rng = np.random.default_rng(456)
    hits = [paired_bootstrap([_draw(rng, 0.0)], n_boot=1000, seed=i).significant for i in range(40)]
    assert sum(hits) <= 4, sum(hits)
