"""``--launcher local`` (runs as parallel processes) and the stop flag of an in-process run: SIGUSR1
mid-run saves a checkpoint and exits with code 3; the same command resumes with contiguous steps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def spec(name: str, steps: int, seeds: list[int]) -> dict:
    return {
        "name": name,
        "seeds": seeds,
        "model": {"path": "tiny"},
        "task": {"type": "synthetic", "topics": ["add"], "train_levels": [1, 2], "eval_levels": [1]},
        "rollout": {"group_size": 4, "max_new_tokens": 8},
        "train": {"steps": steps, "prompts_per_step": 4, "mini_batches": 1, "checkpoint_every": 1000},
        "eval": {"n_samples": 1},
        "arms": {"grpo": {"advantage": {"type": "grpo"}}},
    }


def setup(tmp: Path, s: dict) -> tuple[Path, dict]:
    s["task"]["eval_per_level"] = 4
    p = tmp / f"{s['name']}.yaml"
    p.write_text(yaml.safe_dump(s))
    env = dict(os.environ, EBPO_BENCH_CACHE=str(tmp / "cache"), PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return p, env


def steps(run_dir: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


def test_local_launcher_runs_two_at_once(tmp_path):
    path, env = setup(tmp_path, spec("loc", 3, [1, 2]))
    args = ["run", str(path), "--launcher", "local", "--max-parallel", "2", "--results", str(tmp_path / "r")]
    p = subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "2 of 2 runs to launch (local)" in p.stdout
    for seed in (1, 2):
        run_dir = tmp_path / "r" / "loc" / "grpo" / f"seed{seed}"
        assert steps(run_dir) == [0, 1, 2]
        assert (run_dir / "logs" / "local.log").exists()
    assert (tmp_path / "reports" / "loc" / "report.md").exists()


def test_usr1_stops_an_in_process_run_at_a_checkpoint_and_it_resumes(tmp_path):
    total = 30
    path, env = setup(tmp_path, spec("stop", total, [1]))
    argv = [sys.executable, "-m", "ebpo_bench", "run", str(path), "--quiet", "--results", str(tmp_path / "r")]
    run_dir = tmp_path / "r" / "stop" / "grpo" / "seed1"
    proc = subprocess.Popen(
        argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "metrics.jsonl").exists() and len(steps(run_dir)) >= 3:
            break
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGUSR1)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err[-3000:]
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "interrupted" and rec["stops"] == 1 and "stopped on request" in err
    stopped_at = len(steps(run_dir))
    assert 3 <= stopped_at < total
    assert (run_dir / "checkpoints" / f"step_{stopped_at:06d}").is_dir()
    p = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0 and f"resuming from step {stopped_at}" in p.stderr, p.stderr[-3000:]
    assert steps(run_dir) == list(range(total))
