"""Experiment trackers of a run (``log.trackers``) through accelerate's tracker API.

``accelerator_kwargs`` gives the ``Accelerator`` its ``log_with`` and project folder; ``start``
initialises the trackers with the run's resolved config (flattened to scalars, as TensorBoard's
hparams need); the trainer then calls ``acc.log(row, step=step)`` with every metrics.jsonl row, and
``finish`` closes them. W&B runs offline unless ``log.wandb_mode: online``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ebpo_bench.config.spec import RunConfig
from ebpo_bench.errors import UserError
from ebpo_bench.results import RunPaths

#: tracker name -> (module that must import, extra that installs it)
NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb")}


def tracker_dir(run: RunConfig, paths: RunPaths) -> Path:
    return Path(run.log.dir) / run.run_id if run.log.dir else paths.dir / "trackers"


def accelerator_kwargs(run: RunConfig, paths: RunPaths) -> dict[str, Any]:
    """``log_with`` and ``project_dir`` for ``Accelerator``; {} without trackers."""
    if not run.log.trackers:
        return {}
    for name in run.log.trackers:
        module, extra = NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise UserError(
                f"log.trackers: '{name}' needs the {module} package; pip install -e '.[{extra}]' "
                "or remove it from log.trackers"
            )
    return {"log_with": list(run.log.trackers), "project_dir": str(tracker_dir(run, paths))}


def start(acc: Any, run: RunConfig) -> None:
    """Initialise the trackers with the flattened resolved config (no-op without trackers)."""
    if not run.log.trackers:
        return
    init: dict[str, Any] = {}
    if "wandb" in run.log.trackers:
        init["wandb"] = {"mode": run.log.wandb_mode, "name": run.run_id, "dir": str(acc.project_dir)}
    project = run.log.project or run.name
    acc.init_trackers(project, config=flat_config(run.model_dump(mode="json")), init_kwargs=init)


def finish(acc: Any) -> None:
    """Close the trackers (not ``acc.end_training()``, which also tears down the process group that
    the runner still needs under ``accelerate launch``)."""
    for tracker in getattr(acc, "trackers", []):
        tracker.finish()


def flat_config(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"lr": 1e-4}}`` -> ``{"train/lr": 1e-4}``; lists and None become strings."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "/"))
        elif isinstance(v, bool | int | float | str):
            out[key] = v
        else:
            out[key] = str(v)
    return out


def progress_fields(row: dict) -> dict:
    """What the progress bar / log line shows of a metrics row."""
    return {
        "reward": row["train/reward_mean"],
        "acc": row["train/accuracy"],
        "loss": row.get("loss/total", float("nan")),
        "kl": row.get("loss/kl") if row.get("loss/kl") else row.get("loss/approx_kl_old", float("nan")),
        "ent": row.get("train/entropy", float("nan")),
    }
