"""A sweep through a real SLURM scheduler (marker ``slurm``; see conftest.py): the quickstart's shape
(2 arms x 2 seeds, a few steps, a tiny warm start) as one job array, watched with ``status``; a job
sent SLURM's pre-timeout signal (``scancel --signal=USR1``) mid-run checkpoints, requeues and resumes
with contiguous, unique step rows; ``cancel`` removes a sweep's jobs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slurm
ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "configs" / "launch" / "slurm_cpu.yaml"


def spec(name: str, steps: int, arms: tuple[str, ...] = ("ebpo", "grpo"), seeds=(1, 2)) -> dict:
    return {
        "name": name,
        "seeds": list(seeds),
        "model": {"path": "tiny", "warm_start": {"steps": 30, "batch_size": 32, "levels": [1, 2]}},
        "task": {"type": "synthetic", "topics": ["add"], "train_levels": [1, 2], "eval_levels": [1, 2]},
        "rollout": {"group_size": 4, "max_new_tokens": 8},
        "train": {"steps": steps, "prompts_per_step": 4, "mini_batches": 1, "checkpoint_every": 1000},
        "eval": {"n_samples": 1},
        "arms": {a: {"advantage": {"type": a}} for a in arms},
    }


def cli(env: dict, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "ebpo_bench", *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def write(tmp: Path, s: dict) -> Path:
    s["task"]["eval_per_level"] = 4
    p = tmp / f"{s['name']}.yaml"
    p.write_text(yaml.safe_dump(s))
    return p


def states(env: dict, path: Path, results: Path) -> dict[str, tuple[str, str]]:
    """run id -> (state, job id) from ``ebpo-bench status``."""
    p = cli(env, "status", str(path), "--results", str(results))
    assert p.returncode == 0, p.stderr
    out = {}
    for line in p.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 4 and "/" in parts[0] and "/" in parts[2]:
            out[parts[0]] = (parts[1], parts[3])
    return out


def steps(run_dir: Path) -> list[int]:
    return [json.loads(x)["step"] for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


def test_sweep_runs_every_run_as_a_job_and_reports(slurm_env, tmp_path):
    path, res = write(tmp_path, spec("slurmq", steps=4)), tmp_path / "results"
    p = cli(
        slurm_env,
        "run",
        str(path),
        "--launcher",
        "slurm",
        "--launch-config",
        str(LAUNCH),
        "--results",
        str(res),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert "submitted job array" in p.stdout
    seen: dict[str, set[str]] = {}
    deadline = time.time() + 400
    while time.time() < deadline:
        st = states(slurm_env, path, res)
        for run_id, (state, _) in st.items():
            seen.setdefault(run_id, set()).add(state)
        if len(st) == 4 and all(s == "completed" for s, _ in st.values()):
            break
        time.sleep(1)
    assert len(st) == 4 and all(s == "completed" for s, _ in st.values()), (st, seen)
    assert all(job != "-" and "_" in job for _, job in st.values())  # array tasks ARRAYID_TASK
    assert any({"pending", "running"} & s for s in seen.values()), seen  # watched along the way
    for run_id in st:
        run_dir = res / "slurmq" / run_id
        assert steps(run_dir) == [0, 1, 2, 3]
        assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
        assert list((run_dir / "logs").glob("slurm-*.log")), "the job's log goes under the run's folder"
    p = cli(slurm_env, "report", str(res / "slurmq"), "--out", str(tmp_path / "reports"))
    assert p.returncode == 0, p.stderr[-2000:]
    md = (tmp_path / "reports" / "slurmq" / "report.md").read_text()
    assert "4 completed" in md and "Missing runs" not in md
    # a completed sweep submits nothing again
    p = cli(
        slurm_env,
        "run",
        str(path),
        "--launcher",
        "slurm",
        "--launch-config",
        str(LAUNCH),
        "--results",
        str(res),
    )
    assert p.returncode == 0 and "0 of 4 runs to launch" in p.stdout, p.stdout + p.stderr


def test_pre_timeout_signal_checkpoints_requeues_and_resumes(slurm_env, tmp_path):
    total = 30
    path, res = write(tmp_path, spec("slurmpre", steps=total, arms=("ebpo",), seeds=(1,))), tmp_path / "r"
    p = cli(
        slurm_env,
        "run",
        str(path),
        "--launcher",
        "slurm",
        "--launch-config",
        str(LAUNCH),
        "--results",
        str(res),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    run_dir = res / "slurmpre" / "ebpo" / "seed1"
    deadline = time.time() + 300
    while time.time() < deadline and not ((run_dir / "metrics.jsonl").exists() and len(steps(run_dir)) >= 3):
        time.sleep(0.2)
    job = states(slurm_env, path, res)["ebpo/seed1"][1]
    assert 3 <= len(steps(run_dir)) < total, "the run must be signalled mid-run"
    subprocess.run(["scancel", "--signal=USR1", job], env=slurm_env, check=True)
    seen, deadline = set(), time.time() + 400
    while time.time() < deadline:
        state = states(slurm_env, path, res)["ebpo/seed1"][0]
        if state == "requeued" and state not in seen:
            # SLURM holds a requeued job ~2 min (its begin time); as an admin would, start it now
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=slurm_env, check=True)
        seen.add(state)
        if state in ("completed", "failed"):
            break
        time.sleep(0.5)
    rec = json.loads((run_dir / "run.json").read_text())
    log = "\n".join(p.read_text() for p in (run_dir / "logs").glob("slurm-*.log"))
    assert rec["status"] == "completed", (seen, rec, log[-3000:])
    assert rec["stops"] == 1, "exactly one stop at a safe point"
    assert "stopped on request (SIGUSR1) at step" in log and "resuming from step" in log, log[-3000:]
    assert steps(run_dir) == list(range(total)), "contiguous, unique step rows across the requeue"
    assert "requeued" in seen, seen


def test_cancel_removes_the_sweeps_jobs(slurm_env, tmp_path):
    path, res = write(tmp_path, spec("slurmc", steps=500, arms=("grpo",))), tmp_path / "r"
    p = cli(
        slurm_env,
        "run",
        str(path),
        "--launcher",
        "slurm",
        "--launch-config",
        str(LAUNCH),
        "--results",
        str(res),
    )
    assert p.returncode == 0, p.stderr[-2000:]
    p = cli(slurm_env, "cancel", str(path), "--results", str(res))
    assert p.returncode == 0 and "cancelled 2 job(s)" in p.stdout, p.stdout + p.stderr
    deadline = time.time() + 60
    while time.time() < deadline:
        st = states(slurm_env, path, res)
        if all(s == "cancelled" for s, _ in st.values()):
            break
        time.sleep(0.5)
    assert all(s == "cancelled" for s, _ in st.values()), st
    p = cli(slurm_env, "cancel", str(path), "--results", str(res))
    assert p.returncode == 0 and "no job of this sweep is queued" in p.stdout
