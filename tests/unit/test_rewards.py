"""Tests for ebpo_bench.data.answers and ebpo_bench.data.rewards: extraction, gold handling, math-verify
equivalences and the worker pool.

One MathVerifier (2 workers, timeout_s=2) is shared by the module because spawning workers costs seconds.
The elapsed-time checks around pathological answers are hang guards (timeout_s + 20 s), not performance tests.
"""

from __future__ import annotations

import gc
import json
import time

import pytest

from ebpo_bench.data.answers import canonical_gold, extract_answer, fast_path, score_one, verify_answer
from ebpo_bench.data.rewards import MathVerifier, RewardResult

TIMEOUT_S = 2.0
HANG_GUARD_S = TIMEOUT_S + 20.0
SLOW = "The answer is \\boxed{9^{9^{9^{9}}}}"  # sympy tries to evaluate a power tower: seconds to forever
NESTED = "\\boxed{" + "{" * 10000 + "1" + "}" * 10000 + "}"


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(fmt="auto", scale="zero_one", timeout_s=TIMEOUT_S, workers=2) as v:
        yield v


# ------------------------------------------------------------------ extraction


@pytest.mark.parametrize(
    "text, fmt, expected",
    [
        ("so the answer is \\boxed{42}.", "boxed", "42"),
        ("\\boxed{\\frac{a}{b^{2}}}", "boxed", "\\frac{a}{b^{2}}"),
        ("first \\boxed{1}, then \\boxed{2}", "boxed", "2"),
        ("\\boxed{\\{1,2\\}}", "boxed", "\\{1,2\\}"),  # escaped braces are not groups
        ("\\fbox{7}", "boxed", "7"),
        ("\\boxed{unclosed", "boxed", None),
        ("Answer: 5", "boxed", None),
        ("work...\nAnswer: $\\frac{1}{2}$.", "answer_line", "\\frac{1}{2}"),
        ("answer: 3\nmore work\nFINAL ANSWER: 42.", "answer_line", "42"),  # case-insensitive, last wins
        ("Answer: 3\nAnswer:   ", "answer_line", "3"),  # an empty last line is skipped
        ("**Answer:** 12", "answer_line", "12"),
        ("Answer: 3 and \\boxed{4}", "auto", "4"),  # auto prefers the box
        ("no box\nAnswer: 17", "auto", "17"),
        ("no answer at all", "auto", None),
        ("", "auto", None),
    ],
)
def test_extract_answer(text, fmt, expected):
    assert extract_answer(text, fmt) == expected


def test_extract_only_reads_the_tail_and_rejects_long_answers():
    assert extract_answer("\\boxed{7}" + "x" * 5000) is None  # outside the last 4096 characters
    assert extract_answer("\\boxed{7}" + "x" * 5000, max_chars=0) == "7"
    assert extract_answer("\\boxed{" + "1" * 1000 + "}") == "1" * 1000
    assert extract_answer("\\boxed{" + "1" * 1001 + "}") is None


def test_extract_pathological_inputs():
    assert extract_answer("x" * 5_000_000 + "\\boxed{7}") == "7"
    # 10,000 nested braces: no RecursionError, and the 20,001-character answer is too long
    assert extract_answer(NESTED) is None
    assert extract_answer(NESTED, max_chars=0) is None
    deep = "{" * 300 + "1" + "}" * 300
    assert extract_answer("\\boxed{" + deep + "}", max_chars=0) == deep


def test_unknown_format_raises():
    with pytest.raises(ValueError, match="answer format"):
        extract_answer("\\boxed{1}", "latex")


# ------------------------------------------------------------------ gold handling and equivalence


@pytest.mark.parametrize(
    "gold, expected",
    [
        ("25", "25"),
        ("$x^2$", "x^2"),
        ("\\boxed{5}", "5"),
        ("['2']", "2"),
        ("['$\\frac{1}{2 n+2}$']", "\\frac{1}{2 n+2}"),  # hand-written: "\\f" is not a form feed
        (str(["$\\frac{1}{2 n+2}$"]), "\\frac{1}{2 n+2}"),  # repr() form, backslashes doubled
        ("[\"it's\", 'b']", "it's, b"),
        ("['1', '3']", "1, 3"),
        (["$1$", "$2$"], "1, 2"),
        ("[0,1]", "[0,1]"),  # a list of numbers is an interval, not an answer list
    ],
)
def test_canonical_gold(gold, expected):
    assert canonical_gold(gold) == expected


@pytest.mark.parametrize(
    "pred, gold, expected",
    [
        ("25", "025", True),
        ("-0", "0", True),
        ("-5", "5", False),
        ("+7", "7", True),
        ("$x$", "x", True),
        ("0.5", "\\frac{1}{2}", None),  # needs math-verify
    ],
)
def test_fast_path(pred, gold, expected):
    assert fast_path(pred, gold) is expected


@pytest.mark.parametrize(
    "completion, gold, expected",
    [
        ("\\boxed{0.5}", "\\frac{1}{2}", True),
        ("\\boxed{\\frac{2}{4}}", "0.5", True),
        ("\\boxed{25}", "025", True),
        ("Answer: $(x+1)^2$", "x^2+2x+1", True),
        ("\\boxed{84, 69}", "['$69$,$84$']", True),
        ("\\boxed{69}", "['$69$,$84$']", False),  # every element of a multi-answer gold is needed
        ("\\boxed{0.6}", "\\frac{1}{2}", False),
        ("no answer", "1", False),
    ],
)
def test_score_one_equivalences(completion, gold, expected):
    assert score_one(completion, gold) is expected


