"""Checkpoints of a training run: save atomically, restore exactly.

A checkpoint is a folder ``checkpoints/step_NNNNNN`` holding the model and optimiser state keyed by
parameter name, the LR scheduler, the estimator's state, the prompt stream's cursor and every rank's
RNG state. Two layouts of the weights:

- one process or DDP: ``model.pt`` (a plain full state dict) and the optimiser inside ``state.pt``,
  written by rank 0 (every rank holds the full model anyway);
- FSDP: ``shards/model`` and ``shards/optim``, torch.distributed.checkpoint folders in which every
  rank writes its own shard (``__<rank>_0.distcp``) in parallel: nothing is gathered. Per rank at
  Qwen3-8B on 8 ranks: 8.2e9 x 12 B / 8 = 12.3 GB written by each rank, against 98 GB gathered into
  rank 0's CPU memory (and written by one process) for the full layout. ``model_weights`` consolidates
  the model shards into a plain state dict for evaluation and ``ebpo-bench export`` (one process,
  the model only: the optimiser shards are never read there).

Resume needs the same number of processes (checked), as before. It is
written under a temporary name and renamed, then ``checkpoints/latest`` is replaced atomically,
so a kill at any moment leaves the previous checkpoint intact. The newest ``train.keep_checkpoints``
are kept (the final one always: it is the newest). ``ebpo-bench export`` turns one into a
``save_pretrained`` folder (``export.py``).
On restore, metric and sample rows from steps at or after the checkpoint are dropped, so a
resumed run has no missing or duplicated rows.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebpo_bench.results import atomic_write_text, rewrite_jsonl


def save_checkpoint(t: Any, next_step: int) -> Path:
    """Save everything needed to continue at ``next_step``; return the checkpoint folder."""
    acc, root = t.acc, t.paths.checkpoints
    final = root / f"step_{next_step:06d}"
    tmp = root / f".tmp_step_{next_step:06d}"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    torch.save(rng_state(), tmp / f"rng_rank{acc.process_index}.pt")
    # every rank's own copy of the estimator state, so tests can check the ranks agree
    torch.save(t.estimator.state_dict(), tmp / f"estimator_rank{acc.process_index}.pt")
    model, opt = _model_and_optimizer(t)
    optim_sd = None
    if is_sharded(acc):
        save_sharded(model, opt, tmp / SHARDS)  # collective: every rank writes its own shard
    else:
        model_sd, optim_sd = full_states(model, opt)
        if acc.is_main_process:
            torch.save(model_sd, tmp / "model.pt")
    if acc.is_main_process:
        torch.save(
            {
                "optimizer": optim_sd,  # None: in shards/optim
                "scheduler": t.sched.state_dict(),
                "estimator": t.estimator.state_dict(),
                "source": t.source.state_dict(),
                "counters": dict(t.counters),
                "next_step": next_step,
                "world_size": acc.num_processes,
            },
            tmp / "state.pt",
        )
    acc.wait_for_everyone()
    if acc.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        atomic_write_text(root / "latest", final.name + "\n")
        keep = t.run.train.keep_checkpoints
        for old in sorted(root.glob("step_*"))[:-keep]:  # zero-padded names sort by step
            if old.name != final.name:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


SHARDS = "shards"


def is_sharded(acc: Any) -> bool:
    """FSDP runs write per-rank shards; one process and DDP write a full state dict."""
    return acc.distributed_type == "FSDP"  # accelerate's DistributedType is a str enum


def _model_and_optimizer(t: Any) -> tuple[Any, Any]:
    return t.acc.unwrap_model(t.model), getattr(t.opt, "optimizer", t.opt)


def full_states(model: Any, opt: Any) -> tuple[dict, dict]:
    """Full model and optimiser state dicts (keyed by parameter name) on the CPU of the main process."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(model, options=opts), get_optimizer_state_dict(model, opt, options=opts)


