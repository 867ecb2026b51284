"""Synthetic result folders for report tests: runs written as the runner writes them, no training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml


def write_run(
    exp: Path,
    arm: str,
    seed: int,
    scores: dict[str, list[list[int]]] | None,
    *,
    g: int | None = None,
    steps: int = 10,
    eval_step: int | None = None,
    status: str = "completed",
    paper_table: str | None = None,
    order: str = "shuffle",
    model: str = "tiny",
    run_json: bool = True,
    spec: bool = True,
    metric_steps: int = 6,
    description: str = "Does EBPO beat GRPO?",
    extra_spec: dict | None = None,
    metrics: dict[str, float] | None = None,
) -> Path:
    """One run folder: spec.resolved.yaml, run.json, metrics.jsonl and eval.jsonl.

    ``scores`` maps a benchmark to a (problems x samples) 0/1 matrix written at ``eval_step``
    (default: the last training step); ``g`` adds a rollout.group_size grid axis; ``extra_spec`` is
    merged into the resolved spec; ``metrics`` adds constant metrics to every metrics.jsonl row.
    """
    axes = {"rollout.group_size": g} if g else {}
    rid = f"{arm}/G{g}/seed{seed}" if g else f"{arm}/seed{seed}"
    d = exp / rid
    d.mkdir(parents=True)
    benches = sorted(scores or {})
    levels = [int(b[5:]) for b in benches if b.startswith("level")]
    if spec:
        s = {
            "name": exp.name,
            "description": description,
            "paper_table": paper_table,
            "model": {"path": model},
            "task": {"type": "synthetic" if levels else "hf", "eval_levels": levels},
            "data": {"order": order},
            "rollout": {"group_size": g or 4},
            "train": {"steps": steps},
            "advantage": {"type": arm.split("-")[0]},
            "eval": {"n_samples": len(next(iter(scores.values()))[0]) if scores else 4},
            "seed": seed,
            "arm": arm,
            "run_id": rid,
            "axes": axes,
        }
        s.update(extra_spec or {})
        (d / "spec.resolved.yaml").write_text(yaml.safe_dump(s))
    if run_json:
        rec = {
            "status": status,
            "spec_hash": f"h-{arm}-{g}-{seed}",
            "run_id": rid,
            "arm": arm,
            "seed": seed,
            "axes": axes,
            "experiment": exp.name,
            "estimator": arm.split("-")[0],
            "device": "cpu",
            "error": "loss diverged at step 5" if status == "failed" else None,
            "provenance": {
                "git": {"commit": "abc123def4567", "dirty": False},
                "packages": {"pandas": "2.2"},
                "python": "3.12",
            },
        }
        (d / "run.json").write_text(json.dumps(rec))
    with open(d / "metrics.jsonl", "w") as f:
        for step in range(1, metric_steps + 1):
            row = {
                "step": step,
                "train/reward_mean": 0.1 * step + 0.01 * seed,
                "groups/all_fail_frac": 0.5 / step,
            }
            if arm.startswith("ebpo"):
                row["ebpo/shrinkage"] = 0.3
            row.update(metrics or {})
            f.write(json.dumps(row) + "\n")
    if scores:
        with open(d / "eval.jsonl", "w") as f:
            for b in benches:
                for p, samples in enumerate(scores[b]):
                    for i, ok in enumerate(samples):
                        f.write(
                            json.dumps(
                                {
                                    "step": eval_step or steps,
                                    "benchmark": b,
                                    "problem_id": f"{b}-{p}",
                                    "sample": i,
                                    "extracted": "1",
                                    "score": float(ok),
                                    "score_correct": bool(ok),
                                }
                            )
                            + "\n"
                        )
    return d


def random_scores(
    rng: np.random.Generator, benches: list[str], p: float, problems: int = 6, n: int = 4
) -> dict:
    """Random 0/1 (problems x n) matrices with success rate p, one per benchmark."""
    return {b: (rng.random((problems, n)) < p).astype(int).tolist() for b in benches}
