"""The paper specs' tiny profiles end to end on CPU: difficulty pre-pass, training, Table-2 report.

Shrunk further than the shipped tiny profiles (no warm start, 2 steps, 2 grid points) to stay
under a minute; what is checked is the plumbing, not learning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpo_bench import runner
from ebpo_bench.config.load import build_experiment, deep_merge, read_yaml
from ebpo_bench.config.profiles import apply_profile
from ebpo_bench.data import orderings as curriculum
from ebpo_bench.eval import prepass

pytestmark = pytest.mark.integration
SPECS = Path(__file__).resolve().parents[2] / "specs"
SHRINK = {
    "model": {"warm_start": None, "tiny": {"layers": 1, "hidden": 32, "heads": 2, "intermediate": 64}},
    "task": {"eval_levels": [1], "eval_per_level": 2},
    "train": {"steps": 2, "prompts_per_step": 4, "mini_batches": 1, "checkpoint_every": 2},
    "eval": {"n_samples": 1, "limit": 1},
}


def _tiny(name: str, extra: dict) -> object:
    raw = deep_merge(deep_merge(apply_profile(read_yaml(SPECS / f"{name}.yaml"), "tiny"), SHRINK), extra)
    return build_experiment(raw, source=name)


def test_curriculum_tiny_prepass_then_training_and_cache_reuse(tmp_path, cache_dir, monkeypatch, shared_data):
    monkeypatch.chdir(tmp_path)
    exp = _tiny(
        "curriculum", {"data": {"pool_size": 12, "difficulty": {"n_samples": 2, "chunk": 8, "strata": 2}}}
    )
    [summary] = prepass.prepare_orderings(exp.runs, tmp_path / "res", log=lambda m: None)
    [cache] = (tmp_path / "res" / "curriculum-tiny" / "_prepass").glob("*.jsonl")
    rates = curriculum.read_pass_rates(cache)
    assert 1 <= len(rates) <= 12 and "| stratum |" in summary.read_text()
    stamp = cache.stat().st_mtime_ns
    status = runner.run_experiment(exp, exp.runs, quiet=True, results_root=tmp_path / "res")
    assert set(status.values()) == {"completed"}
    prepass.prepare_orderings(exp.runs, tmp_path / "res", log=lambda m: None)
    assert cache.stat().st_mtime_ns == stamp  # second call reuses the pre-pass


def test_group_size_sweep_tiny_report_has_table2_with_reported_rows(
    tmp_path, cache_dir, monkeypatch, shared_data
):
    from ebpo_bench.report import build_reports

    monkeypatch.chdir(tmp_path)
    exp = _tiny("group_size_sweep", {"grid": {"rollout.group_size": [2, 4]}})
    runs = [r for r in exp.runs if r.arm in ("ebpo", "grpo")]
    assert set(runner.run_experiment(exp, runs, quiet=True, results_root=tmp_path / "res").values()) == {
        "completed"
    }
    paths = build_reports(tmp_path / "res", tmp_path / "res" / exp.name, tmp_path / "rep")
    md = next(Path(p) for p in paths if str(p).endswith(".md")).read_text()
    pivot = md[md.index("### Table 2: Avg Pass@1") : md.index("### Table 2 (per benchmark)")]
    assert "| ebpo | reproduced |" in pivot and "| G=2 | G=4 |" in pivot
    # tiny scale: Avg is over the synthetic levels, so the paper's Avg (other columns) is left out
    assert "(Avg over Level 1" in pivot and "| EBPO | reported (paper) |" not in pivot


def test_paper_table1_tiny_runs_entropymech_with_the_clip_cov_loss(
    tmp_path, cache_dir, monkeypatch, shared_data
):
    """EntropyMech is a real arm of Table 1: GRPO advantages with the Clip-Cov surrogate, through the
    trainer, beside GRPO (the same shrunk tiny profile)."""
    import json

    monkeypatch.chdir(tmp_path)
    exp = _tiny("paper_table1", {})
    runs = [r for r in exp.runs if r.arm in ("entropymech", "grpo") and r.seed == exp.runs[0].seed]
    assert {r.arm: r.loss.surrogate.type for r in runs} == {"entropymech": "clip_cov", "grpo": "ppo_clip"}
    status = runner.run_experiment(exp, runs, quiet=True, results_root=tmp_path / "res")
    assert set(status.values()) == {"completed"}
    for r in runs:
        rows = [json.loads(x) for x in (tmp_path / "res" / exp.name / r.run_id / "metrics.jsonl").open()]
        assert [row["step"] for row in rows] == [0, 1]
        clip_cov_logged = any(k.endswith("cov_clip_frac") for k in rows[-1])
        assert clip_cov_logged == (r.arm == "entropymech"), sorted(rows[-1])
