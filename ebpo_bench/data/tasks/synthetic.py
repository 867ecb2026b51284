"""Synthetic verifiable arithmetic for a tiny model: topics x difficulty levels, generated offline.

Every problem is an expression followed by ``=`` (``"3+5+2="``); the gold answer is its integer
value (``"10"``) and the supervised warm-start target is ``\\boxed{10}`` (the caller appends EOS).
Generation is pure Python (``random.Random``), no torch, no data files.

Topics and levels (k = 1..5; difficulty rises with k in every topic):

- ``add``: k + 1 single digits (0-9) joined by ``+``; ``3+5=`` at k = 1. The chain-sum task of
  the environment.md appendix probe, where RL visibly learned on a 2-core CPU.
- ``sub``: k + 1 single digits joined by k operators from {``+``, ``-``}, at least one ``-`` (so a
  problem is never also an ``add`` problem); answers may be negative (``3-5-2=`` -> ``-4``).
- ``mul``: a product of two integers with (1x1, 2x1, 2x2, 3x2, 3x3) digits at k = 1..5. A 1-digit
  operand is 0-9; a d-digit operand (d >= 2) has no leading zero. Written with ``*``.

Held-out evaluation problems are split off *by problem text*: an expression is held out iff
``int(md5(expr)) % 100 < 20``, independently of any seed. Training samples reject held-out
problems, so the held-out sets are disjoint from training even where a level has only a few
distinct problems. Exact sizes of the small spaces (held-out / all):

    add L1 24/100, add L2 182/1000, add L3 2021/10000
    sub L1 22/100, sub L2 589/3000
    mul L1 14/100, mul L2 185/900, mul L3 1568/8100

Larger spaces are sampled (about 20% held out). With several topics, ``eval_split`` interleaves
them round-robin; a level whose held-out split is small returns fewer than ``n`` problems rather
than reuse one (level 1 has at most 24 + 22 + 14 = 60).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import cache, lru_cache

from ebpo_bench.data.tasks.base import Example
from ebpo_bench.registry import suggest

TOPICS = ("add", "sub", "mul")
LEVELS = (1, 2, 3, 4, 5)
#: percent of every (topic, level) problem space held out for evaluation
HELDOUT_PERCENT = 20
#: problem spaces up to this size are enumerated exactly; larger ones are sampled
ENUMERATE_LIMIT = 20_000
#: (digits of a, digits of b) of ``mul`` at each level
MUL_DIGITS = {1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (3, 2), 5: (3, 3)}


def is_heldout(expr: str) -> bool:
    """True iff the expression (without ``=``) belongs to the fixed held-out split."""
    return int(hashlib.md5(expr.encode()).hexdigest(), 16) % 100 < HELDOUT_PERCENT


def evaluate_expression(expr: str) -> int:
    """The integer value of a generated expression (``+``/``-`` chains or one product)."""
    if "*" in expr:
        return math.prod(int(x) for x in expr.split("*"))
    return sum(int(t) for t in re.findall(r"[+-]?\d+", expr))


def _operand_range(digits: int) -> range:
    return range(10) if digits == 1 else range(10 ** (digits - 1), 10**digits)


def space_size(topic: str, level: int) -> int:
    """Number of distinct problems of a (topic, level)."""
    k = level
    if topic == "add":
        return 10 ** (k + 1)
    if topic == "sub":
        return 10 ** (k + 1) * (2**k - 1)
    da, db = MUL_DIGITS[k]
    return len(_operand_range(da)) * len(_operand_range(db))


def sample_problem(topic: str, level: int, rng: random.Random) -> str:
    """One uniformly random expression of a (topic, level), without the trailing ``=``."""
    if topic == "mul":
        da, db = MUL_DIGITS[level]
        return f"{rng.choice(_operand_range(da))}*{rng.choice(_operand_range(db))}"
    digits = [str(rng.randrange(10)) for _ in range(level + 1)]
    if topic == "add":
        return "+".join(digits)
    while True:  # rejection keeps the all-"+" operator strings out, uniformly over the rest
        ops = [rng.choice("+-") for _ in range(level)]
        if "-" in ops:
            break
    return digits[0] + "".join(o + d for o, d in zip(ops, digits[1:]))


def enumerate_problems(topic: str, level: int) -> Iterator[str]:
    """Every expression of a (topic, level), in a fixed order (meant for small spaces)."""
    if topic == "mul":
        da, db = MUL_DIGITS[level]
        for a, b in itertools.product(_operand_range(da), _operand_range(db)):
            yield f"{a}*{b}"
        return
    for digits in itertools.product("0123456789", repeat=level + 1):
        if topic == "add":
            yield "+".join(digits)
            continue
        for ops in itertools.product("+-", repeat=level):
            if "-" in ops:
                yield digits[0] + "".join(o + d for o, d in zip(ops, digits[1:]))


@cache
def _all_heldout(topic: str, level: int) -> tuple[str, ...]:
    """The whole held-out split of a small space, in a fixed pseudo-random order (by md5)."""
    keep = [e for e in enumerate_problems(topic, level) if is_heldout(e)]
    return tuple(sorted(keep, key=lambda e: hashlib.md5(f"order/{e}".encode()).hexdigest()))


@lru_cache(maxsize=256)
def heldout_problems(topic: str, level: int, n: int) -> tuple[str, ...]:
    """The first ``n`` held-out expressions of a (topic, level) (fewer if the split is smaller).

    The sequence is fixed (it depends on no seed) and prefix-stable: asking for more problems
    extends the list without changing its beginning.
    """
    if space_size(topic, level) <= ENUMERATE_LIMIT:
        return _all_heldout(topic, level)[:n]
    cap = space_size(topic, level) * HELDOUT_PERCENT // 200
    if n > cap:
        raise ValueError(
            f"{topic} level {level}: {n} held-out problems requested; at most {cap} can be sampled "
            "efficiently (half the held-out split)"
        )
    rng = random.Random(f"ebpo-bench/heldout/{topic}/{level}")  # str seeds hash stably across runs
    out: dict[str, None] = {}
    while len(out) < n:
        e = sample_problem(topic, level, rng)
        if is_heldout(e):
            out.setdefault(e)
    return tuple(out)


def make_example(topic: str, level: int, expr: str) -> Example:
    """The ``Example`` of an expression: prompt ``expr + "="``, answer its value."""
    return Example(
        id=f"{topic}/L{level}/{expr}",
        prompt=f"{expr}=",
        answer=str(evaluate_expression(expr)),
        level=level,
        topic=topic,
    )


def _check(kind: str, values: Iterable, allowed: Sequence) -> tuple:
    values = tuple(dict.fromkeys(values))  # a repeated topic would repeat held-out problems
    if not values:
        raise ValueError(f"synthetic task: no {kind} given; choose from {list(allowed)}")
    for v in values:
        if v not in allowed:
            raise ValueError(
                f"synthetic task: unknown {kind} {v!r}.{suggest(str(v), map(str, allowed))} "
                f"Available: {list(allowed)}"
            )
    return values


class SyntheticTask:
    """Offline arithmetic problems with topics and difficulty levels (see the module docstring).

    Args:
        topics: any of ``"add"``, ``"sub"``, ``"mul"``.
        levels: default training levels (each in 1..5).
        seed: seed of the training stream; the held-out splits do not depend on it.
    """

    def __init__(self, topics: Sequence[str] = TOPICS, levels: Sequence[int] = LEVELS, seed: int = 0) -> None:
        self.topics = _check("topic", topics, TOPICS)
        self.levels = _check("level", levels, LEVELS)
        self.seed = seed

    def __repr__(self) -> str:
        return f"SyntheticTask(topics={self.topics}, levels={self.levels}, seed={self.seed})"

    def _sample(self, n: int, levels: Sequence[int] | None, rng: random.Random) -> list[Example]:
        lv = self.levels if levels is None else _check("level", levels, LEVELS)
        out = []
        for _ in range(n):
            topic, level = rng.choice(self.topics), rng.choice(lv)
            expr = sample_problem(topic, level, rng)
            while is_heldout(expr):  # the held-out split never reaches training
                expr = sample_problem(topic, level, rng)
            out.append(make_example(topic, level, expr))
        return out

    def train_examples(
        self, n: int, *, levels: Sequence[int] | None = None, rng_seed: int | None = None
    ) -> list[Example]:
        """``n`` training problems: (topic, level) uniform, then a uniform non-held-out problem.

        Args:
            n: number of examples (duplicates are possible on small levels).
            levels: levels to draw from (default: the task's ``levels``).
            rng_seed: seed of this draw, combined with the task seed; ``None`` uses the task seed
                alone. Same (task seed, rng_seed) -> same examples.
        """
        return self._sample(n, levels, random.Random(f"train/{self.seed}/{rng_seed}"))

    def batch(self, step: int, n: int, seed: int, levels: Sequence[int] | None = None) -> list[Example]:
        """The training prompts of one step, a pure function of (task seed, ``seed``, ``step``).

        A resumed run asks for the same steps and sees exactly the same prompts.
        """
        return self._sample(n, levels, random.Random(f"batch/{self.seed}/{seed}/{step}"))

    def eval_split(self, level: int, n: int, topic: str | None = None) -> list[Example]:
        """A fixed held-out set of a level, disjoint from every training draw by problem text.

        Args:
            level: difficulty level (1..5).
            n: problems wanted; fewer come back when the level's held-out split is smaller.
            topic: one topic, or ``None`` for all the task's topics interleaved round-robin.

        Returns:
            Up to ``n`` distinct examples, identical for every task seed; prefix-stable in ``n``.
        """
        (level,) = _check("level", [level], LEVELS)
        topics = self.topics if topic is None else _check("topic", [topic], TOPICS)
        # n from every topic (not n / topics): rows below n then never change with n, and a
        # topic that runs out is made up for by the others
        lists = [heldout_problems(t, level, n) for t in topics]
        mixed = [
            (t, e) for row in itertools.zip_longest(*lists) for t, e in zip(topics, row) if e is not None
        ]
        return [make_example(t, level, e) for t, e in mixed[:n]]

    @staticmethod
    def sft_target(example: Example) -> str:
        """The supervised completion of an example, without EOS: ``\\boxed{<answer>}``."""
        return f"\\boxed{{{example.answer}}}"
