"""Training prompt streams: deterministic given (seed, position), resumable from a saved cursor.

Every rank of a multi-process run builds the same stream and draws the same prompts, then takes
its own slice; the cursor is part of each checkpoint ("data position"), so a resumed run sees
exactly the prompts the uninterrupted run would have seen.
"""

from __future__ import annotations

import random
from typing import Any

from .spec import DataConfig, FileTaskConfig, HFTaskConfig, SyntheticTaskConfig
from .tasks import Example


class PromptSource:
    """Draws batches of training ``Example``s in the order the spec's ``data`` block asks for."""

    def __init__(self, task_cfg: Any, data_cfg: DataConfig, seed: int, *, filter_fn=None) -> None:
        self.task_cfg, self.order, self.seed = task_cfg, data_cfg.order, seed
        self.cursor = 0
        self._perm: tuple[int, list[int]] = (-1, [])
        if isinstance(task_cfg, SyntheticTaskConfig):
            from .tasks.synthetic import SyntheticTask

            self.task = SyntheticTask(topics=tuple(task_cfg.topics), seed=task_cfg.seed)
            self.pool: list[Example] | None = None
        else:
            self.task = None
            self.pool = [e for e in load_pool(task_cfg) if filter_fn is None or filter_fn(e)]
            if not self.pool:
                raise ValueError(f"task {task_cfg.path}: no usable training examples")

    def next(self, n: int) -> list[Example]:
        """The next ``n`` prompts of the stream."""
        if self.task is not None:
            batch = self.task.batch(self.cursor, n, self.seed * 1_000_003 + self.task_cfg.seed, levels=list(self.task_cfg.train_levels))
            self.cursor += 1
            return batch
        out = [self._at(self.cursor + i) for i in range(n)]
        self.cursor += n
        return out

    def _at(self, i: int) -> Example:
        epoch, j = divmod(i, len(self.pool))
        if self.order == "fixed":
            return self.pool[j]
        if self._perm[0] != epoch:
            perm = list(range(len(self.pool)))
            random.Random(self.seed * 7919 + epoch).shuffle(perm)  # a new order each epoch, same on every rank
            self._perm = (epoch, perm)
        return self.pool[self._perm[1][j]]

    def state_dict(self) -> dict:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = int(state["cursor"])


def load_pool(task_cfg: FileTaskConfig | HFTaskConfig) -> list[Example]:
    from .tasks import files

    template = {"boxed": files.BOXED_TEMPLATE, "dapo": files.DAPO_TEMPLATE, "raw": "{problem}"}[task_cfg.template]
    kw = dict(
        prompt_field=task_cfg.prompt_field,
        answer_field=task_cfg.answer_field,
        id_field=task_cfg.id_field,
        template=template,
        max_examples=task_cfg.max_examples,
    )
    if isinstance(task_cfg, HFTaskConfig):
        return files.load_hf(task_cfg.path, task_cfg.split, **kw)
    return files.load_examples(task_cfg.path, **kw)
