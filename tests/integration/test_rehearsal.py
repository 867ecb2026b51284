"""Memory rehearsal at Qwen3's real vocabulary (151,936) on the CPU: one RL step (8 prompts x G = 4) and one
evaluation batch on a tiny-width model, peak RSS per phase compared with the memory planner, and no
phase may grow with T x V (the old sampler kept every step's logits, the old update (B, T, V) fp32).

Each run is a subprocess (``rehearsal_worker.py``) so RSS is its own. glibc's dynamic mmap threshold
lets the sampler's freed per-step (rows, V) buffers fragment the heap (RSS then grows with T although
nothing live does: an allocator artefact that CUDA's caching allocator does not have), so the workers
run with a fixed MALLOC_MMAP_THRESHOLD_.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("rehearsal_worker.py")
ROOT = WORKER.parents[2]
V = 151_936
MiB = 2**20


def _rehearse(tmp_path: Path, T: int, prompts: int = 8, G: int = 4) -> dict:
    out = tmp_path / f"t{T}" / "out.json"
    out.parent.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MALLOC_MMAP_THRESHOLD_": "65536"}
    env["EBPO_BENCH_CACHE"] = str(tmp_path / "cache")
    args = [sys.executable, str(WORKER), str(out), str(prompts), str(G), str(T)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    d = json.loads(out.read_text())
    print(json.dumps({k: v for k, v in d.items() if k != "plan"}))  # shown when the test fails
    if not d["peak_reset_per_phase"]:
        pytest.skip("this kernel does not let a process reset its peak-RSS mark (/proc/self/clear_refs)")
    p = d["plan"]
    d["rollout_delta"] = d["peak"]["rollout"] - d["before"]["rollout"]
    d["update_delta"] = d["peak"]["update"] - d["before"]["update"]
    d["eval_delta"] = d["peak"]["eval"] - d["before"]["eval"]
    d["plan_rollout"] = p["sampler KV cache"] + p["sampler batch (logits)"]
    d["plan_update"] = sum(p[k] for k in ("gradients", "optimiser state (AdamW)", "log-prob chunk"))
    d["plan_update"] += p["activations, one micro-batch"]
    return d


def _check_against_plan(d: dict) -> None:
    # what the planner counts (the phase's own allocations), within +-30 %
    assert 0.7 < d["rollout_delta"] / d["plan_rollout"] < 1.3, d
    assert 0.7 < d["update_delta"] / d["plan_update"] < 1.3, d


def test_rehearsal_at_qwen3_vocabulary_memory_does_not_grow_with_t_times_v(tmp_path):
    short, long = _rehearse(tmp_path, 8), _rehearse(tmp_path, 24)
    assert long["generated_width"] == 24 and long["rows"] == 32 and long["eval_rows"] == 32
    txv = 32 * (24 - 8) * V * 4  # what 16 more tokens cost a path holding (rows, T, V) fp32: 311 MB
    assert long["rollout_delta"] - short["rollout_delta"] < 0.2 * txv
    assert long["eval_delta"] - short["eval_delta"] < 0.2 * txv
    _check_against_plan(short)


@pytest.mark.slow
def test_rehearsal_8_prompts_4_samples_256_tokens(tmp_path):
    d = _rehearse(tmp_path, 256)
    print(json.dumps({k: v for k, v in d.items() if k != "plan"}, indent=1))
    assert d["generated_width"] == 256
    assert d["peak_overall"] < 3e9 * 0.7  # well under 3 GB
    _check_against_plan(d)
