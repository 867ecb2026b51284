"""Held-out evaluation: n samples per problem, graded by the training reward's math-verify path.

Metrics per benchmark (for the synthetic task, one benchmark per difficulty level):

- ``avg@n``: mean over problems of the fraction of the n samples that are correct (the EBPO
  paper's "average Pass@1");
- ``pass@k`` for k in 1, 2, 4, ... <= n: the unbiased estimator 1 - C(n-c, k) / C(n, k) averaged
  over problems (c = correct samples of the problem);
- ``maj@k``: the most frequent extracted answer among the first k samples is correct (ties go to
  the answer seen first; samples with no answer do not vote);
- ``stderr``: standard error of avg@n across problems.

Rows of eval.jsonl: one per (step, benchmark, problem, sample), each naming the ``grader`` that scored it
(``math_verify`` or ``paper_exact``, see ``paper_exact.py``).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable
from typing import Any


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


def evaluate(
    model: Any,
    tok: Any,
    benchmarks: dict[str, list[Any]],
    *,
    verifier: Any,
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    chat_template: bool,
    keep_text: bool,
    step: int,
    backend: str = "hf",
    progress=None,
) -> list[dict]:
    """Sample and grade every problem of every benchmark; return eval rows."""
    import torch

    from ebpo_bench.rollout import SamplingParams, encode_prompts, make_backend  # torch: only when sampling

    engine = make_backend(backend, model, tok)
    params = SamplingParams(n, temperature, top_p, max_new_tokens, logprobs=False)
    rows: list[dict] = []
    with torch.random.fork_rng():  # evaluation sampling never disturbs the training RNG stream
        torch.manual_seed(seed)
        for name, problems in benchmarks.items():
            for start in range(0, len(problems), 64):
                chunk = problems[start : start + 64]
                batch = engine.generate(encode_prompts(tok, [p.prompt for p in chunk], chat_template), params)
                results = verifier.score(batch.texts, [p.answer for p in chunk for _ in range(n)])
                for i, res in enumerate(results):
                    prob, text = chunk[i // n], batch.texts[i]
                    rows.append(
                        {
                            "step": step,
                            "benchmark": name,
                            "problem_id": prob.id,
                            "sample": i % n,
                            "response": text if keep_text else hashlib.sha256(text.encode()).hexdigest()[:16],
                            "extracted": res.extracted,
                            "score": res.score,
                            "score_correct": bool(res.correct),
                            "length": int(batch.lengths[i]),
                            "timed_out": res.timed_out,
                            "grader": getattr(verifier, "name", "math_verify"),
                        }
                    )
                if progress:
                    progress(len(chunk))
    return rows
