"""The real CLI with the vLLM backend: a short training run (rollouts and evaluation on one engine) and
``ebpo-bench eval --backend vllm``, whose greedy answers equal the HF backend's."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.vllm  # skipped without vLLM: see conftest.py
ROOT = Path(__file__).resolve().parents[2]


def cli(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        EBPO_BENCH_CACHE=str(tmp / "cache"),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_run_trains_on_policy_with_vllm_rollouts(tmp_path, engine_options):
    spec = {
        "name": "vllm-cli",
        "seeds": [1],
        "model": {"path": "tiny"},  # random init: the 600-step warm start would dominate the tier's time
        "task": {
            "type": "synthetic",
            "topics": ["add"],
            "train_levels": [1, 2],
            "eval_levels": [1],
            "eval_per_level": 4,
        },
        "reward": {"format": "boxed"},
        "rollout": {"backend": {"type": "vllm", **engine_options}, "group_size": 4, "max_new_tokens": 8},
        # a random model fails every prompt (advantages 0): weight decay moves the weights at every step,
        # so a missed weight sync would show as a PPO ratio away from 1 at the next step
        "train": {"steps": 3, "prompts_per_step": 4, "lr": 5e-2, "weight_decay": 1.0, "checkpoint_every": 2},
        "eval": {"n_samples": 2, "backend": "vllm"},
        "arms": {"grpo": {"advantage": {"type": "grpo"}}},
    }
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    p = cli(tmp_path, "run", str(path), "--quiet", "--results", str(tmp_path / "results"))
    assert p.returncode == 0, p.stderr[-3000:]
    d = tmp_path / "results" / "vllm-cli" / "grpo" / "seed1"
    rec = json.loads((d / "run.json").read_text())
    assert rec["status"] == "completed" and rec["eval"]["level1"]["n"] == 2
    resolved = yaml.safe_load((d / "spec.resolved.yaml").read_text())
    assert (
        resolved["rollout"]["backend"]["type"] == "vllm" and resolved["rollout"]["backend"]["enforce_eager"]
    )
    assert resolved["eval"]["backend"] == "vllm"
    m = rows(d / "metrics.jsonl")
    assert [r["step"] for r in m] == [0, 1, 2]
    for r in m:
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float)), r
        # one mini-batch, one epoch: the ratio is trainer / sampler before any update of the step
        assert abs(r["loss/ratio_max"] - 1) < 1e-3 and abs(r["loss/approx_kl_old"]) < 1e-6, r
    assert len(rows(d / "eval.jsonl")) == 4 * 2


def test_eval_command_with_vllm_equals_hf_when_greedy(tmp_path, shared_data):
    common = [
        "eval",
        "--model",
        "tiny",
        "--benchmarks",
        "math500",
        "--limit",
        "4",
        "--max-new-tokens",
        "16",
        "--quiet",
        "--data-dir",
        str(shared_data),
    ]
    out = {}
    for backend in ("vllm", "hf"):
        p = cli(tmp_path, *common, "--backend", backend, "--out", str(tmp_path / backend))
        assert p.returncode == 0, p.stderr[-3000:]
        summary = json.loads((tmp_path / backend / "eval_summary.json").read_text())
        assert summary["backend"] == backend and summary["benchmarks"]["math500"]["problems"] == 4
        out[backend] = rows(tmp_path / backend / "eval.jsonl")
    # the defaults are greedy (temperature 0, n = 1): both engines decode the very same tokens
    assert [r["response"] for r in out["vllm"]] == [r["response"] for r in out["hf"]]
    assert [r["length"] for r in out["vllm"]] == [r["length"] for r in out["hf"]]
