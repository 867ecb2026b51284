"""Training prompt streams: deterministic given (seed, position), resumable from a saved cursor.

Every rank of a multi-process run builds the same stream and draws the same prompts, then takes
its own slice; the cursor is part of each checkpoint ("data position"), so a resumed run sees
exactly the prompts the uninterrupted run would have seen.

Orders (``data.order``): ``shuffle`` (a new seeded permutation per epoch), ``fixed`` (file order),
``difficulty`` (easy -> hard by pass rate, the same order every epoch; ebpo_bench/data/orderings.py)
and ``topic`` (topic-contiguous blocks, reshuffled per epoch). The synthetic task is an endless
generator: ``shuffle`` / ``fixed`` keep drawing from it as before, while ``difficulty`` / ``topic``
sort a finite pool of ``data.pool_size`` training problems drawn once from the task seed.
"""

from __future__ import annotations

import random
from typing import Any

from ebpo_bench.config.spec import DataConfig
from ebpo_bench.data.tasks import Example, task_family


class PromptSource:
    """Draws batches of training ``Example``s in the order the spec's ``data`` block asks for.

    Args:
        task_cfg: the run's task config.
        data_cfg: the run's ``data`` config.
        seed: training seed (shuffles differ per seed; a difficulty order does not, except in strata).
        filter_fn: keeps an example when true (e.g. prompt length).
        pass_rates: id -> pass rate for ``order: difficulty`` with ``estimator: prepass`` (the trainer
            reads them from the run's pre-pass file, ``orderings.prepass_file``).
    """

    def __init__(
        self,
        task_cfg: Any,
        data_cfg: DataConfig,
        seed: int,
        *,
        filter_fn=None,
        pass_rates: dict[str, float] | None = None,
    ) -> None:
        self.task_cfg, self.data_cfg, self.order, self.seed = task_cfg, data_cfg, data_cfg.order, seed
        self.cursor = 0
        self._perm: tuple[int, list[int]] = (-1, [])
        self._pass_rates = pass_rates
        self._curriculum: list[int] | None = None
        sorted_order = self.order in ("difficulty", "topic")
        family = task_family(task_cfg)
        # an endless generator (the synthetic task) streams fresh prompts unless an order sorts a pool
        self.task = None if sorted_order else family.generator()
        self.pool: list[Example] | None = None
        if self.task is None:
            self.pool = [e for e in family.pool(data_cfg) if filter_fn is None or filter_fn(e)]
        if self.pool is not None and not self.pool:
            raise ValueError(f"task {getattr(task_cfg, 'path', task_cfg.type)}: no usable training examples")

    def next(self, n: int) -> list[Example]:
        """The next ``n`` prompts of the stream."""
        if self.task is not None:
            batch = self.task.batch(
                self.cursor,
                n,
                self.seed * 1_000_003 + self.task_cfg.seed,
                levels=list(self.task_cfg.train_levels),
            )
            self.cursor += 1
            return batch
        out = [self._at(self.cursor + i) for i in range(n)]
        self.cursor += n
        return out

    def _at(self, i: int) -> Example:
        epoch, j = divmod(i, len(self.pool))
        if self.order == "fixed":
            return self.pool[j]
        if self.order == "difficulty":
            return self.pool[self._difficulty()[j]]
        if self._perm[0] != epoch:
            self._perm = (epoch, self._permutation(epoch))
        return self.pool[self._perm[1][j]]

    def _permutation(self, epoch: int) -> list[int]:
        if self.order == "topic":
            from ebpo_bench.data.orderings import topic_labels, topic_order

            if self._curriculum is None:  # labels are fixed; only the block order changes per epoch
                self._curriculum = topic_labels(self.pool, self.data_cfg.topic, self.task_cfg)
            return topic_order(self._curriculum, seed=self.seed * 7919 + epoch)
        perm = list(range(len(self.pool)))
        random.Random(self.seed * 7919 + epoch).shuffle(perm)  # a new order each epoch, same on every rank
        return perm

    def _difficulty(self) -> list[int]:
        if self._curriculum is None:
            from ebpo_bench.data.orderings import difficulty_order

            rates = self.pass_rates()
            missing = [e.id for e in self.pool if e.id not in rates]
            if missing:
                raise ValueError(
                    f"difficulty order: no pass rate for {len(missing)} prompts (e.g. {missing[0]}); "
                    "rerun the pre-pass (`ebpo-bench run` does it before training)"
                )
            d = self.data_cfg.difficulty
            self._curriculum = difficulty_order([rates[e.id] for e in self.pool], d.strata, seed=self.seed)
        return self._curriculum

    def pass_rates(self) -> dict[str, float]:
        """id -> pass rate used by ``order: difficulty`` (level proxy, given, or the registered pre-pass)."""
        if self._pass_rates is not None:
            return self._pass_rates
        if self.data_cfg.difficulty.estimator == "level":
            return level_pass_rates(self.pool)
        raise ValueError(
            "data.order 'difficulty' needs the pre-pass; run through `ebpo-bench run`, "
            "which computes it before training, or pass pass_rates="
        )

    def state_dict(self) -> dict:
        return {"cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = int(state["cursor"])


def task_pool(task_cfg: Any, data_cfg: DataConfig) -> list[Example]:
    """The finite prompt pool that sorted orders (and the pre-pass) work on."""
    return task_family(task_cfg).pool(data_cfg)


def level_pass_rates(pool: list[Example]) -> dict[str, float]:
    """A pass-rate proxy from the level label, ``1 / level`` (higher level = harder); not the paper's
    method."""
    if any(e.level is None for e in pool):
        raise ValueError(
            "difficulty.estimator 'level' needs examples with levels (the synthetic task); use 'prepass'"
        )
    return {e.id: 1.0 / e.level for e in pool}
