"""Launchers without a scheduler: launch configs, --dry-run, status from result folders, cancel's
errors, the run's command line (accelerate, multi-node rendezvous), the stop flag, missing runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ebpo_bench.errors import STOP_EXIT_CODE, UserError
from ebpo_bench.interrupt import Interrupted, catch_signals
from ebpo_bench.launch.child import Rendezvous, RunCommand, command_line
from ebpo_bench.launch.config import load_launch_config
from ebpo_bench.report.load import missing_runs

ROOT = Path(__file__).resolve().parents[2]
NO_TORCH = (
    "import sys; from ebpo_bench.cli import main\n"
    "try:\n    main({args!r})\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
    "assert 'torch' not in sys.modules, 'torch was imported'\n"
    "assert 'submitit' not in sys.modules, 'submitit was imported'\n"
    "print('EXIT', code)\n"
)


def cli_no_torch(*args: str) -> subprocess.CompletedProcess:
    code = NO_TORCH.format(args=list(args))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs" / "launch").glob("*.yaml")))
def test_shipped_launch_configs_load(name):
    cfg = load_launch_config(ROOT / "configs" / "launch" / name)
    assert cfg.time_min >= 1 and cfg.nodes >= 1


def test_launch_config_overrides_and_errors(tmp_path):
    cfg = load_launch_config(ROOT / "configs/launch/slurm_8gpu.yaml", ["time_min=30", "partition=h100"])
    assert (cfg.time_min, cfg.partition, cfg.gpus_per_node) == (30, "h100", 8)
    with pytest.raises(UserError, match="FIELD one of"):
        load_launch_config(None, ["gpus=8"])
    with pytest.raises(UserError, match="time_min"):
        load_launch_config(None, ["time_min=0"])
    bad = tmp_path / "x.yaml"
    bad.write_text("partiton: gpu\n")
    with pytest.raises(UserError, match="partiton.*Valid fields"):
        load_launch_config(bad)
    with pytest.raises(UserError, match="no such launch config"):
        load_launch_config(tmp_path / "missing.yaml")


def test_dry_run_prints_jobs_and_resources_and_submits_nothing(tmp_path):
    args = ["run", "specs/quickstart.yaml", "--launcher", "slurm", "--launch-config"]
    args += [
        "configs/launch/slurm_8gpu.yaml",
        "--launch-set",
        "max_concurrent=2",
        "--dry-run",
        "--results",
        str(tmp_path),
    ]
    p = cli_no_torch(*args)
    assert "EXIT 0" in p.stdout, p.stdout + p.stderr
    assert "4 of 4 runs to launch (slurm)" in p.stdout
    assert "gpus/node=8" in p.stdout and "max concurrent=2" in p.stdout and "8gpu_fsdp.yaml" in p.stdout
    assert p.stdout.count("--run-id") == 4
    assert not (tmp_path / "quickstart").exists()
    p = cli_no_torch("run", "specs/quickstart.yaml", "--launcher", "nope", "--dry-run")
    assert "EXIT 2" in p.stdout and "unknown; choose one of" in p.stderr


def test_status_reads_result_folders_and_cancel_without_jobs_fails(tmp_path):
    exp = tmp_path / "quickstart"
    done = exp / "ebpo" / "seed1"
    done.mkdir(parents=True)
    (done / "run.json").write_text(json.dumps({"status": "completed"}))
    (done / "metrics.jsonl").write_text("".join(json.dumps({"step": s}) + "\n" for s in range(250)))
    part = exp / "grpo" / "seed1"
    (part / "logs").mkdir(parents=True)
    (part / "run.json").write_text(json.dumps({"status": "interrupted"}))
    (part / "metrics.jsonl").write_text(json.dumps({"step": 0}) + "\n" + json.dumps({"step": 1}) + "\n")
    (part / "logs" / "local.log").write_text("warm start\ngrpo/seed1: stopped on request after step 2\n")
    p = cli_no_torch("status", "specs/quickstart.yaml", "--results", str(tmp_path))
    assert "EXIT 0" in p.stdout, p.stderr
    lines = {ln.split()[0]: ln for ln in p.stdout.splitlines() if ln.startswith(("ebpo/", "grpo/"))}
    assert lines["ebpo/seed1"].split()[1:3] == ["completed", "250/250"]
    assert lines["grpo/seed1"].split()[1:3] == ["interrupted", "2/250"]
    assert lines["grpo/seed1"].endswith("stopped on request after step 2")
    assert lines["ebpo/seed2"].split()[1:4] == ["not", "started", "0/250"]
    p = cli_no_torch("cancel", "specs/quickstart.yaml", "--results", str(tmp_path))
    assert "EXIT 2" in p.stdout and "nothing to cancel" in p.stderr


def test_command_line_plain_accelerate_and_multinode():
    cmd = RunCommand("/s.yaml", "ebpo/seed1", "/r")
    plain = command_line(cmd, None, Rendezvous(), python="py")
    assert plain == [
        "py",
        "-m",
        "ebpo_bench",
        "run",
        "/s.yaml",
        "--run-id",
        "ebpo/seed1",
        "--results",
        "/r",
        "--quiet",
    ]
    multi = command_line(
        cmd, "c.yaml", Rendezvous(num_machines=2, machine_rank=1, main_ip="n0", port=29511), "py"
    )
    i = multi.index("-m", 3)
    assert multi[:i] == [
        "py", "-m", "accelerate.commands.launch", "--config_file", "c.yaml", "--num_machines", "2",
        "--machine_rank", "1", "--main_process_ip", "n0", "--main_process_port", "29511",
    ]  # fmt: skip
    packed = command_line(cmd, None, Rendezvous(num_processes=2, port=29517), "py")
    assert "--multi_gpu" in packed and packed[packed.index("--num_processes") + 1] == "2"


def test_usr1_is_a_requeue_stop_and_handlers_are_restored(monkeypatch):
    before = signal.getsignal(signal.SIGUSR1)
    with catch_signals() as stop, stop.deferred():  # at a safe point: the signal only sets the request
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGUSR1)
        assert stop.requested and stop.signum == signal.SIGUSR1
    assert signal.getsignal(signal.SIGUSR1) == before
    assert Interrupted(signal.SIGUSR1).requeue and Interrupted(signal.SIGUSR1).exit_code == STOP_EXIT_CODE
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert not Interrupted(signal.SIGTERM).requeue and Interrupted(signal.SIGTERM).exit_code == 143
    monkeypatch.setenv("SLURM_JOB_ID", "7")  # preemption inside a job: TERM asks for a requeue too
    assert Interrupted(signal.SIGTERM).requeue and Interrupted(signal.SIGINT).exit_code == 130


def test_missing_runs_come_from_the_sweep_record(tmp_path):
    (tmp_path / "sweep.json").write_text(json.dumps({"expected": ["a/seed1", "a/seed2", "b/seed1"]}))
    assert missing_runs(tmp_path, {"a/seed1"}) == ["a/seed2", "b/seed1"]
    assert missing_runs(tmp_path / "none", set()) == []
