"""The task layer: what a prompt is (``Example``) and the registry of task families.

A task turns a seed into ``Example``s: the exact prompt text the model sees and the gold answer the
math verifier compares against. Task families live in ``TASKS`` (``ebpo-bench ls tasks``); file
and hub data are loaded by ``ebpo_bench.data.tasks.files``. This package never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from ebpo_bench.registry import Registry


@dataclass(frozen=True)
class Example:
    """One problem.

    Attributes:
        id: stable identifier, unique within its task (e.g. ``"add/L3/3+5+2+7"``, or a row index).
        prompt: the exact text fed to the model (before any chat template).
        answer: the gold answer string for the math verifier (no ``\\boxed{}``).
        level: difficulty level, when the task has levels.
        topic: sub-family (e.g. ``"add"``), when the task has topics.
    """

    id: str
    prompt: str
    answer: str
    level: int | None = None
    topic: str | None = None


#: task families by spec name
TASKS: Registry = Registry("task")


def task_names() -> list[str]:
    """Registered task family names, sorted."""
    return TASKS.names()


def task_family(cfg) -> object:
    """The task family of a spec's ``task`` config (``families.py``), built on that config."""
    return TASKS.get(cfg.type)(cfg)


# imported at the bottom: these modules import Example and TASKS from this (by now initialised) module
from ebpo_bench.data.tasks import families  # noqa: E402, F401  (registers the task families)
from ebpo_bench.data.tasks.synthetic import SyntheticTask  # noqa: E402

__all__ = ["Example", "SyntheticTask", "TASKS", "task_family", "task_names"]
