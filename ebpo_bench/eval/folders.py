"""Where ``ebpo-bench eval`` writes: one folder per model, step, benchmarks and settings.

A run directory's evaluations go beside it (``RUN_DIR/evals/<tag>/``), where ``ebpo-bench report``
picks them up for that experiment; other models go to ``results/eval/<model>/<tag>/``.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name)


def eval_folder(model: str, model_name: str, names: list[str], settings: dict, **meta: Any) -> Path:
    """The default folder of one evaluation: ``RUN_DIR/evals/<tag>`` for a run directory (so ``report``
    finds it beside the run), else ``results/eval/<model>/<tag>``; the tag names the step, benchmarks
    and settings, plus a hash of everything that makes results differ."""
    step = meta.get("step")
    n = sorted(set(settings["n"].values()))
    benches = "+".join(names) if len(names) <= 3 else f"{len(names)}benchmarks"
    key = json.dumps({**settings, **meta, "benchmarks": names}, sort_keys=True, default=str)
    tag = (
        (f"step{step}_" if step is not None else "")
        + f"{benches}_n{'-'.join(map(str, n))}_t{settings['temperature']:g}_{settings['template']}_"
        + hashlib.sha256(key.encode()).hexdigest()[:8]
    )
    if (Path(model) / "spec.resolved.yaml").is_file():
        return Path(model) / "evals" / _safe(tag)
    return Path("results") / "eval" / _safe(model_name) / _safe(tag)


def run_step(model: str) -> int | None:
    """The training step of a run directory's latest checkpoint (None for other models)."""
    from ebpo_bench.train.checkpoint import latest_checkpoint

    path = Path(model)
    if not (path / "spec.resolved.yaml").is_file():
        return None
    ck = latest_checkpoint(path / "checkpoints")
    return int(ck.name.rsplit("_", 1)[-1]) if ck is not None else None
