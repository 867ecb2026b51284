"""Switches on the real trainer: DAPO dynamic sampling and overlong shaping, truncated IS.

A random-init tiny model never answers correctly and never stops before the cap, so every group
is uninformative and every response is overlong: the expected numbers are exact.
"""

from __future__ import annotations

import json

import pytest

from ebpo_bench import runner
from ebpo_bench.config.load import build_experiment

pytestmark = pytest.mark.integration


def _exp(train: dict, loss: dict | None = None, model: dict | None = None) -> object:
    return build_experiment(
        {
            "name": "switches",
            "seeds": [3],
            "model": {
                "path": "tiny",
                "tiny": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64},
                **(model or {}),
            },
            "task": {
                "type": "synthetic",
                "topics": ["add"],
                "train_levels": [3],
                "eval_levels": [1],
                "eval_per_level": 2,
            },
            "rollout": {"group_size": 2, "max_new_tokens": 6},
            "train": {"steps": 2, "prompts_per_step": 4, "mini_batches": 1, "checkpoint_every": 2, **train},
            "eval": {"n_samples": 1},
            "loss": loss or {},
            "advantage": {"type": "grpo", "normalize_std": False},
        }
    )


def _metrics(root) -> list[dict]:
    path = root / "switches" / "grpo" / "seed3" / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_dynamic_sampling_retries_then_fills_and_logs(tmp_path, cache_dir):
    exp = _exp({"filter_groups": {"enabled": True, "max_tries": 3}})
    assert runner.run_experiment(exp, exp.runs, quiet=True, results_root=tmp_path) == {
        "grpo/seed3": "completed"
    }
    for row in _metrics(tmp_path):
        assert row["filter/tries"] == 3  # never enough informative groups: every allowed round was drawn
        assert row["filter/short_groups"] == 4  # the batch was filled with uninformative groups
        assert row["adv/zero_frac"] == 1.0


def test_overlong_shaping_penalises_responses_at_the_cap(tmp_path, cache_dir):
    exp = _exp({"overlong": {"enabled": True, "buffer": 2, "penalty": 0.5}})
    runner.run_experiment(exp, exp.runs, quiet=True, results_root=tmp_path)
    for row in _metrics(tmp_path):
        assert row["train/truncated_frac"] == 1.0
        assert row["train/response_length"] == 6.0
        assert row["train/reward_mean"] == pytest.approx(-0.5)  # 0 reward - 0.5 * (6 - 4) / 2


def test_truncated_is_with_the_hf_sampler_logs_unit_weights(tmp_path, cache_dir):
    # The HF sampler is the trainer, so the recomputed old log-probs equal the sampler's and every
    # IS weight is 1 (up to float rounding): the switch runs end to end and logs what it did.
    exp = _exp({"steps": 2, "mini_batches": 2}, loss={"tis": {"enabled": True, "cap": 2.0}})
    runner.run_experiment(exp, exp.runs, quiet=True, results_root=tmp_path)
    for row in _metrics(tmp_path):
        assert row["tis/weight_mean"] == pytest.approx(1.0, abs=1e-4)
        assert row["tis/capped_frac"] == 0.0
        assert row["tis/logp_abs_diff"] < 1e-4


def test_gradient_checkpointing_trains_without_the_shared_prefix_paths(tmp_path, cache_dir):
    # transformers drops the KV cache under gradient checkpointing: the sampler and the update must
    # fall back to one forward per row instead of failing
    # (advantages are all 0 on this task; the entropy bonus gives the checkpointed backward a gradient)
    exp = _exp(
        {"steps": 2, "mini_batches": 2}, loss={"entropy_coef": 0.01}, model={"gradient_checkpointing": True}
    )
    assert runner.run_experiment(exp, exp.runs, quiet=True, results_root=tmp_path) == {
        "grpo/seed3": "completed"
    }
    assert all(row["train/grad_norm"] > 0 for row in _metrics(tmp_path))
