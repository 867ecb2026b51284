"""The real CLI on the tiny model: end to end, skip/refuse/--force, SIGKILL resume, learning, NaN.

All runs share one warm-start cache per test session, so the supervised warm start is trained
once. Everything runs on CPU with no network.
"""

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


def tiny_spec(name: str = "it", **over) -> dict:
    spec = {
        "name": name,
        "seeds": [1],
        # the quickstart's model and warm start: trained once per test session, shared by every test
        "model": {
            "path": "tiny",
            "warm_start": {"steps": 600, "batch_size": 64, "lr": 1e-3, "levels": [1, 2]},
        },
        "task": {
            "type": "synthetic",
            "topics": ["add"],
            "train_levels": [1, 2, 3],
            "eval_levels": [1, 2, 3],
            "eval_per_level": 12,
        },
        "reward": {"format": "boxed", "timeout_s": 5.0},
        "rollout": {"group_size": 4, "max_new_tokens": 10},
        "train": {"steps": 8, "prompts_per_step": 8, "mini_batches": 2, "lr": 1e-4, "checkpoint_every": 2},
        "eval": {"n_samples": 2},
        "arms": {
            "ebpo": {"advantage": {"type": "ebpo", "prior_scope": "cumulative"}},
            "grpo": {"advantage": {"type": "grpo"}},
        },
    }
    for k, v in over.items():
        spec[k] = v
    return spec


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict:
    e = dict(
        os.environ,
        EBPO_BENCH_CACHE=str(tmp_path_factory.mktemp("cache")),
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        PYTHONUNBUFFERED="1",
    )
    return e


def write(tmp: Path, spec: dict) -> Path:
    p = tmp / f"{spec['name']}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def cli(env: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def comparable(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith(("time/", "throughput/"))}


def test_run_end_to_end_then_skip_refuse_force(tmp_path, env):
    spec = write(tmp_path, tiny_spec())
    res = tmp_path / "results"
    p = cli(env, "run", str(spec), "--quiet", "--results", str(res))
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Final held-out accuracy" in p.stdout and "| ebpo |" in p.stdout and "| grpo |" in p.stdout
    for arm in ("ebpo", "grpo"):
        d = res / "it" / arm / "seed1"
        rec = json.loads((d / "run.json").read_text())
        assert rec["status"] == "completed" and rec["spec_hash"] and rec["provenance"]["packages"]["torch"]
        m = rows(d / "metrics.jsonl")
        assert [r["step"] for r in m] == list(range(8))
        for key in (
            "train/reward_mean",
            "train/accuracy",
            "groups/all_fail_frac",
            "adv/zero_frac",
            "train/grad_norm",
            "loss/clip_frac_low",
            "loss/approx_kl_old",
            "train/lr",
            "time/rollout",
            "throughput/tokens_per_s",
        ):
            assert key in m[0], key
        ev = rows(d / "eval.jsonl")
        assert {r["benchmark"] for r in ev} == {"level1", "level2", "level3"}
        assert len(ev) == 3 * 12 * 2
        assert (d / "spec.resolved.yaml").exists() and (d / "samples.jsonl").exists()
    assert "ebpo/mu_glob" in rows(res / "it" / "ebpo" / "seed1" / "metrics.jsonl")[0]
    # completed runs are skipped
    p = cli(env, "run", str(spec), "--quiet", "--results", str(res))
    assert p.returncode == 0 and p.stderr.count("skipped") == 2, p.stderr[-2000:]
    # a changed spec under the same run id is refused, then accepted with --force
    changed = write(tmp_path, tiny_spec(train={**tiny_spec()["train"], "lr": 2e-4}))
    p = cli(env, "run", str(changed), "--quiet", "--results", str(res), "--arm", "grpo")
    assert p.returncode == 2 and "--force" in p.stderr and "Traceback" not in p.stderr
    p = cli(env, "run", str(changed), "--quiet", "--results", str(res), "--arm", "grpo", "--force")
    assert p.returncode == 0, p.stderr[-2000:]


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path, env):
    spec = tiny_spec(
        "resume",
        train={"steps": 12, "prompts_per_step": 8, "mini_batches": 2, "lr": 1e-4, "checkpoint_every": 3},
    )
    spec["arms"] = {"ebpo": {"advantage": {"type": "ebpo", "prior_scope": "cumulative"}}}
    path = write(tmp_path, spec)
    a, b = tmp_path / "a", tmp_path / "b"
    p = cli(env, "run", str(path), "--quiet", "--results", str(a))
    assert p.returncode == 0, p.stderr[-2000:]
    metrics_b = b / "resume" / "ebpo" / "seed1" / "metrics.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ebpo_bench", "run", str(path), "--quiet", "--results", str(b)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics_b.exists() and len(metrics_b.read_text().splitlines()) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = len(metrics_b.read_text().splitlines())
    assert 5 <= killed_at < 12
    rec = json.loads((metrics_b.parent / "run.json").read_text())
    assert rec["status"] == "running"
    p = cli(env, "run", str(path), "--quiet", "--results", str(b))
    assert p.returncode == 0, p.stderr[-2000:]
    assert "resuming from step" in p.stderr
    ra, rb = rows(a / "resume" / "ebpo" / "seed1" / "metrics.jsonl"), rows(metrics_b)
    assert [r["step"] for r in rb] == list(range(12))
    assert [comparable(r) for r in ra] == [comparable(r) for r in rb]
    import torch

    sa = torch.load(a / "resume/ebpo/seed1/checkpoints/step_000012/state.pt", weights_only=False)
    sb = torch.load(b / "resume/ebpo/seed1/checkpoints/step_000012/state.pt", weights_only=False)
    assert sa["estimator"] == sb["estimator"] and sa["estimator"], (
        "cumulative EBPO prior must survive the kill"
    )
    ea = json.loads((a / "resume/ebpo/seed1/eval_summary.json").read_text())
    eb = json.loads((b / "resume/ebpo/seed1/eval_summary.json").read_text())
    assert ea == eb


def test_reward_goes_up_on_the_tiny_task(tmp_path, env):
    spec = tiny_spec(
        "learn",
        train={"steps": 120, "prompts_per_step": 32, "mini_batches": 2, "lr": 1e-4, "checkpoint_every": 120},
    )
    spec["arms"] = {"grpo": {"advantage": {"type": "grpo"}}}
    path = write(tmp_path, spec)
    p = cli(env, "run", str(path), "--quiet", "--results", str(tmp_path / "r"))
    assert p.returncode == 0, p.stderr[-2000:]
    m = rows(tmp_path / "r" / "learn" / "grpo" / "seed1" / "metrics.jsonl")
    first = sum(r["train/accuracy"] for r in m[:30]) / 30
    last = sum(r["train/accuracy"] for r in m[-30:]) / 30
    assert last > first + 0.03, (first, last)
