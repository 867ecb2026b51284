"""The task layer: what a prompt is (``Example``) and the registry of task families.

A task turns a seed into ``Example``s: the exact prompt text the model sees and the gold answer the
math verifier compares against. Task families live in ``TASKS`` (``ebpo-bench ls tasks``); file
and hub data are loaded by ``ebpo_bench.data.tasks.files``. This package never imports torch.
"""

from __future__ import annotations

from ebpo_bench.data.tasks import families  # noqa: F401  (registers the task families)
from ebpo_bench.data.tasks.base import TASKS, Example
from ebpo_bench.data.tasks.synthetic import SyntheticTask


def task_names() -> list[str]:
    """Registered task family names, sorted."""
    return TASKS.names()


def task_family(cfg) -> object:
    """The task family of a spec's ``task`` config (``families.py``), built on that config."""
    return TASKS.get(cfg.type)(cfg)


__all__ = ["Example", "SyntheticTask", "TASKS", "task_family", "task_names"]
