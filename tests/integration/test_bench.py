"""`ebpo-bench bench` end to end at CI size: real trainer, real TRL GRPOTrainer, floor, estimators.

Two measured steps each, so the benchmark never rots; the numbers themselves are not asserted
(performance goals live in docs/performance.md, not in timed tests).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.integration

SPEC = {
    "name": "benchsmoke",
    "seeds": [1],
    "model": {"path": "tiny", "tiny": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}},
    "task": {
        "type": "synthetic",
        "topics": ["add"],
        "train_levels": [1, 2],
        "eval_levels": [1],
        "eval_per_level": 2,
    },
    "rollout": {"group_size": 2, "max_new_tokens": 6},
    "train": {"prompts_per_step": 4, "mini_batches": 2},
    "arms": {"grpo": {"advantage": {"type": "grpo"}}, "ebpo": {"advantage": {"type": "ebpo"}}},
}


def _bench(tmp_path, *args: str) -> subprocess.CompletedProcess:
    spec = tmp_path / "bench.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", "bench", str(spec), "--out", str(tmp_path / "out"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_bench_side_by_side_smoke(tmp_path, cache_dir):
    p = _bench(tmp_path, "--steps", "2", "--warmup", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads((tmp_path / "out" / "benchsmoke.json").read_text())
    for kind in ("ours", "trl", "floor"):
        rows = result["raw"][kind][0]["rows"]
        assert len(rows) == 3  # warm-up + measured, one row per RL step
        for r in rows:
            assert r["wall"] > 0 and r["generation"] > 0 and r["tokens"] > 0
            assert r["compute"] > 0
        assert result["summary"][kind]["steps"] == 2
        assert result["raw"][kind][0]["peak_rss_mb"] > 50
    # the same prompts and G: both trainers sample 4 x 2 responses per step, at most 6 tokens each
    for kind in ("ours", "trl"):
        assert all(0 < r["tokens"] <= 4 * 2 * 6 for r in result["raw"][kind][0]["rows"])
        assert all(r["reward"] > 0 for r in result["raw"][kind][0]["rows"])
    assert all(r["advantage"] > 0 for r in result["raw"]["ours"][0]["rows"])
    names = {e["estimator"] for e in result["summary"]["estimators"]}
    assert {"ebpo", "grpo", "spo"} <= names
    targets = {t["target"] for t in result["summary"]["targets"]}
    assert any("TRL step" in t for t in targets) and any("overhead" in t for t in targets)
    md = (tmp_path / "out" / "benchsmoke.md").read_text()
    assert "TRL GRPOTrainer" in md and "| target |" in md
    assert "ebpo-bench" in p.stdout


def test_bench_rejects_an_arm_trl_cannot_run(tmp_path):
    p = _bench(tmp_path, "--arm", "ebpo", "--only", "ours,trl")
    assert p.returncode == 2
    assert "no equivalent of advantage 'ebpo'" in p.stderr and "Traceback" not in p.stderr


def test_bench_rejects_unknown_parts(tmp_path):
    p = _bench(tmp_path, "--only", "ours,vllm")
    assert p.returncode == 2 and "--only: unknown 'vllm'" in p.stderr
