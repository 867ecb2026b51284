"""The ``log:`` section of a spec: progress lines without a terminal and experiment trackers.

Nothing here changes what is trained or evaluated, so ``log`` is outside the spec hash
(``load.NOT_HASHED``): changing it never makes ``run`` refuse a finished run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ebpo_bench.config.base import Cfg


class LogConfig(Cfg):
    """Console progress and experiment tracking (accelerate's tracker API)."""

    every: int = Field(
        10,
        ge=1,
        description="Without a terminal (SLURM log, nohup, CI): one plain progress line every N steps.",
    )
    trackers: list[Literal["tensorboard", "wandb"]] = Field(
        default_factory=list,
        description="Trackers that receive every metrics row and the run's config (optional extras: "
        "`pip install -e '.[tensorboard]'` / `'.[wandb]'`).",
    )
    project: str | None = Field(None, description="Tracker project name (default: the experiment name).")
    dir: str | None = Field(None, description="Tracker files (default: <run dir>/trackers).")
    wandb_mode: Literal["offline", "online"] = Field(
        "offline", description="W&B mode; 'offline' writes locally (`wandb sync` uploads later)."
    )
