"""The difficulty pre-pass: each training prompt's pass rate under the base model, by sampling.

Needs a model and the rollout layer, so it lives in the evaluation layer; the data layer only reads
the resulting file (``data.orderings.prepass_file`` / ``read_pass_rates``) to sort prompts. The file is
JSONL, one row per prompt ``{id, n, correct, pass_rate, level, topic}``, appended after every chunk so a
killed pre-pass resumes where it stopped; its key covers everything that changes a pass rate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ebpo_bench.data.orderings import prepass_file, read_pass_rates, write_summary
from ebpo_bench.data.stream import task_pool
from ebpo_bench.data.tasks import Example


def _drop_partial_line(path: Path) -> None:
    """Cut a half-written last row (a kill mid-append) so the next append starts on a fresh line."""
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            path.write_bytes(data[: data.rfind(b"\n") + 1])


def run_prepass(
    examples: Sequence[Example],
    model: Any,
    tok: Any,
    cache: Path,
    *,
    n_samples: int,
    temperature: float,
    max_new_tokens: int,
    fmt: str,
    scale: str,
    chunk: int = 64,
    seed: int = 0,
    chat_template: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, float]:
    """Estimate each example's pass rate with ``model`` over ``n_samples`` samples; cached, resumable.

    Args:
        examples: the prompt pool (ids must be unique).
        model, tok: the base policy and its tokenizer (sampling via the 'hf' rollout backend).
        cache: JSONL file; one row per prompt ``{id, n, correct, pass_rate, level, topic}``,
            appended after every chunk, so a killed pre-pass resumes where it stopped.
        n_samples, temperature, max_new_tokens: sampling of the pre-pass.
        fmt, scale: answer format and reward scale of the verifier (correct = ``RewardResult.correct``).
        chunk: prompts per generation call and per append.
        seed: sampling seed; chunk c uses ``seed + c`` so a resumed pre-pass draws the same samples.

    Returns:
        id -> pass rate in [0, 1] for every example.
    """
    from ebpo_bench.data.rewards import MathVerifier
    from ebpo_bench.rollout import SamplingParams, encode_prompts, make_backend

    cache = Path(cache)
    cache.parent.mkdir(parents=True, exist_ok=True)
    _drop_partial_line(cache)
    done = read_pass_rates(cache)
    todo = [(i, e) for i, e in enumerate(examples) if e.id not in done]
    if todo:
        log(f"difficulty pre-pass: {len(todo)} of {len(examples)} prompts x {n_samples} samples -> {cache}")
    backend = make_backend("hf", model, tok)
    params = SamplingParams(
        n=n_samples, temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, logprobs=False
    )
    model.eval()
    with MathVerifier(fmt=fmt, scale=scale) as ver:
        for c in range(0, len(todo), chunk):
            part = [e for _, e in todo[c : c + chunk]]
            ids = encode_prompts(tok, [e.prompt for e in part], chat_template)
            out = backend.generate(ids, params, seed=seed + todo[c][0])
            golds = [e.answer for e in part for _ in range(n_samples)]
            correct = np.array([r.correct for r in ver.score(out.texts, golds)], dtype=float)
            correct = correct.reshape(len(part), n_samples).sum(1)  # rows are prompt-major (P, n)
            rows = [
                {
                    "id": e.id,
                    "n": n_samples,
                    "correct": int(k),
                    "pass_rate": k / n_samples,
                    "level": e.level,
                    "topic": e.topic,
                }
                for e, k in zip(part, correct)
            ]
            with cache.open("a") as f:  # one write per chunk: a kill loses at most this chunk
                f.write("".join(json.dumps(r) + "\n" for r in rows))
                f.flush()
    return read_pass_rates(cache)


# ---------------------------------------------------------------- orderings
def prepare_orderings(runs: Sequence[Any], root: Path, log: Callable[[str], None] = print) -> list[Path]:
    """Compute (or reuse) the difficulty pre-pass of every run that needs one (the trainer reads it from
    ``orderings.prepass_file``).

    One pre-pass per distinct key (model, task, pre-pass settings, grading), stored under
    ``<root>/<experiment>/_prepass/<key>.jsonl`` with ``.summary.json`` / ``.summary.md`` beside
    it. Runs with other orders, or ``estimator: level``, need nothing.

    Returns:
        The summary markdown files written.
    """
    written: list[Path] = []
    for run in runs:
        d = run.data
        if d.order != "difficulty" or d.difficulty.estimator != "prepass":
            continue
        max_new = d.difficulty.max_new_tokens or run.rollout.max_new_tokens
        cache = prepass_file(Path(root) / run.name, run)
        summary = Path(f"{cache.with_suffix('')}.summary.md")
        if summary in written:
            continue
        pool = task_pool(run.task, run.data)
        rates = read_pass_rates(cache)
        if any(e.id not in rates for e in pool):
            import torch

            from ebpo_bench.models.loading import load_policy

            model, tok = load_policy(run.model, run.task, log=log)
            model = model.cuda() if torch.cuda.is_available() else model
            rates = run_prepass(
                pool,
                model,
                tok,
                cache,
                n_samples=d.difficulty.n_samples,
                temperature=d.difficulty.temperature,
                max_new_tokens=max_new,
                fmt=run.reward.format,
                scale=run.reward.scale,
                chunk=d.difficulty.chunk,
                seed=d.difficulty.seed,
                chat_template=run.model.chat_template,
                log=log,
            )
        written.append(write_summary(cache, [rates[e.id] for e in pool], d.difficulty.strata))
    return written
