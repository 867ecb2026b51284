"""What ``ebpo-bench ls`` lists: every name a spec may use, with its knobs (torch-free)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS
from ebpo_bench.config.losses import SURROGATE_CONFIGS
from ebpo_bench.config.rollout import ENGINE_CONFIGS
from ebpo_bench.config.spec import FileTaskConfig, HFTaskConfig, RewardConfig, SyntheticTaskConfig


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


def backends() -> list[str]:
    return [f"{name:<10} {_doc(cls)}  [{_knobs(cls)}]" for name, cls in ENGINE_CONFIGS.items()]


def losses() -> list[str]:
    return [f"{name:<10} {_doc(cls)}  [{_knobs(cls)}]" for name, cls in SURROGATE_CONFIGS.items()]


def _doc(cls: type) -> str:
    return " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())


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
        "losses": losses,
        "rewards": rewards,
        "benchmarks": benchmarks,
        "specs": specs,
    }
    return out