def load_full_states(model: Any, opt: Any, model_sd: dict, optim_sd: dict) -> None:
    """Inverse of ``full_states``."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    opts = StateDictOptions(full_state_dict=True)
    set_model_state_dict(model, model_sd, options=opts)
    set_optimizer_state_dict(model, opt, optim_sd, options=opts)


def save_sharded(model: Any, opt: Any, folder: Path) -> None:
    """Every rank writes its own shard of the model and of the optimiser state (a collective)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    dcp.save(get_model_state_dict(model), checkpoint_id=folder / "model")
    dcp.save(get_optimizer_state_dict(model, opt), checkpoint_id=folder / "optim")


def load_sharded(model: Any, opt: Any, folder: Path) -> None:
    """Inverse of ``save_sharded``: each rank reads the parts of the files its own shards cover."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    model_sd = get_model_state_dict(model)
    dcp.load(model_sd, checkpoint_id=folder / "model")
    set_model_state_dict(model, model_sd)
    optim_sd = get_optimizer_state_dict(model, opt)  # initialises AdamW's state lazily, to load into
    dcp.load(optim_sd, checkpoint_id=folder / "optim")
    set_optimizer_state_dict(model, opt, optim_sd)


def model_weights(ck: Path) -> dict:
    """The full model state dict of checkpoint folder ``ck`` (either layout), on the CPU.

    The sharded layout is consolidated in this process through a temporary ``torch.save`` file next to
    the checkpoint (the results filesystem already holds checkpoints of that size; /tmp may not).
    """
    if (ck / "model.pt").is_file():
        return torch.load(ck / "model.pt", map_location="cpu")
    shards = ck / SHARDS / "model"
    if not (shards / ".metadata").is_file():
        raise FileNotFoundError(f"{ck}: neither model.pt nor {SHARDS}/model (an incomplete checkpoint?)")
    import tempfile

    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    with tempfile.TemporaryDirectory(dir=ck.parent, prefix=".consolidate_") as tmp:
        dcp_to_torch_save(shards, Path(tmp) / "model.pt")
        return torch.load(Path(tmp) / "model.pt", map_location="cpu")


def has_weights(ck: Path) -> bool:
    return (ck / "model.pt").is_file() or (ck / SHARDS / "model" / ".metadata").is_file()


def latest_checkpoint(root: Path) -> Path | None:
    try:
        name = (root / "latest").read_text().strip()
    except FileNotFoundError:
        return None
    path = root / name
    return path if (path / "state.pt").exists() else None


def restore_checkpoint(t: Any) -> int:
    """Load the latest checkpoint into the trainer; return the step to continue from (0 if none)."""
    acc, paths = t.acc, t.paths
    ck = latest_checkpoint(paths.checkpoints)
    if ck is None:
        start = 0
    else:
        state = torch.load(ck / "state.pt", map_location="cpu", weights_only=False)
        if state["world_size"] != acc.num_processes:
            raise RuntimeError(
                f"{ck}: saved with {state['world_size']} processes, resuming with {acc.num_processes}; "
                "resume with the same number of processes"
            )
        model, opt = _model_and_optimizer(t)
        if (ck / SHARDS).is_dir():
            if not is_sharded(acc):
                raise RuntimeError(f"{ck}: written sharded (FSDP); resume it under the same FSDP launch")
            load_sharded(model, opt, ck / SHARDS)
        else:
            load_full_states(model, opt, torch.load(ck / "model.pt", map_location="cpu"), state["optimizer"])
        # the backend was built (and synced) before this restore: an engine with its own copy of the
        # weights (vllm) would otherwise sample from the initial weights until the first update
        t.backend.sync_weights(acc.unwrap_model(t.model))
        t.sched.load_state_dict(state["scheduler"])
        t.estimator.load_state_dict(state["estimator"])
        t.source.load_state_dict(state["source"])
        t.counters.update(state["counters"])
        set_rng_state(torch.load(ck / f"rng_rank{acc.process_index}.pt", weights_only=False))
        start = int(state["next_step"])
    if acc.is_main_process:
        for log in (paths.metrics, paths.samples):
            if log.exists():
                rewrite_jsonl(log, lambda row: int(row.get("step", -1)) < start)
    acc.wait_for_everyone()
    return start


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
