"""``ebpo-bench export RUN_DIR [--step N] OUT_DIR``: a checkpoint as a consolidated ``save_pretrained``
folder.

Reads the run's ``spec.resolved.yaml`` for the model (the tiny config, a local directory or a hub id
whose config and tokenizer are in the local cache), builds the architecture from its config (no
weights are downloaded), loads the weights of ``checkpoints/step_N`` (``model.pt``, or the
per-rank shards of an FSDP run, consolidated in this process) and writes safetensors weights, ``config.json``,
``generation_config.json`` and the tokenizer, which ``AutoModelForCausalLM.from_pretrained`` and
``AutoTokenizer.from_pretrained`` load unchanged (tested by loading it back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ebpo_bench.config.spec import RunConfig
from ebpo_bench.errors import UserError
from ebpo_bench.train.checkpoint import has_weights, latest_checkpoint, model_weights


def skeleton(run: RunConfig) -> tuple[Any, Any]:
    """The run's model architecture with fresh weights, and its tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if run.model.path == "tiny":
        from ebpo_bench.models import tiny as tinymodel

        t, tok = run.model.tiny, tinymodel.build_tokenizer()
        shape = dict(layers=t.layers, hidden=t.hidden, heads=t.heads, intermediate=t.intermediate)
        return tinymodel.build_model(tok, vocab_size=t.vocab_size, seed=t.init_seed, **shape), tok
    config = AutoConfig.from_pretrained(run.model.path)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32), AutoTokenizer.from_pretrained(
        run.model.path
    )


def export_run(run_dir: Path, out_dir: Path, step: int | None = None) -> Path:
    """Write checkpoint ``step`` (default: the latest) of ``run_dir`` to ``out_dir``; return ``out_dir``."""
    import yaml

    spec = run_dir / "spec.resolved.yaml"
    if not spec.is_file():
        raise UserError(
            f"{run_dir}: no spec.resolved.yaml; RUN_DIR must be a run folder (results/EXP/ARM/seedN)"
        )
    run = RunConfig.model_validate(yaml.safe_load(spec.read_text()))
    root = run_dir / "checkpoints"
    ck = latest_checkpoint(root) if step is None else root / f"step_{step:06d}"
    if ck is None or not has_weights(ck):
        have = ", ".join(sorted(p.name for p in root.glob("step_*"))) or "none"
        raise UserError(
            f"{run_dir}: no checkpoint {'step ' + str(step) if step else ''} (have: {have}); pick --step"
        )
    model, tok = skeleton(run)
    model.load_state_dict(model_weights(ck))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tok.save_pretrained(out_dir)
    return out_dir
