"""Held-out evaluation: n samples per problem, graded by the training reward's math-verify path.

``evaluate`` samples and grades one set of benchmarks; ``evaluate_suites`` is the one driver that the
run (in-training and final evaluation) and the ``eval`` command share: a verifier per answer format, one
progress bar over all problems. Metrics are in ``eval/metrics.py``.
Rows of eval.jsonl: one per (step, benchmark, problem, sample), each naming the ``grader`` that scored it
(``math_verify`` or ``paper_exact``, see ``paper_exact.py``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any


def evaluate_suites(
    model: Any,
    tok: Any,
    suites: list[tuple[dict[str, list[Any]], str]],
    *,
    n: int | dict[str, int],
    label: str,
    quiet: bool,
    scale: str = "zero_one",
    timeout_s: float | None = None,
    order: Callable[[list[Any]], list[Any]] | None = None,
    grader: str = "math_verify",
    **sampling: Any,
) -> list[dict]:
    """Eval rows of every (benchmark name -> problems, answer format) suite.

    Args:
        n: samples per problem, one for all or per benchmark name.
        label: the progress bar's label; ``quiet`` hides it.
        scale, timeout_s: the verifier's reward scale and per-check timeout (None: its default).
        order: optional reordering of each benchmark's problems before sampling (e.g. by prompt length);
            the rows come back in the original order.
        grader: ``math_verify`` (the training reward's verifier) or ``paper_exact`` (the authors' rule).
        sampling: the rest of ``evaluate``'s keyword arguments (temperature, top_p, max_new_tokens, seed,
            chat_template, keep_text, step, backend).
    """
    from ebpo_bench.data.rewards import MathVerifier
    from ebpo_bench.eval.paper_exact import make_grader
    from ebpo_bench.progress import progress_bar

    rows: list[dict] = []
    total = sum(len(v) for benches, _ in suites for v in benches.values())
    verifier_kw = {"scale": scale} | ({} if timeout_s is None else {"timeout_s": timeout_s})
    with progress_bar(label, total, disable=quiet) as bar:
        done = [0]

        def tick(k: int) -> None:
            done[0] += k
            bar(done[0])

        for benches, fmt in suites:
            given = {
                (name, e.id): (b, i) for b, (name, v) in enumerate(benches.items()) for i, e in enumerate(v)
            }
            benches = {name: order(v) if order else v for name, v in benches.items()}
            # evaluate seeds its sampler once per call: one call per suite with a common n, one per
            # benchmark with per-benchmark n (so a benchmark's samples do not depend on its neighbours)
            calls = [({k: v}, n[k]) for k, v in benches.items()] if isinstance(n, dict) else [(benches, n)]
            ver = (
                MathVerifier(fmt=fmt, **verifier_kw) if grader == "math_verify" else make_grader(grader, fmt)
            )
            with ver:
                part_rows = []
                for part, k in calls:
                    part_rows += evaluate(model, tok, part, verifier=ver, n=k, progress=tick, **sampling)
            if order:  # back to the given order: benchmark, then problem, then sample
                part_rows.sort(key=lambda r, g=given: (g[(r["benchmark"], r["problem_id"])], r["sample"]))
            rows += part_rows
    return rows


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
    backend: Any = "hf",
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
