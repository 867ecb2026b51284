"""Issue 17 through the real CLI on a 1-layer tiny model (no warm start, a few seconds per run):
SIGINT / SIGTERM stop at a step and resume, plain progress lines without a terminal, TensorBoard
events equal to metrics.jsonl, ``--set`` recorded, ``--eval-only`` and the changed-field message,
``eval RUN_DIR`` folders that ``report`` picks up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def small_spec(name: str, steps: int = 4, **over) -> dict:
    spec = {
        "name": name,
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
        "train": {"steps": steps, "prompts_per_step": 2, "mini_batches": 1, "checkpoint_every": 100},
        "eval": {"n_samples": 1},
        "advantage": {"type": "grpo"},
        "log": {"every": 2},
    }
    spec.update(over)
    return spec


@pytest.fixture
def env(tmp_path) -> dict:
    return dict(
        os.environ, EBPO_BENCH_CACHE=str(tmp_path / "cache"), HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1"
    )


@pytest.fixture
def reports():
    made: list[str] = []
    yield made
    for name in made:
        shutil.rmtree(ROOT / "reports" / name, ignore_errors=True)


def write(tmp: Path, spec: dict) -> Path:
    p = tmp / f"{spec['name']}.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def start(env: dict, spec: Path, res: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ebpo_bench", "run", str(spec), "--results", str(res)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop_after(proc: subprocess.Popen, metrics: Path, n: int, sig: signal.Signals) -> str:
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= n:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the signal"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + int(sig), err[-2000:]
    assert "Traceback" not in err
    return err


def test_sigint_then_sigterm_stop_at_a_step_record_it_and_resume(tmp_path, env, reports):
    reports.append("sig")
    spec = write(tmp_path, small_spec("sig", steps=3000))
    res = tmp_path / "res"
    d = res / "sig" / "grpo" / "seed1"
    first = 0
    for sig, at_least in ((signal.SIGINT, 5), (signal.SIGTERM, 10)):
        err = stop_after(start(env, spec, res), d / "metrics.jsonl", at_least, sig)
        rec = json.loads((d / "run.json").read_text())
        m = rows(d / "metrics.jsonl")
        n = len(m)
        assert [r["step"] for r in m] == list(range(n))  # resumed rows continue, none lost or repeated
        assert rec["status"] == "interrupted" and rec["interrupted_at"] == n == rec["last_checkpoint"]
        assert err.strip().splitlines()[-1] == (
            f"grpo/seed1: interrupted ({sig.name}) at step {n}; last checkpoint at step {n}; "
            "rerun the same command to resume"
        )
        if first:
            assert f"resuming from step {first}" in err
        first = n
        # no terminal: plain progress lines with every field, every log.every steps
        lines = [x for x in err.splitlines() if x.startswith("grpo/seed1: ") and " s/step eta " in x]
        assert len(lines) >= 2 and all(f" {k}=" in lines[-1] for k in ("reward", "acc", "loss", "kl", "ent"))
        assert "/3000 " in lines[0]


def main(capsys, *args: str) -> tuple[int, str]:
    """``ebpo-bench ARGS`` through the console entry point, in this process (no torch re-import)."""
    from ebpo_bench.cli import main as entry

    try:
        entry(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def test_set_tensorboard_eval_only_eval_folders_and_report(
    tmp_path, cache_dir, monkeypatch, capsys, shared_data
):
    monkeypatch.chdir(tmp_path)  # reports/ of `run` go here
    spec = write(tmp_path, small_spec("ux", steps=50, log={"every": 2, "trackers": ["tensorboard"]}))
    res = str(tmp_path / "res")
    d = tmp_path / "res" / "ux" / "grpo" / "seed1"
    code, err = main(capsys, "run", str(spec), "--quiet", "--results", res, "--set", "train.steps=3")
    assert code == 0, err[-3000:]
    assert yaml.safe_load((d / "spec.resolved.yaml").read_text())["train"]["steps"] == 3
    # TensorBoard events hold exactly the metrics.jsonl values
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = rows(d / "metrics.jsonl")
    acc = EventAccumulator(str(d / "trackers" / "ux"), size_guidance={"scalars": 0})
    acc.Reload()
    for key in ("train/reward_mean", "train/entropy", "loss/total", "time/step"):
        got = [(e.step, e.value) for e in acc.Scalars(key)]
        assert got == [(r["step"], pytest.approx(r[key], rel=1e-6, abs=1e-7)) for r in m], key
    # only eval.* changed: the finished run is kept; `run` says so, `--eval-only` re-evaluates it
    sets = ["--set", "train.steps=3", "--set", "eval.n_samples=2", "--set", "eval.temperature=0.7"]
    code, err = main(capsys, "run", str(spec), "--quiet", "--results", res, *sets)
    assert code == 0 and "skipped" in err and "--eval-only" in err and "eval.n_samples: 1 -> 2" in err, err
    code, err = main(capsys, "run", str(spec), "--quiet", "--results", res, "--eval-only", *sets)
    assert code == 0 and "re-evaluating step 3" in err, err[-2000:]
    assert json.loads((d / "eval_summary.json").read_text())["3"]["level1"]["n"] == 2
    assert json.loads((d / "run.json").read_text())["status"] == "completed"
    # a training field changed: refused, naming it
    code, err = main(
        capsys, "run", str(spec), "--results", res, "--set", "train.steps=3", "--set", "train.lr=2e-4"
    )
    assert code == 2 and "train.lr: 0.0001 -> 0.0002" in err and "--force" in err, err
    # eval RUN_DIR: greedy n > 1 refused; the context cap noted; one folder per evaluation, never
    # overwritten silently; `report` shows them with the experiment
    code, err = main(capsys, "eval", str(d), "--benchmarks", "math500", "--n", "4", "--limit", "1")
    assert code == 2 and "temperature 0" in err and len(err.strip().splitlines()) == 1, err
    args = ["eval", str(d), "--benchmarks", "math500", "--limit", "1", "--quiet"]
    code, err = main(capsys, *args)  # default 1024 new tokens > the 512-token context
    assert code == 0 and "note: max_new_tokens 1024 capped to" in err, err[-2000:]
    code, err = main(capsys, *args, "--n", "2", "--temperature", "0.7", "--max-new-tokens", "8")
    assert code == 0, err[-2000:]
    folders = sorted(x.name for x in (d / "evals").iterdir())
    assert len(folders) == 2 and all(f.startswith("step3_math500_") for f in folders), folders
    code, err = main(capsys, *args)
    assert code == 2 and "--force" in err and "already holds" in err, err
    code, err = main(capsys, "report", str(tmp_path / "res" / "ux"), "--out", str(tmp_path / "rep"))
    assert code == 0, err[-2000:]
    md = (tmp_path / "rep" / "ux" / "report.md").read_text()
    assert "Further evaluations" in md and "| grpo/seed1 | 3 | math500 | 2 | 0.7 | 8 |" in md