def _sample(path, key, n=20):
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r[key] for r in rows[:: max(1, len(rows) // n)][:n]]


@pytest.mark.parametrize(
    "folder, key", [("aime24", "answer"), ("math500", "answer"), ("olympiadbench", "final_answer")]
)
def test_real_golds_verify_against_themselves(shared_data, folder, key):
    golds = _sample(shared_data / folder / "test.jsonl", key)
    assert len(golds) == 20
    for gold in golds:
        canonical = canonical_gold(str(gold) if isinstance(gold, list) else gold)
        if isinstance(gold, list):  # the JSONL list and its string form "['2']" agree
            assert canonical == canonical_gold(gold)
        assert verify_answer(canonical, canonical), gold  # math-verify itself, not the fast path


def test_aime_golds_distinguish_each_other(shared_data):
    golds = _sample(shared_data / "aime24" / "test.jsonl", "answer")
    assert score_one("\\boxed{25}", "025")  # zero-padded gold equals the plain integer
    for a, b in zip(golds, golds[1:]):
        assert verify_answer(canonical_gold(a), canonical_gold(b)) is (int(a) == int(b))


# ------------------------------------------------------------------ MathVerifier


def test_verifier_batch(verifier):
    before = verifier.stats
    completions = [
        "\\boxed{0.5}",  # math-verify
        "Answer: 25",  # fast path (gold 025)
        "\\boxed{3}",  # fast path, wrong
        "I give up",  # no answer
        "\\boxed{" + "9" * 1001 + "}",  # too long
        "\\boxed{1}" + "x" * 5_000_000,  # the box is outside the tail
        NESTED,
        "\\boxed{0.5}",  # duplicate (gold, answer) pair
    ]
    golds = ["\\frac{1}{2}", "025", "4", "1", "1", "1", "1", "$\\frac{1}{2}$"]
    results = verifier.score(completions, golds)
    assert [r.score for r in results] == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert [r.reason for r in results] == [
        "correct",
        "correct",
        "wrong",
        "no_answer",
        "too_long",
        "no_answer",
        "no_answer",
        "correct",
    ]
    assert results[0] == RewardResult(1.0, True, "0.5", False, "correct")
    after = verifier.stats
    assert after["checks"] - before["checks"] == 8
    assert after["fast_path"] - before["fast_path"] == 2
    assert after["no_answer"] - before["no_answer"] == 4
    assert after["timeouts"] == before["timeouts"]


def test_verifier_slow_answer_times_out_and_pool_recovers(verifier):
    before = verifier.stats["timeouts"]
    start = time.monotonic()
    results = verifier.score([SLOW, "\\boxed{x^2+2x+1}", "\\boxed{0.25}"], ["1", "(x+1)^2", "\\frac{1}{4}"])
    assert time.monotonic() - start < HANG_GUARD_S
    assert results[0] == RewardResult(0.0, False, "9^{9^{9^{9}}}", True, "timeout")
    assert [r.correct for r in results[1:]] == [True, True]
    assert verifier.stats["timeouts"] == before + 1
    assert verifier.score(["\\boxed{\\frac{3}{6}}"], ["0.5"])[0].score == 1.0


def test_verifier_kills_a_stuck_worker(verifier):
    # white-box: without the in-worker timer only the hard deadline can stop the check, as for C code
    verifier._soft_fraction = None
    try:
        pids = {w.proc.pid for w in verifier._workers}
        start = time.monotonic()
        results = verifier.score(
            [SLOW, "\\boxed{0.5}", "\\boxed{\\sqrt{4}}", "\\boxed{3}"], ["1", "\\frac{1}{2}", "2", "\\pi"]
        )
        assert time.monotonic() - start < HANG_GUARD_S
        assert [(r.score, r.timed_out) for r in results] == [
            (0.0, True),
            (1.0, False),
            (1.0, False),
            (0.0, False),
        ]
        assert len({w.proc.pid for w in verifier._workers} - pids) == 1  # one worker killed and replaced
    finally:
        verifier._soft_fraction = 0.8
    assert verifier.score(["\\boxed{1/2}", "\\boxed{2/4}"], ["0.5", "\\frac{1}{2}"])[1].correct


def test_plus_minus_one_scale_without_workers():
    v = MathVerifier(scale="plus_minus_one", timeout_s=TIMEOUT_S)
    results = v.score(["\\boxed{25}", "\\boxed{24}", "nothing"], ["025", "025", "025"])
    assert [r.score for r in results] == [1.0, -1.0, -1.0]
    assert v._workers == []  # all decided on the fast path: no worker was started
    v.close()


def test_close_and_garbage_collection_stop_workers():
    with MathVerifier(timeout_s=TIMEOUT_S) as v:
        assert v.score(["\\boxed{0.5}"], ["\\frac{1}{2}"])[0].correct
        procs = [w.proc for w in v._workers]
        assert len(procs) == 1 and procs[0].is_alive()
    assert not procs[0].is_alive() and v._workers == []
    # used again after close(): workers restart lazily; dropping the last reference stops them
    assert v.score(["\\boxed{1/3}"], ["\\frac{2}{6}"])[0].correct
    procs = [w.proc for w in v._workers]
    del v
    gc.collect()
    assert not procs[0].is_alive()


def test_verifier_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scale"):
        MathVerifier(scale="binary")
    with pytest.raises(ValueError, match="gold answers"):
        MathVerifier().score(["\\boxed{1}"], [])
