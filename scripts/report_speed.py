"""Time ``ebpo-bench report`` on a synthetic 4-arm x 3-seed experiment (target: <= 10 s).

Writes a results tree shaped like a real quickstart sweep (120 steps of metrics with the trainer's
keys, evaluation every 20 steps on 5 levels x 100 problems x 4 samples) into a temporary folder,
then builds its report and prints the wall time of the build (loading + statistics + tables +
figures). A benchmark, not a test: nothing is asserted.

    python scripts/report_speed.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ARMS = {"grpo": 0.0, "ebpo": 0.04, "rloo": 0.01, "dapo": -0.02}  # planted Pass@1 shift per arm
SEEDS = (1, 2, 3)
STEPS, EVAL_EVERY, LEVELS, PROBLEMS, SAMPLES = 120, 20, 5, 100, 4


def metrics_row(rng: np.random.Generator, step: int, arm: str, shift: float) -> dict:
    """One metrics.jsonl row with the trainer's keys; accuracy rises with the step plus the arm's shift."""
    acc = min(0.95, 0.3 + 0.003 * step + shift + rng.normal(0, 0.03))
    row = {
        "step": step,
        "train/reward_mean": acc,
        "train/reward_std": 0.4,
        "train/accuracy": acc,
        "train/response_length": 10 + rng.normal(0, 1),
        "train/truncated_frac": 0.05,
        "groups/all_fail_frac": max(0.0, 0.4 - 0.003 * step),
        "groups/all_success_frac": 0.002 * step,
        "adv/mean": 0.0,
        "adv/std": 0.9,
        "adv/zero_frac": 0.3,
        "train/lr": 1e-4,
        "train/grad_norm": abs(rng.normal(1, 0.2)),
        "train/entropy": 1.5 - 0.005 * step,
        "loss/pg_loss": rng.normal(0, 0.1),
        "loss/kl": 0.001 * step,
        "loss/approx_kl_old": 1e-3,
        "loss/clip_frac_low": 0.01,
        "loss/clip_frac_high": 0.01,
        "loss/total": 0.1,
        "time/rollout": 0.5,
        "time/update": 0.3,
        "time/step": 1.0,
        "throughput/tokens_per_s": 600.0,
    }
    if arm == "ebpo":
        row.update({"ebpo/shrinkage": 0.3 + rng.normal(0, 0.02), "ebpo/mu_glob": acc, "ebpo/sigma2": 0.2})
    return row


def eval_rows(rng: np.random.Generator, step: int, shift: float) -> list[dict]:
    """eval.jsonl rows of one evaluation: every level x problem x sample."""
    rows = []
    for lv in range(1, LEVELS + 1):
        base = np.clip(0.9 - 0.15 * lv + shift * step / STEPS + rng.normal(0, 0.1, PROBLEMS), 0.02, 0.98)
        hits = rng.random((PROBLEMS, SAMPLES)) < base[:, None]
        for p in range(PROBLEMS):
            for s in range(SAMPLES):
                ok = bool(hits[p, s])
                rows.append(
                    {
                        "step": step,
                        "benchmark": f"level{lv}",
                        "problem_id": f"L{lv}-{p}",
                        "sample": s,
                        "response": "\\boxed{7}",
                        "extracted": "7" if ok else "8",
                        "score": float(ok),
                        "score_correct": ok,
                        "length": 6,
                        "timed_out": False,
                    }
                )
    return rows


def write_experiment(root: Path, name: str = "speed") -> Path:
    """A completed 4-arm x 3-seed synthetic experiment under ``root/name``."""
    rng = np.random.default_rng(0)
    for arm, shift in ARMS.items():
        for seed in SEEDS:
            d = root / name / arm / f"seed{seed}"
            d.mkdir(parents=True, exist_ok=True)
            spec = {
                "name": name,
                "description": "Speed benchmark: four arms, three seeds.",
                "paper_table": None,
                "model": {"path": "tiny"},
                "task": {"type": "synthetic", "eval_levels": list(range(1, 6))},
                "data": {"order": "shuffle"},
                "rollout": {"group_size": 4},
                "train": {"steps": STEPS},
                "advantage": {"type": arm},
                "eval": {"n_samples": SAMPLES},
                "seed": seed,
                "arm": arm,
                "run_id": f"{arm}/seed{seed}",
                "axes": {},
            }
            (d / "spec.resolved.yaml").write_text(yaml.safe_dump(spec))
            rec = {
                "status": "completed",
                "spec_hash": f"{arm}{seed}",
                "run_id": f"{arm}/seed{seed}",
                "arm": arm,
                "seed": seed,
                "axes": {},
                "experiment": name,
                "estimator": arm,
                "device": "cpu",
                "provenance": {
                    "git": {"commit": "0" * 40, "dirty": False},
                    "packages": {"torch": "2.13.0"},
                    "python": "3.12",
                },
                "last_step": STEPS,
            }
            (d / "run.json").write_text(json.dumps(rec))
            with open(d / "metrics.jsonl", "w") as f:
                for step in range(1, STEPS + 1):
                    f.write(json.dumps(metrics_row(rng, step, arm, shift)) + "\n")
            with open(d / "eval.jsonl", "w") as f:
                for step in range(EVAL_EVERY, STEPS + 1, EVAL_EVERY):
                    f.writelines(json.dumps(r) + "\n" for r in eval_rows(rng, step, shift))
    return root / name


def main() -> None:
    """Write the synthetic experiment, build its report, print the build time."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", type=Path, help="write results and report here instead of a temporary folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        t0 = time.perf_counter()
        exp = write_experiment(base / "results")
        t1 = time.perf_counter()
        from ebpo_bench.report import build_reports

        paths = build_reports(base / "results", exp, out=base / "reports")
        t2 = time.perf_counter()
    print(f"wrote synthetic results (4 arms x 3 seeds) in {t1 - t0:.1f} s", file=sys.stderr)
    where = paths[0] if args.keep else "a temporary folder, now removed; --keep DIR to look at it"
    print(f"report of 4 arms x 3 seeds built in {t2 - t1:.2f} s (import included) -> {where}")


if __name__ == "__main__":
    main()
