"""The memory planner (config/memory.py): paper specs fit 8 x 80 GB under FSDP; misfits are refused in
one line naming the field; bf16 master weights are refused unless allowed; torch-free."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ebpo_bench.config.load import build_experiment, load_experiment
from ebpo_bench.config.memory import GB, KNOWN_MODELS, Launch, check_fits, plan, plan_lines
from ebpo_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
PAPER = ["paper_table1", "group_size_sweep", "topic_ablation", "curriculum"]
FSDP8 = Launch(8, True)


@pytest.mark.parametrize("name", PAPER)
def test_every_paper_spec_fits_8_gpus_of_80gb_under_fsdp(name):
    for run in load_experiment(ROOT / "specs" / f"{name}.yaml").runs:
        check_fits(run, FSDP8, 80 * GB)
        assert plan(run, FSDP8).total < 0.9 * 80 * GB


def test_known_shapes_give_the_published_parameter_counts():
    assert abs(KNOWN_MODELS["Qwen/Qwen3-8B"].params / 1e9 - 8.19) < 0.02
    assert abs(KNOWN_MODELS["Qwen/Qwen3-14B"].params / 1e9 - 14.77) < 0.02
    assert abs(KNOWN_MODELS["meta-llama/Llama-3.1-8B"].params / 1e9 - 8.03) < 0.02
    assert abs(KNOWN_MODELS["Qwen/Qwen3-0.6B"].params / 1e9 - 0.60) < 0.01


def _run(**over):
    raw = {
        "name": "m",
        "model": {"path": "Qwen/Qwen3-8B", "mixed_precision": "bf16", "gradient_checkpointing": True},
        "rollout": {"group_size": 4, "max_new_tokens": 8192, "max_prompt_tokens": 1024},
        "train": {"prompts_per_step": 512, "mini_batches": 4},
    }
    for k, v in over.items():
        raw[k] = {**raw[k], **v}
    return build_experiment(raw).runs[0]


def test_misfits_are_refused_naming_the_field_to_change():
    with pytest.raises(UserError, match=r"weights \+ optimiser alone.*FSDP"):
        check_fits(_run(model={"path": "Qwen/Qwen3-14B"}), Launch(1, False), 80 * GB)
    with pytest.raises(UserError, match=r"set train.max_tokens_per_microbatch <= \d+"):
        check_fits(_run(rollout={"backend": {"type": "hf", "max_batch": 8}}), FSDP8, 80 * GB)
    with pytest.raises(UserError, match=r"set rollout.backend.max_batch <= \d+ \(now 256 rows\)") as e:
        check_fits(_run(train={"max_tokens_per_microbatch": 16384}), FSDP8, 80 * GB)
    assert "\n" not in str(e.value)
    fixed = _run(
        train={"max_tokens_per_microbatch": 16384}, rollout={"backend": {"type": "hf", "max_batch": 16}}
    )
    check_fits(fixed, FSDP8, 80 * GB)
    text = "\n".join(plan_lines(fixed, FSDP8, 80 * GB))
    for part in ("weights", "gradients", "optimiser", "activations", "without", "with", "log-prob chunk"):
        assert part in text
    assert "sampler KV cache" in text and "fits" in text


def test_bf16_master_weights_are_refused_unless_allowed():
    from ebpo_bench.config.spec import ModelConfig

    with pytest.raises(ValueError, match="model.allow_bf16_master_weights"):
        ModelConfig(path="Qwen/Qwen3-8B", dtype="bfloat16")
    assert ModelConfig(path="Qwen/Qwen3-8B", dtype="bfloat16", allow_bf16_master_weights=True)


def test_dry_run_prints_the_plan_and_stays_torch_free(tmp_path):
    code = (
        "import sys; from ebpo_bench.cli import main\n"
        "try: main(['run', 'specs/paper_table1.yaml', '--dry-run', '--accelerate-config', "
        "'configs/accelerate/8gpu_fsdp.yaml', '--gpu-mem', '80GB'])\n"
        "except SystemExit: pass\n"
        "assert 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "memory plan per rank (8 process(es), FSDP" in out.stdout and "fits" in out.stdout
