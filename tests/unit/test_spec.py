"""Spec validation: shipped specs, arm/grid expansion, and one clear message per malformed spec."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ebpo_bench.config.load import SpecError, build_experiment, deep_merge, load_experiment, run_id, spec_hash

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_shipped_spec_validates(path):
    if yaml.safe_load(path.read_text()).get("kind") == "simulation":
        from ebpo_bench.lab.spec import load_lab_spec

        assert load_lab_spec(path).name
        return
    exp = load_experiment(path)
    assert exp.runs, path
    assert len({r.run_id for r in exp.runs}) == len(exp.runs)


def test_specs_exist():
    names = {p.name for p in SPECS}
    assert {"quickstart.yaml", "group_size_sweep.yaml"} <= names


def test_grid_and_arms_expand_to_cross_product():
    exp = load_experiment(ROOT / "specs" / "group_size_sweep.yaml")
    assert len(exp.runs) == 3 * 5 * 3  # arms x G x seeds
    r = next(r for r in exp.runs if r.run_id == "dapo/G8/seed2")
    assert r.rollout.group_size == 8 and r.seed == 2 and r.arm == "dapo"
    assert r.advantage.type == "grpo" and r.advantage.normalize_std is False
    assert r.loss.surrogate.clip_high == 0.28 and r.train.filter_groups.enabled
    ebpo = next(r for r in exp.runs if r.run_id == "ebpo/G8/seed2")
    # arms differ only where they say so
    assert ebpo.loss.surrogate.clip_high == 0.2 and not ebpo.train.filter_groups.enabled
    assert ebpo.model_dump(exclude={"advantage", "arm", "run_id"}) == r.model_dump(
        exclude={"advantage", "arm", "run_id", "loss", "train"}
    ) | {"loss": ebpo.loss.model_dump(), "train": ebpo.train.model_dump()}


def test_defaults_are_visible_in_resolved_spec():
    exp = build_experiment({"name": "x"})
    run = exp.runs[0]
    dumped = run.model_dump()
    assert dumped["advantage"] == {
        "type": "ebpo",
        "prior_scope": "batch",
        "ema_decay": 0.9,
        "sigma2": "pooled_total",
        "var_ddof": 0,
        "adv_norm": "batch_std",
        "eps": 1e-6,
    }
    assert dumped["eval"]["max_new_tokens"] == dumped["rollout"]["max_new_tokens"]
    assert run.run_id == "ebpo/seed0"


def test_constant_norm_resolved_from_max_new_tokens():
    exp = build_experiment(
        {"name": "x", "loss": {"aggregation": "seq_mean_token_sum_norm"}, "rollout": {"max_new_tokens": 33}}
    )
    assert exp.runs[0].loss.constant_norm == 33


def test_type_switch_replaces_instead_of_merging():
    base = {"advantage": {"type": "ebpo", "prior_scope": "cumulative"}}
    assert deep_merge(base, {"advantage": {"type": "grpo"}}) == {"advantage": {"type": "grpo"}}
    assert deep_merge(base, {"advantage": {"adv_norm": "none"}})["advantage"] == {
        "type": "ebpo",
        "prior_scope": "cumulative",
        "adv_norm": "none",
    }


def test_run_ids_are_stable():
    assert run_id("ebpo", {"rollout.group_size": 4}, 1) == "ebpo/G4/seed1"
    assert run_id("grpo", {}, 0) == "grpo/seed0"
    a = build_experiment({"name": "x"}).runs[0]
    b = build_experiment({"name": "x"}).runs[0]
    assert spec_hash(a) == spec_hash(b)
    c = build_experiment({"name": "x", "train": {"lr": 2e-4}}).runs[0]
    assert spec_hash(a) != spec_hash(c)


# (spec, substrings the single message must contain)
MALFORMED = [
    ({"advantage": {"type": "ebpoo"}}, ["advantage.type", "Did you mean 'ebpo'"]),
    (
        {"advantage": {"type": "ebpo", "prior_scop": "batch"}},
        ["advantage.prior_scop", "Did you mean 'prior_scope'"],
    ),
    ({"advantage": {"type": "ebpo", "prior_scope": "cumulatve"}}, ["advantage.prior_scope", "'cumulative'"]),
    ({"rollout": {"group_siz": 4}}, ["rollout.group_siz", "Did you mean 'group_size'"]),
    ({"rollout": {"group_size": 0}}, ["rollout.group_size", "greater than or equal to 1"]),
    (
        {"rollout": {"group_size": 1}, "advantage": {"type": "grpo"}},
        ["rollout.group_size=1", "raise rollout.group_size"],
    ),
    (
        {"arms": {"g": {"advantage": {"type": "grpo", "normalize": False}}}},
        ["arms.g.advantage.normalize", "normalize_std"],
    ),
    ({"arms": {"g": {"rollout": {"temperature": -1}}}}, ["arms.g.rollout.temperature", "greater than 0"]),
    ({"grid": {"rollout.group_sise": [2]}}, ["grid", "rollout.group_sise", "Did you mean 'group_size'"]),
    ({"grid": {"seeds": [1, 2]}}, ["grid.seeds", "top-level 'seeds'"]),
    ({"train": {"prompts_per_step": 3, "mini_batches": 5}}, ["train.mini_batches=5", "divide"]),
    ({"nme": "x"}, ["nme", "Did you mean 'name'"]),
    ({"task": {"type": "file"}}, ["task.path", "missing"]),
    ({"task": {"type": "synthetc"}}, ["task.type", "Did you mean 'synthetic'"]),
    ({"loss": {"surrogate": {"clip_c": 0.5}}}, ["loss.surrogate.clip_c", "greater than 1"]),
    ({"loss": {"clip_c": 3.0}}, ["loss", "clip_c moved into loss.surrogate", "type: ppo_clip, clip_c: 3.0"]),
    ({"loss": {"surrogate": {"type": "clip_cv"}}}, ["loss.surrogate.type", "Did you mean 'clip_cov'"]),
    ({"loss": {"aggregation": "token-mean"}}, ["loss.aggregation", "Did you mean 'token_mean'"]),
    ({"advantage": {}}, ["advantage", "'type' is missing"]),
    ({"seeds": []}, ["seeds", "at least 1"]),
    (
        {"advantage": {"type": "spo"}, "reward": {"scale": "plus_minus_one"}},
        ["advantage.reward_scale=zero_one", "set advantage.reward_scale: plus_minus_one"],
    ),
    ({"advantage": {"type": "ebpo", "var_ddof": 2}}, ["advantage.var_ddof", "0, 1"]),
    ({"train": {"steps": "many"}}, ["train.steps", "integer"]),
    (
        {"advantage": {"type": "jspo"}, "train": {"prompts_per_step": 1, "mini_batches": 1}},
        ["jspo", "at least 2 prompts"],
    ),
    ({"model": {"path": "some/model", "warm_start": {}}}, ["warm_start", "tiny"]),
    ({"eval": {"benchmarks": ["aime2"]}}, ["eval.benchmarks", "Did you mean 'aime25'"]),
    ({"rollout": {"backend": "vlm"}}, ["rollout.backend.type", "Did you mean 'vllm'"]),
    ({"rollout": {"backend": {"type": "hf", "max_batch": 0}}}, ["rollout.backend.max_batch", "greater than"]),
    ({"eval": {"backend": "vlm"}}, ["eval.backend", "Did you mean 'vllm'"]),
]


@pytest.mark.parametrize("patch,expect", MALFORMED, ids=[str(i) for i in range(len(MALFORMED))])
def test_malformed_spec_gives_one_clear_message(patch, expect):
    raw = {"name": "x", **patch}
    if "name" not in patch and "nme" in patch:
        raw.pop("name")
    with pytest.raises(SpecError) as info:
        build_experiment(raw, source="bad.yaml")
    msg = str(info.value)
    assert msg.startswith("bad.yaml: ")
    for s in expect:
        assert s in msg, (s, msg)
    assert "Traceback" not in msg and "pydantic" not in msg.lower()


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrollout: {group_size: 4\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_experiment(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text(yaml.safe_dump([1, 2]))
    with pytest.raises(SpecError, match="must be a mapping"):
        load_experiment(lst)
