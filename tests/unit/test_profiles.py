"""Scale profiles (ebpo_bench/config/profiles.py), the shipped paper specs, and the dry run's GPU-hour
estimate."""

from __future__ import annotations

from pathlib import Path

import pytest

from ebpo_bench.config.load import SpecError, load_experiment, read_yaml
from ebpo_bench.config.profiles import apply_profile, estimate_lines, gpu_hours, model_billions

SPECS = Path(__file__).resolve().parents[2] / "specs"
PAPER_SPECS = ["paper_table1", "group_size_sweep", "topic_ablation", "curriculum"]

RAW = {
    "name": "x",
    "model": {"path": "Qwen/Qwen3-8B", "dtype": "bfloat16"},
    "train": {"steps": 200},
    "arms": {
        "a": {"advantage": {"type": "ebpo"}},
        "b": {"model": {"path": "Qwen/Qwen3-14B"}, "train": {"filter_groups": {"enabled": True}}},
        "c": {"advantage": {"type": "grpo"}},
    },
    "profiles": {
        "tiny": {
            "model": {"path": "tiny"},
            "train": {"steps": 5},
            "arms": {"b": {"train": {"steps": 7}}},
            "drop_arms": ["c"],
        }
    },
}


def test_no_profile_only_removes_the_block():
    out = apply_profile(RAW, None)
    assert "profiles" not in out and out["name"] == "x" and out["arms"] == RAW["arms"]


def test_profile_merges_onto_base_and_onto_arms_that_set_the_section():
    out = apply_profile(RAW, "tiny")
    assert out["name"] == "x-tiny"
    assert out["model"] == {"path": "tiny", "dtype": "bfloat16"} and out["train"] == {"steps": 5}
    assert out["arms"]["a"] == {"advantage": {"type": "ebpo"}}  # untouched sections keep inheriting
    assert out["arms"]["b"]["model"] == {"path": "tiny"}  # the arm's own model switch is overridden too
    assert out["arms"]["b"]["train"] == {"filter_groups": {"enabled": True}, "steps": 7}  # profile.arms last
    assert "c" not in out["arms"]
    assert RAW["model"]["path"] == "Qwen/Qwen3-8B"  # the input is not mutated


def test_unknown_profile_names_the_choices():
    with pytest.raises(SpecError, match="no profile 'tiyn'.*tiny"):
        apply_profile(RAW, "tiyn", "s.yaml")


@pytest.mark.parametrize("name", PAPER_SPECS)
def test_paper_specs_validate_with_every_profile(name):
    raw = read_yaml(SPECS / f"{name}.yaml")
    assert raw.get("paper_table") or name == "curriculum"
    for profile in [None, *raw["profiles"]]:
        exp = load_experiment(SPECS / f"{name}.yaml", profile=profile)
        assert exp.runs
        if profile == "tiny":
            assert exp.name == f"{name}-tiny"
            assert all(r.model.path == "tiny" and r.task.type == "synthetic" for r in exp.runs)
        else:
            assert all(r.model.path != "tiny" and r.rollout.max_new_tokens == 8192 for r in exp.runs)


def test_table1_and_sweep_carry_the_paper_settings():
    t1 = load_experiment(SPECS / "paper_table1.yaml")
    assert sorted(t1.arms()) == ["dapo", "drgrpo", "ebpo", "entropymech", "grpo"]
    em = next(r for r in t1.runs if r.arm == "entropymech")  # the EBPO authors' EntropyMech settings
    assert em.advantage.type == "grpo" and em.loss.kl_coef == 0.0
    assert em.loss.surrogate.model_dump() == {
        "type": "clip_cov",
        "clip_low": 1.0,
        "clip_high": 1.0,
        "clip_ratio": 2e-4,
        "cov_lb": 1.0,
        "cov_ub": 5.0,
    }
    for r in t1.runs:
        if r.arm == "entropymech":
            continue
        assert (r.rollout.group_size, r.train.prompts_per_step, r.train.mini_batches, r.train.lr) == (
            4,
            512,
            4,
            1e-6,
        )
        assert (r.loss.surrogate.clip_low, r.loss.surrogate.clip_c, r.loss.kl_coef, r.loss.kl_estimator) == (
            0.2,
            3.0,
            0.001,
            "k3",
        )
        assert (
            r.reward.scale == "plus_minus_one"
            and r.task.template == "dapo"
            and r.eval.max_new_tokens == 20480
        )
    sweep = load_experiment(SPECS / "group_size_sweep.yaml")
    assert sorted({r.rollout.group_size for r in sweep.runs}) == [2, 4, 8, 16, 32]
    tiny = load_experiment(SPECS / "group_size_sweep.yaml", profile="tiny")
    assert len(tiny.runs) == 30 and {r.train.overlong.buffer for r in tiny.runs if r.arm == "dapo"} == {4}


def test_model_billions():
    assert model_billions("Qwen/Qwen3-8B") == 8.0
    assert model_billions("meta-llama/Llama-3.1-8B") == 8.0
    assert model_billions("Qwen/Qwen3-14B-Base") == 14.0
    assert model_billions("tiny") is None


def test_gpu_hours_formula_by_hand():
    run = load_experiment(SPECS / "paper_table1.yaml").runs[0]
    # 200 steps x 512 prompts x G=4 x 8192 tokens x 0.5 = 1.6777e9 tokens; x (1/1e4 + 1/5e3) s = 503,316 s
    assert gpu_hours(run) == pytest.approx(503_316.48 / 3600, rel=1e-6)
    run14 = load_experiment(SPECS / "paper_table1.yaml", profile="qwen3_14b").runs[0]
    assert gpu_hours(run14) == pytest.approx(gpu_hours(run) * 14 / 8)
    tiny = load_experiment(SPECS / "paper_table1.yaml", profile="tiny").runs
    assert gpu_hours(tiny[0]) is None and "no GPU estimate" in estimate_lines(tiny)[-1]


def test_dry_run_prints_runs_steps_and_estimate(capsys):
    from ebpo_bench.cli import main

    main(["run", str(SPECS / "group_size_sweep.yaml"), "--dry-run"])
    out = capsys.readouterr().out
    assert "runs: 45; RL steps in all: 9000" in out and "GPU hours (ESTIMATE" in out
