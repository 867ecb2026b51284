"""Evaluation metrics (torch-free, so the report can use them): pass@k, maj@k, avg@n and summaries.

Metrics per benchmark (for the synthetic task, one benchmark per difficulty level):

- ``avg@n``: mean over problems of the fraction of the n samples that are correct (the EBPO
  paper's "average Pass@1");
- ``pass@k`` for k in 1, 2, 4, ... <= n: the unbiased estimator 1 - C(n-c, k) / C(n, k) averaged
  over problems (c = correct samples of the problem);
- ``maj@k``: the most frequent extracted answer among the first k samples is correct (ties go to
  the answer seen first; samples with no answer do not vote);
- ``stderr``: standard error of avg@n across problems.

Rows of eval.jsonl: one per (step, benchmark, problem, sample).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with c correct out of n samples (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def maj_correct(answers: list[str | None], correct: list[bool]) -> bool:
    """Whether the majority answer (first-seen wins ties) is a correct one."""
    votes = Counter(a for a in answers if a is not None)
    if not votes:
        return False
    best = max(votes.values())
    winner = next(a for a in answers if a is not None and votes[a] == best)
    return any(c for a, c in zip(answers, correct) if a == winner)


def ks_for(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks if ks[-1] == n else ks + [n]


def summarize(rows: Iterable[dict]) -> dict[str, dict[str, float]]:
    """Per-benchmark metrics from eval rows of one step (see the module docstring)."""
    by: dict[str, dict[str, list[dict]]] = {}
    for r in rows:
        by.setdefault(r["benchmark"], {}).setdefault(r["problem_id"], []).append(r)
    out = {}
    for bench, problems in by.items():
        n = min(len(v) for v in problems.values())
        per_problem, res = [], {f"pass@{k}": 0.0 for k in ks_for(n)}
        res.update({f"maj@{k}": 0.0 for k in ks_for(n)})
        for samples in problems.values():
            samples = sorted(samples, key=lambda r: r["sample"])[:n]
            cor = [bool(s["score_correct"]) for s in samples]
            per_problem.append(sum(cor) / n)
            for k in ks_for(n):
                res[f"pass@{k}"] += pass_at_k(n, sum(cor), k)
                res[f"maj@{k}"] += float(maj_correct([s["extracted"] for s in samples[:k]], cor[:k]))
        m = len(per_problem)
        res = {k: v / m for k, v in res.items()}
        mean = sum(per_problem) / m
        var = sum((x - mean) ** 2 for x in per_problem) / (m - 1) if m > 1 else 0.0
        res.update({f"avg@{n}": mean, "stderr": math.sqrt(var / m), "problems": m, "n": n})
        out[bench] = res
    return out
