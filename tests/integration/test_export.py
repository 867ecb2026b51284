"""keep_checkpoints keeps the last k; ``ebpo-bench export`` writes a folder transformers loads unchanged,
with the checkpoint's weights; micro-batched training runs end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_keep_checkpoints_then_export_loads_back(tmp_path):
    spec = {
        "name": "exp",
        "seeds": [1],
        "model": {"path": "tiny", "tiny": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}},
        "task": {"type": "synthetic", "topics": ["add"], "train_levels": [1], "eval_levels": [1],
                 "eval_per_level": 2},
        "rollout": {"group_size": 2, "max_new_tokens": 6},
        "train": {"steps": 4, "prompts_per_step": 4, "checkpoint_every": 1, "keep_checkpoints": 2,
                  "max_tokens_per_microbatch": 40},
        "eval": {"n_samples": 1},
        "arms": {"grpo": {"advantage": {"type": "grpo"}}},
    }  # fmt: skip
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    env = dict(os.environ, EBPO_BENCH_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "ebpo_bench", *a],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    done = run("run", "s.yaml", "--quiet", "--results", "res")
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = tmp_path / "res" / "exp" / "grpo" / "seed1"
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("step_*")) == ["step_000003", "step_000004"]
    done = run("export", str(run_dir), "out", "--step", "3")
    assert done.returncode == 0, done.stderr[-2000:]
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    tok = AutoTokenizer.from_pretrained(tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").is_file() and tok("1+2=")["input_ids"]
    saved = torch.load(run_dir / "checkpoints" / "step_000003" / "model.pt", map_location="cpu")
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k]), k
    bad = run("export", str(run_dir), "out2", "--step", "1")
    assert bad.returncode == 2 and "have: step_000003, step_000004" in bad.stderr
