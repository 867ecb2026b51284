"""Load the policy: the embedded tiny model (optionally warm-started), a local directory or a hub id.

The warm start is a short supervised phase on the synthetic task's easy levels. Its result is
cached on disk under a content hash of everything that determines it (model shape, warm-start
settings, task topics, this module's ``WARM_START_VERSION``), so every arm and seed of an
experiment, and every later experiment with the same settings, starts from the very same weights.
The cache root is ``$EBPO_BENCH_CACHE`` or ``~/.cache/ebpo_bench``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ebpo_bench.config.spec import ModelConfig, SyntheticTaskConfig
from ebpo_bench.models.prompts import encode_prompt

#: bump when the warm-start procedure changes, so stale caches are not reused
WARM_START_VERSION = 1


def cache_root() -> Path:
    return Path(os.environ.get("EBPO_BENCH_CACHE", Path.home() / ".cache" / "ebpo_bench"))


def quiet_transformers() -> None:
    """Our own progress bars and logs say what happens; transformers' per-load bars are noise here."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_policy(cfg: ModelConfig, task: Any, *, log: Callable[[str], None] = print) -> tuple[Any, Any]:
    """Return (model, tokenizer) for a run; the tokenizer pads on the left."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_transformers()

    if cfg.path == "tiny":
        src = ensure_warm_start(cfg, task, log=log) if cfg.warm_start else None
        if src is None:
            from ebpo_bench.models import tiny as tinymodel

            tok = tinymodel.build_tokenizer()
            t = cfg.tiny
            model = tinymodel.build_model(
                tok,
                layers=t.layers,
                hidden=t.hidden,
                heads=t.heads,
                intermediate=t.intermediate,
                vocab_size=t.vocab_size,
                seed=t.init_seed,
            )
            if cfg.gradient_checkpointing:
                model.gradient_checkpointing_enable()
            return model, tok
        path = str(src)
    else:
        path = cfg.path
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[cfg.dtype]
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    return model, tok


def warm_start_key(cfg: ModelConfig, task: SyntheticTaskConfig) -> str:
    blob = json.dumps(
        {
            "v": WARM_START_VERSION,
            "tiny": cfg.tiny.model_dump(exclude={"vocab_size"} if cfg.tiny.vocab_size is None else None),
            "warm": cfg.warm_start.model_dump() if cfg.warm_start else None,
            "topics": list(task.topics),
            "chat": cfg.chat_template,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def ensure_warm_start(
    cfg: ModelConfig, task_cfg: SyntheticTaskConfig, *, log: Callable[[str], None] = print
) -> Path:
    """Return the cached warm-started model directory, training it first if absent."""
    out = cache_root() / "warm_start" / warm_start_key(cfg, task_cfg)
    if (out / "warm_start.json").exists():
        return out
    log(f"warm start: training the tiny model ({cfg.warm_start.steps} supervised steps) -> {out}")
    model, tok, info = train_warm_start(cfg, task_cfg, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=".tmp-"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    (tmp / "warm_start.json").write_text(json.dumps(info, indent=2))
    try:
        os.replace(tmp, out)  # atomic: a concurrent or killed writer never leaves half a model
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    return out


def train_warm_start(
    cfg: ModelConfig, task_cfg: SyntheticTaskConfig, log: Callable[[str], None] = lambda m: None
) -> tuple[Any, Any, dict]:
    """Supervised training on prompt -> ``\\boxed{answer}<eos>``; loss on the answer tokens only.

    ``log`` gets a progress line (step, loss, seconds per step, ETA) ten times over the run.
    """
    from ebpo_bench.data.tasks.synthetic import SyntheticTask
    from ebpo_bench.models import tiny as tinymodel
    from ebpo_bench.progress import Rate, plain_line

    ws, t = cfg.warm_start, cfg.tiny
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(
        tok, layers=t.layers, hidden=t.hidden, heads=t.heads, intermediate=t.intermediate, seed=t.init_seed
    )
    task = SyntheticTask(topics=tuple(task_cfg.topics), seed=ws.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=ws.lr)
    rng = random.Random(ws.seed)
    model.train()
    t0, losses, rate = time.time(), [], Rate(0, ws.steps)
    with torch.random.fork_rng():
        torch.manual_seed(ws.seed)
        for step in range(ws.steps):
            examples = task.train_examples(
                ws.batch_size, levels=list(ws.levels), rng_seed=rng.randrange(2**31)
            )
            ids, labels, mask = _sft_batch(tok, examples, task, cfg.chat_template)
            loss = model(
                input_ids=ids,
                attention_mask=mask,
                labels=labels,
                position_ids=(mask.cumsum(1) - 1).clamp(min=0),
            ).loss
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if (step + 1) % max(1, ws.steps // 10) == 0 or step + 1 == ws.steps:
                fields = {"loss": sum(losses[-20:]) / len(losses[-20:])}
                log(plain_line("warm start", step + 1, ws.steps, fields, *rate(step + 1)))
    info = {
        "config": ws.model_dump(),
        "tiny": t.model_dump(),
        "final_loss": sum(losses[-20:]) / len(losses[-20:]),
        "seconds": round(time.time() - t0, 1),
        "version": WARM_START_VERSION,
    }
    return model, tok, info


def _sft_batch(tok, examples, task, chat: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    seqs, targets = [], []
    for ex in examples:
        p = encode_prompt(tok, ex.prompt, chat)
        a = tok(task.sft_target(ex), add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        seqs.append(p + a)
        targets.append([-100] * len(p) + a)
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, y) in enumerate(zip(seqs, targets)):  # left padding, as in generation
        ids[i, width - len(s) :] = torch.tensor(s)
        labels[i, width - len(s) :] = torch.tensor(y)
        mask[i, width - len(s) :] = 1
    return ids, labels, mask
