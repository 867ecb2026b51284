"""Two CPU processes under ``accelerate launch`` (gloo) hold estimator state identical to one process
on the same gathered batch; a 2-process training run keeps both ranks' estimator state equal; a
2-process run killed mid-way and resumed ends bit-identical to an uninterrupted one."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# torchrun-style launch; with no GPU the trainer's Accelerator(cpu=True) joins a gloo process group
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


def free_port() -> str:
    """A port nothing listens on now: launches of parallel test workers must not share a rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _env(tmp: Path) -> dict:
    return dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        EBPO_BENCH_CACHE=str(tmp / "cache"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )


def test_two_processes_match_one_process_on_the_gathered_batch(tmp_path):
    sys.path.insert(0, str(HERE))
    import parity_worker as w

    p = subprocess.run(
        [*LAUNCH, "--main_process_port", free_port(), str(HERE / "parity_worker.py"), str(tmp_path)],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    from ebpo_bench import estimators as advantages

    for key, (name, opts) in w.ESTIMATORS.items():
        ref = advantages.make(name, **opts)
        for step in range(4):
            R, L, ids = w.full_batch(step)
            adv, metrics = ref(R, prompt_ids=ids, lengths=L)
            for r in (r0, r1):
                assert torch.equal(r["record"][key][step]["adv"], adv), (key, step)
                assert r["record"][key][step]["metrics"] == metrics
        assert r0["state"][key] == r1["state"][key] == ref.state_dict(), key


def _write_spec(tmp_path: Path, name: str, steps: int, checkpoint_every: int) -> Path:
    spec = {
        "name": name,
        "seeds": [1],
        "model": {"path": "tiny", "tiny": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}},
        "task": {
            "type": "synthetic",
            "topics": ["add"],
            "train_levels": [1, 2],
            "eval_levels": [1],
            "eval_per_level": 4,
        },
        "rollout": {"group_size": 4, "max_new_tokens": 6},
        "train": {
            "steps": steps,
            "prompts_per_step": 4,
            "mini_batches": 2,
            "checkpoint_every": checkpoint_every,
        },
        "eval": {"n_samples": 1},
        "advantage": {"type": "ebpo", "prior_scope": "cumulative"},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_two_process_training_run_keeps_ranks_in_step(tmp_path):
    path = _write_spec(tmp_path, "mp", steps=3, checkpoint_every=3)
    p = subprocess.run(
        [
            *LAUNCH,
            "--main_process_port",
            free_port(),
            "-m",
            "ebpo_bench",
            "run",
            str(path),
            "--quiet",
            "--results",
            str(tmp_path / "r"),
        ],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    ck = tmp_path / "r/mp/ebpo/seed1/checkpoints/step_000003"
    s0 = torch.load(ck / "estimator_rank0.pt", weights_only=False)
    s1 = torch.load(ck / "estimator_rank1.pt", weights_only=False)
    assert s0 == s1 and s0
    state = torch.load(ck / "state.pt", weights_only=False)
    assert state["world_size"] == 2


CONFIG_LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--config_file",
    str(ROOT / "configs" / "accelerate" / "cpu_2proc.yaml"),
]


def _rows(path: Path) -> list[dict]:
    import json

    return [
        {k: v for k, v in json.loads(x).items() if not k.startswith(("time/", "throughput/"))}
        for x in path.read_text().splitlines()
        if x.strip()
    ]


def test_two_process_run_killed_and_resumed_matches_uninterrupted(tmp_path):
    """The shipped cpu_2proc accelerate config; SIGKILL of the whole launch after a checkpoint."""
    import signal
    import time

    path = _write_spec(tmp_path, "mpk", steps=10, checkpoint_every=2)
    env = _env(tmp_path)
    cmd = lambda res: [
        *CONFIG_LAUNCH,
        "--main_process_port",
        free_port(),
        "-m",
        "ebpo_bench",
        "run",
        str(path),
        "--quiet",
        "--results",
        str(res),
    ]  # noqa: E731
    p = subprocess.run(
        cmd(tmp_path / "a"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    run_b = tmp_path / "b" / "mpk" / "ebpo" / "seed1"
    proc = subprocess.Popen(
        cmd(tmp_path / "b"), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (run_b / "metrics.jsonl").exists() and len(
            (run_b / "metrics.jsonl").read_text().splitlines()
        ) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    import psutil

    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    for pid in tree:  # launcher and both ranks at once (torchrun puts its workers in their own sessions)
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    import json

    assert len((run_b / "metrics.jsonl").read_text().splitlines()) < 10
    assert json.loads((run_b / "run.json").read_text())["status"] == "running"
    p = subprocess.run(
        cmd(tmp_path / "b"), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-3000:]
    assert "resuming from step" in p.stderr
    run_a = tmp_path / "a" / "mpk" / "ebpo" / "seed1"
    assert _rows(run_a / "metrics.jsonl") == _rows(run_b / "metrics.jsonl")
    for rank in (0, 1):
        sa = torch.load(run_a / f"checkpoints/step_000010/estimator_rank{rank}.pt", weights_only=False)
        sb = torch.load(run_b / f"checkpoints/step_000010/estimator_rank{rank}.pt", weights_only=False)
        assert sa == sb and sa
    ma = torch.load(run_a / "checkpoints/step_000010/model.pt")
    mb = torch.load(run_b / "checkpoints/step_000010/model.pt")
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
