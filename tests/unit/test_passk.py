"""pass@k, maj@k and the per-benchmark summary against closed forms and brute force on hand-made cases."""

from __future__ import annotations

import itertools
import math

import pytest

from ebpo_bench.eval.metrics import ks_for, maj_correct, pass_at_k, summarize


@pytest.mark.parametrize(
    "n,c,k,expected",
    [
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (4, 0, 2, 0.0),
        (4, 4, 1, 1.0),
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (16, 1, 1, 1 / 16),
        (16, 3, 4, 1 - 715 / 1820),  # C(13,4) = 715, C(16,4) = 1820
        (8, 6, 3, 1.0),  # n - c = 2 < k: every 3-subset holds a correct sample
    ],
)
def test_pass_at_k_closed_form(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n,c", [(4, 1), (5, 2), (6, 3), (7, 0), (7, 7), (8, 5)])
def test_pass_at_k_equals_subset_enumeration(n, c):
    """pass@k is the chance that a uniformly random k-subset of the n samples holds a correct one."""
    samples = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(samples, k))
        brute = sum(any(s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_1_is_the_fraction_correct():
    for n in (1, 3, 16):
        for c in range(n + 1):
            assert pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_rejects_k_above_n():
    with pytest.raises(ValueError, match="pass@5"):
        pass_at_k(4, 1, 5)


def test_ks_for_powers_of_two_and_n():
    assert ks_for(16) == [1, 2, 4, 8, 16]
    assert ks_for(6) == [1, 2, 4, 6]
    assert ks_for(1) == [1]


@pytest.mark.parametrize(
    "answers,correct,expected",
    [
        (["1", "2", "1"], [True, False, True], True),  # clear majority, correct
        (["2", "2", "1"], [False, False, True], False),  # majority wrong
        (["2", "1"], [False, True], False),  # tie: the answer seen first wins
        (["1", "2"], [True, False], True),
        ([None, None, "3"], [False, False, True], True),  # samples without an answer do not vote
        ([None, None], [False, False], False),
    ],
)
def test_maj_correct(answers, correct, expected):
    assert maj_correct(answers, correct) is expected


def _rows(problem: str, answers: list[str | None], gold: str) -> list[dict]:
    return [
        {"benchmark": "b", "problem_id": problem, "sample": i, "extracted": a, "score_correct": a == gold}
        for i, a in enumerate(answers)
    ]


def test_summarize_by_hand():
    # problem p: 1 of 4 correct, the first sample wrong; problem q: 4 of 4 correct
    rows = _rows("p", ["7", "3", "7", "7"], "3") + _rows("q", ["5", "5", "5", "5"], "5")
    m = summarize(rows)["b"]
    assert m["n"] == 4 and m["problems"] == 2
    assert m["avg@4"] == pytest.approx((0.25 + 1.0) / 2)
    assert m["pass@1"] == pytest.approx(0.625)
    assert m["pass@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["pass@4"] == pytest.approx(1.0)
    assert m["maj@1"] == pytest.approx(0.5)  # p's first sample is wrong
    assert m["maj@4"] == pytest.approx(0.5)  # p's majority "7" is wrong
    # per-problem scores 0.25 and 1.0: sample variance 0.28125, stderr = sqrt(0.28125 / 2)
    assert m["stderr"] == pytest.approx(math.sqrt(0.28125 / 2))


def test_summarize_sorts_samples_and_separates_benchmarks():
    rows = _rows("p", ["1", "2"], "1") + [dict(r, benchmark="c") for r in _rows("p", ["2", "1"], "1")]
    out = summarize(list(reversed(rows)))
    assert out["b"]["maj@1"] == 1.0 and out["c"]["maj@1"] == 0.0  # sample 0 decides maj@1
    assert out["b"]["avg@2"] == out["c"]["avg@2"] == 0.5
