"""Task families: how a spec's ``task:`` block becomes prompts, one class per ``task.type``.

Registered in ``TASKS`` under the config's ``type`` and built as ``cls(task_cfg)``; every consumer
(the prompt stream, the pre-pass, held-out evaluation) dispatches through ``task_family(cfg)``, never on
the type's name. A family offers:

- ``pool(data_cfg)``: the finite list of training ``Example``s that sorted orders and the pre-pass use;
- ``generator()``: an endless source with ``batch(step, n, seed, levels)`` (the synthetic task), or None
  when the family is a fixed pool;
- ``heldout()``: held-out sets graded like the training reward (name -> examples; may be empty).

Adding a task family: its config class in ``config/spec.py``'s task union, its class here, one test.
"""

from __future__ import annotations

from typing import Any

from ebpo_bench.data.tasks.base import TASKS, Example


@TASKS.register("synthetic")
class SyntheticFamily:
    """The embedded arithmetic task: an endless generator with held-out sets per difficulty level."""

    def __init__(self, cfg: Any) -> None:
        from ebpo_bench.data.tasks.synthetic import SyntheticTask

        self.cfg, self.task = cfg, SyntheticTask(topics=tuple(cfg.topics), seed=cfg.seed)

    def pool(self, data_cfg: Any) -> list[Example]:
        """``pool_size`` draws with unique ids, from the task seed only (not the training seed), so every
        seed and arm sorts the same prompts and one difficulty pre-pass serves them all."""
        seen: dict[str, Example] = {}
        for e in self.task.train_examples(data_cfg.pool_size, levels=list(self.cfg.train_levels), rng_seed=0):
            seen.setdefault(e.id, e)  # small levels repeat problems; a pool entry is a distinct prompt
        return list(seen.values())

    def generator(self) -> Any:
        return self.task

    def heldout(self) -> dict[str, list[Example]]:
        return {
            f"level{lv}": self.task.eval_split(lv, self.cfg.eval_per_level) for lv in self.cfg.eval_levels
        }


@TASKS.register("file")
class FileFamily:
    """Problems from a local JSON/JSONL/parquet file, rendered with the task's template."""

    def __init__(self, cfg: Any) -> None:
        self.cfg = cfg

    def _kw(self) -> dict:
        from ebpo_bench.data.tasks import files

        c = self.cfg
        template = {"boxed": files.BOXED_TEMPLATE, "dapo": files.DAPO_TEMPLATE, "raw": "{problem}"}[
            c.template
        ]
        return dict(
            prompt_field=c.prompt_field,
            answer_field=c.answer_field,
            id_field=c.id_field,
            template=template,
            max_examples=c.max_examples,
        )

    def pool(self, data_cfg: Any) -> list[Example]:
        from ebpo_bench.data.tasks import files

        return files.load_examples(self.cfg.path, **self._kw())

    def generator(self) -> None:
        return None

    def heldout(self) -> dict[str, list[Example]]:
        return {}


@TASKS.register("hf")
class HFFamily(FileFamily):
    """Problems from a hub dataset (``datasets``), rendered with the task's template."""

    def pool(self, data_cfg: Any) -> list[Example]:
        from ebpo_bench.data.tasks import files

        return files.load_hf(self.cfg.path, self.cfg.split, **self._kw())
