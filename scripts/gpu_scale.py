"""GPU scale checks (one CUDA GPU, no network), run by scripts/gpu_smoke.sh after gpu_smoke.py:

1. the shipped 1-GPU accelerate config runs the 20-step smoke spec;
2. the FSDP2 config (one process) trains, is SIGKILLed after a checkpoint, resumes from its per-rank
   shards (checkpoints/step_N/shards), and the final evaluation reads them consolidated;
3. ``ebpo-bench bench`` on the quickstart without TRL (not installed on the device image):
   our trainer, the compute floor and the estimators, as a GPU data point.

Usage: python scripts/gpu_scale.py OUT_DIR; prints and writes OUT_DIR/gpu_scale.json.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]


def run(cmd: list[str], timeout: int = 240) -> dict:
    t0 = time.time()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return {"rc": p.returncode, "seconds": round(time.time() - t0, 1), "tail": (p.stdout + p.stderr)[-1500:]}


def accelerate_1gpu(out: Path) -> dict:
    cfg = str(ROOT / "configs/accelerate/1gpu.yaml")
    res = run(
        [
            *LAUNCH,
            cfg,
            "-m",
            "ebpo_bench",
            "run",
            "scripts/gpu_smoke_spec.yaml",
            "--quiet",
            "--results",
            str(out / "acc1"),
        ]
    )
    m = out / "acc1/gpu_smoke/ebpo/seed1/metrics.jsonl"
    res["steps"] = len(m.read_text().splitlines()) if m.exists() else 0
    return res


def fsdp_kill_resume(out: Path) -> dict:
    cfg = str(ROOT / "configs/accelerate/8gpu_fsdp.yaml")
    cmd = [
        *LAUNCH,
        cfg,
        "--num_processes",
        "1",
        "-m",
        "ebpo_bench",
        "run",
        "scripts/gpu_fsdp_spec.yaml",
        "--quiet",
        "--results",
        str(out / "fsdp"),
    ]
    run_dir = out / "fsdp/gpu_fsdp/ebpo/seed1"
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    deadline, killed_at = time.time() + 240, None
    while time.time() < deadline and proc.poll() is None:
        m = run_dir / "metrics.jsonl"
        if m.exists() and len(m.read_text().splitlines()) >= 35:
            killed_at = len(m.read_text().splitlines())
            os.killpg(proc.pid, signal.SIGKILL)
            subprocess.run(
                ["pkill", "-9", "-f", "gpu_fsdp_spec.yaml"]
            )  # torchrun workers sit in their own sessions
            break
        time.sleep(0.1)
    first_out = proc.communicate()[0][-1500:]
    res = {"killed_at_rows": killed_at, "first_tail": first_out if killed_at is None else ""}
    res["resume"] = run(cmd, timeout=300)
    res["resumed"] = "resuming from step" in res["resume"]["tail"]
    res["fsdp_active"] = "FSDP over" in res["resume"]["tail"]
    rows = (
        [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
        if (run_dir / "metrics.jsonl").exists()
        else []
    )
    res["steps_in_log"] = [r["step"] for r in rows] == list(range(120))
    rec = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    res["status"], res["eval"] = rec.get("status"), rec.get("eval")
    import torch

    from ebpo_bench.train.checkpoint import SHARDS, model_weights

    ck = run_dir / "checkpoints/step_000120"
    shards = (ck / SHARDS / "model" / ".metadata").is_file()
    res["sharded_checkpoint"] = shards and not (ck / "model.pt").exists()
    if ck.exists():
        sd = model_weights(ck)
        res["consolidated_plain_tensors"] = all(type(v) is torch.Tensor for v in sd.values())
    return res


def bench_without_trl(out: Path) -> dict:
    res = run(
        [
            sys.executable,
            "-m",
            "ebpo_bench",
            "bench",
            "specs/quickstart.yaml",
            "--steps",
            "10",
            "--warmup",
            "3",
            "--only",
            "ours,floor,estimators",
            "--out",
            str(out / "bench"),
            "--name",
            "quickstart-gpu",
        ],
        timeout=300,
    )
    j = out / "bench/quickstart-gpu.json"
    if j.exists():
        res["summary"] = json.loads(j.read_text())["summary"]
    return res


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("EBPO_BENCH_CACHE", str(out / "cache"))
    res = {}
    for name, fn in (
        ("accelerate_1gpu", accelerate_1gpu),
        ("fsdp_kill_resume", fsdp_kill_resume),
        ("bench", bench_without_trl),
    ):
        t0 = time.time()
        try:
            res[name] = fn(out)
        except Exception as e:  # keep going: each check reports on its own
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        print(f"== {name} ({time.time() - t0:.0f} s)", json.dumps(res[name], default=str)[:3000], flush=True)
    (out / "gpu_scale.json").write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_scale_out"))
