"""A non-finite loss stops the run with a clear message, keeps the last good checkpoint and marks it
failed."""

from __future__ import annotations

import json

import pytest
import torch

from ebpo_bench import runner
from ebpo_bench.config.load import build_experiment
from ebpo_bench.train import losses

pytestmark = pytest.mark.integration


def test_nan_loss_marks_run_failed_and_keeps_checkpoint(tmp_path, monkeypatch, cache_dir):
    exp = build_experiment(
        {
            "name": "nan",
            "seeds": [1],
            "model": {"path": "tiny", "tiny": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}},
            "task": {
                "type": "synthetic",
                "topics": ["add"],
                "train_levels": [1],
                "eval_levels": [1],
                "eval_per_level": 2,
            },
            "rollout": {"group_size": 2, "max_new_tokens": 4},
            "train": {"steps": 6, "prompts_per_step": 2, "mini_batches": 1, "checkpoint_every": 2},
            "advantage": {"type": "grpo"},
        }
    )
    real, calls = losses.policy_loss, []

    def poisoned(*a, **k):
        loss, stats = real(*a, **k)
        calls.append(1)
        return (loss * float("nan"), stats) if len(calls) >= 4 else (loss, stats)

    monkeypatch.setattr(losses, "policy_loss", poisoned)
    status = runner.run_experiment(exp, exp.runs, quiet=True, results_root=tmp_path)
    assert status == {"grpo/seed1": "failed"}
    d = tmp_path / "nan" / "grpo" / "seed1"
    rec = json.loads((d / "run.json").read_text())
    assert rec["status"] == "failed" and "non-finite" in rec["error"]
    assert (d / "checkpoints" / "latest").read_text().strip() == "step_000002"
    steps = [json.loads(x)["step"] for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert steps == [0, 1, 2]
    assert torch.load(d / "checkpoints/step_000002/state.pt", weights_only=False)["next_step"] == 2
