"""What a prompt is (``Example``) and the registry of task families (``TASKS``), below every task module."""

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
