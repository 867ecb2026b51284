"""Memory planner (torch-free): what one rank holds during a run, against the GPU it runs on.

``ebpo-bench run SPEC --dry-run`` prints ``plan_lines`` per distinct model/memory setting, and
``run`` refuses a spec whose plan exceeds the GPU (``check_fits``: one line naming the field to
change and a value that fits). Model shapes come from ``KNOWN_MODELS`` (layers L, hidden H,
intermediate I, heads, kv heads, head dim d, vocabulary V), a local directory's ``config.json`` or
the tiny config. N = parameter count. Per rank, with S = world size under FSDP (else 1), m = bytes
of the master weights (4 for float32, 2 for bf16), c = bytes of compute (2 under bf16 mixed
precision, else m), R = rows, T_tok = tokens:

    weights        N m / S  (+ FSDP: embeddings/head and 2 gathered layers in c; + DDP/1 process
                   with autocast: a bf16 copy of the weights, N c, autocast's weight cache)
    gradients      N m / S                    (freed between updates: zero_grad(set_to_none))
    optimiser      2 N m / S                  (AdamW exp_avg, exp_avg_sq in the parameter dtype)
    reference      N c / S                    (kl_coef > 0; an inference copy; + FSDP: gathered parts)
    activations    T_tok c L (8H + 2 kv d + 4I)        one micro-batch, no checkpointing
                   T_tok c (L H + 8H + 2 kv d + 4I)     with gradient checkpointing (layer inputs
                                                        + one layer being recomputed)
    log-prob chunk 2 x chunk V 4 B + V H 4 B             (a chunk's log-softmax and softmax, as
                                                        headlogp.py allocates them, + its fp32
                                                        head-gradient accumulator)
    sampler KV     R (prompt_max + new_max) L 2 kv d c   (R = rows per generate call)
    sampler batch  6 R V 4 B                             (one step's logits, generate's fp32 copy,
                                                        the scaled scores, softmax, and the
                                                        recorder's log-softmax of this and the
                                                        previous step: measured on CPU)

Phases: update = weights + optimiser + reference + gradients + activations + chunk; rollout =
weights + optimiser + reference + KV + sampler batch. The total is the larger one. T_tok =
``train.max_tokens_per_microbatch``, else the rank's whole mini-batch, rows x (max_prompt_tokens +
max_new_tokens): the planner takes padded, worst-case lengths. Not counted: the CUDA context and
allocator fragmentation (keep ~10 % headroom; the check refuses above 90 % of the GPU), NCCL
buffers, evaluation (a separate phase that holds no optimiser state). Launch (processes, FSDP or
not) comes from ``accelerate launch``'s environment, else an accelerate config file, else 1 process.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebpo_bench.errors import UserError

GB = 1e9
#: share of the GPU the plan may fill; the rest is CUDA context, allocator slack and NCCL buffers
USABLE = 0.9


@dataclass(frozen=True)
class Shape:
    """A decoder-only transformer's sizes."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @property
    def params(self) -> int:
        H, d = self.hidden, self.head_dim
        attn = H * self.heads * d * 2 + H * self.kv_heads * d * 2
        layer = attn + 3 * H * self.intermediate + 2 * H
        return self.layers * layer + self.vocab * H * (1 if self.tied else 2) + H

    @property
    def layer_params(self) -> int:
        return (self.params - self.vocab * self.hidden * (1 if self.tied else 2)) // self.layers


_Q3 = dict(head_dim=128, vocab=151_936)
KNOWN_MODELS: dict[str, Shape] = {
    "Qwen/Qwen3-0.6B": Shape(28, 1024, 3072, 16, 8, tied=True, **_Q3),
    "Qwen/Qwen3-1.7B": Shape(28, 2048, 6144, 16, 8, tied=True, **_Q3),
    "Qwen/Qwen3-4B": Shape(36, 2560, 9728, 32, 8, tied=True, **_Q3),
    "Qwen/Qwen3-8B": Shape(36, 4096, 12288, 32, 8, tied=False, **_Q3),
    "Qwen/Qwen3-14B": Shape(40, 5120, 17408, 40, 8, tied=False, **_Q3),
    "meta-llama/Llama-3.1-8B": Shape(32, 4096, 14336, 32, 8, 128, 128_256, tied=False),
}
for _name in list(KNOWN_MODELS):  # base / instruct checkpoints have the same shapes
    KNOWN_MODELS[_name + ("-Instruct" if "llama" in _name else "-Base")] = KNOWN_MODELS[_name]


def model_shape(model: Any) -> Shape | None:
    """The shape of ``model`` (a spec's ModelConfig): tiny config, known id, or a local config.json."""
    if model.path == "tiny":
        t = model.tiny
        vocab = t.vocab_size or 260  # the byte tokenizer's 260 tokens
        return Shape(t.layers, t.hidden, t.intermediate, t.heads, t.heads, t.hidden // t.heads, vocab, True)
    if model.path in KNOWN_MODELS:
        return KNOWN_MODELS[model.path]
    cfg = Path(model.path) / "config.json"
    if cfg.is_file():
        c = json.loads(cfg.read_text())
        heads = c["num_attention_heads"]
        return Shape(
            c["num_hidden_layers"],
            c["hidden_size"],
            c["intermediate_size"],
            heads,
            c.get("num_key_value_heads") or heads,
            c.get("head_dim") or c["hidden_size"] // heads,
            c["vocab_size"],
            bool(c.get("tie_word_embeddings", False)),
        )
    return None


@dataclass(frozen=True)
class Launch:
    """How many processes share the run, and whether FSDP shards the model over them."""

    processes: int = 1
    fsdp: bool = False

    def describe(self) -> str:
        kind = "FSDP" if self.fsdp else ("DDP" if self.processes > 1 else "one process")
        return f"{self.processes} process(es), {kind}"


def launch_from(accelerate_config: str | Path | None = None) -> Launch:
    """The launch of this process (``accelerate launch`` sets WORLD_SIZE / ACCELERATE_USE_FSDP), else the
    accelerate config file given, else one process."""
    if "WORLD_SIZE" in os.environ:
        fsdp = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
        return Launch(int(os.environ["WORLD_SIZE"]), fsdp)
    if accelerate_config:
        import yaml

        c = yaml.safe_load(Path(accelerate_config).read_text()) or {}
        return Launch(int(c.get("num_processes", 1)), c.get("distributed_type") == "FSDP")
    return Launch()


def parse_size(text: str) -> float:
    """'80GB' / '80G' / '141 GiB' -> bytes. Raises UserError on anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(g|gb|gib|t|tb|tib)?\s*", str(text), re.IGNORECASE)
    if not m:
        raise UserError(f"--gpu-mem {text!r}: write a size such as 80GB or 141GB")
    unit = (m.group(2) or "gb").lower()
    scale = {"g": GB, "gb": GB, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}[unit]
    return float(m.group(1)) * scale


@dataclass(frozen=True)
class Plan:
    """Bytes per rank by component (see the module docstring)."""

    rows: dict[str, float]
    update: float
    rollout: float
    act_full: float
    act_ckpt: float
    per_token: float  # activation bytes per token with the spec's checkpointing setting
    kv_per_row: float
    sampler_rows: int
    mb_tokens: int

    @property
    def total(self) -> float:
        return max(self.update, self.rollout)


def plan(run: Any, launch: Launch) -> Plan | None:
    """The memory plan of one run on one rank; None when the model's shape is unknown."""
    s = model_shape(run.model)
    if s is None:
        return None
    mp = run.model.mixed_precision != "no"
    m = 2 if run.model.dtype == "bfloat16" else 4
    c = 2 if (mp or m == 2) else 4
    S = launch.processes if launch.fsdp else 1
    N, V, H, L = s.params, s.vocab, s.hidden, s.layers
    weights = N * m / S
    if launch.fsdp:
        weights += (V * H * (1 if s.tied else 2) + 2 * s.layer_params) * c
    elif mp:
        weights += N * c  # autocast's cached low-precision copy of each weight
    rows: dict[str, float] = {"weights": weights, "optimiser state (AdamW)": 2 * N * m / S}
    if run.loss.kl_coef > 0:  # inference copy in the compute dtype, sharded like the policy under FSDP
        gathered = (V * H * (1 if s.tied else 2) + 2 * s.layer_params) * c if launch.fsdp else 0
        rows["reference model"] = N * c / S + gathered
    rows["gradients"] = N * m / S
    layer_tok = c * (8 * H + 2 * s.kv_heads * s.head_dim + 4 * s.intermediate)
    local_rows = run.train.prompts_per_step * run.rollout.group_size // launch.processes
    width = run.rollout.max_prompt_tokens + run.rollout.max_new_tokens
    mb_rows = max(1, local_rows // run.train.mini_batches)
    mb_tokens = run.train.max_tokens_per_microbatch or mb_rows * width
    mb_tokens = max(min(mb_tokens, mb_rows * width), width)  # at least one row, at most the mini-batch
    act_full = mb_tokens * L * layer_tok
    act_ckpt = mb_tokens * (L * H * c + layer_tok)
    per_token = (L * H * c + layer_tok) if run.model.gradient_checkpointing else L * layer_tok
    rows["activations, one micro-batch"] = mb_tokens * per_token
    rows["log-prob chunk"] = 2 * min(run.train.logprob_chunk_tokens, mb_tokens) * V * 4 + V * H * 4
    max_batch = getattr(run.rollout.backend, "max_batch", local_rows)
    G = run.rollout.group_size
    sampler_rows = min(local_rows, max_batch if max_batch < G else max_batch // G * G)
    kv_per_row = width * L * 2 * s.kv_heads * s.head_dim * c
    rows["sampler KV cache"] = sampler_rows * kv_per_row
    rows["sampler batch (logits)"] = 6 * sampler_rows * V * 4
    static = rows["weights"] + rows["optimiser state (AdamW)"] + rows.get("reference model", 0.0)
    update = static + rows["gradients"] + rows["activations, one micro-batch"] + rows["log-prob chunk"]
    rollout = static + rows["sampler KV cache"] + rows["sampler batch (logits)"]
    return Plan(rows, update, rollout, act_full, act_ckpt, per_token, kv_per_row, sampler_rows, mb_tokens)


def _gb(x: float) -> str:
    return f"{x / GB:,.1f} GB" if x >= 0.1 * GB else f"{x / 2**20:,.1f} MiB"


def plan_lines(run: Any, launch: Launch, gpu_bytes: float) -> list[str]:
    """The dry run's table for one run: components, phases and the verdict against the GPU."""
    p = plan(run, launch)
    if p is None:
        return [f"memory plan: unknown shape for model.path {run.model.path!r} (add it to KNOWN_MODELS)"]
    s = model_shape(run.model)
    ck = "on" if run.model.gradient_checkpointing else "off"
    lines = [
        f"memory plan per rank ({launch.describe()}; {s.params / 1e9:.2f}B params, vocabulary {s.vocab:,}; "
        f"GPU {gpu_bytes / GB:,.0f} GB; ESTIMATE, ebpo_bench/config/memory.py)",
        "| component | per rank |",
        "|---|---|",
    ]
    for name, v in p.rows.items():
        extra = ""
        if name.startswith("activations"):
            extra = (
                f" ({p.mb_tokens:,} tokens; checkpointing {ck}: without {_gb(p.act_full)}, "
                f"with {_gb(p.act_ckpt)})"
            )
        elif name == "log-prob chunk":
            extra = f" ({run.train.logprob_chunk_tokens:,} positions)"
        elif name.startswith("sampler KV"):
            width = run.rollout.max_prompt_tokens + run.rollout.max_new_tokens
            extra = f" ({p.sampler_rows} rows x {width:,} tokens)"
        lines.append(f"| {name} | {_gb(v)}{extra} |")
    lines.append(f"| **update phase** | {_gb(p.update)} |")
    lines.append(f"| **rollout phase** | {_gb(p.rollout)} |")
    verdict = "fits" if p.total <= USABLE * gpu_bytes else "DOES NOT FIT"
    lines.append(f"| **total (larger phase)** | {_gb(p.total)} of {gpu_bytes / GB:,.0f} GB: {verdict} |")
    return lines


def check_fits(run: Any, launch: Launch, gpu_bytes: float) -> None:
    """Raise UserError, in one line naming the field to change, when ``run`` cannot fit the GPU."""
    p = plan(run, launch)
    if p is None:
        return
    room = USABLE * gpu_bytes
    if p.total <= room:
        return
    r = p.rows
    static = r["weights"] + r["optimiser state (AdamW)"] + r.get("reference model", 0.0)
    where = (
        f"{run.run_id}: needs {_gb(p.total)} per rank on a {gpu_bytes / GB:,.0f} GB GPU ({launch.describe()})"
    )
    if static + r["gradients"] + r["log-prob chunk"] > room:
        raise UserError(
            f"{where}; weights + optimiser alone do not fit: launch on more GPUs with FSDP "
            "(configs/accelerate/8gpu_fsdp.yaml) or choose a smaller model.path"
        )
    if p.update > room:
        free = room - static - r["gradients"] - r["log-prob chunk"]
        tokens = int(free // p.per_token)
        width = run.rollout.max_prompt_tokens + run.rollout.max_new_tokens
        if tokens >= width:
            raise UserError(f"{where}; set train.max_tokens_per_microbatch <= {tokens} (now {p.mb_tokens})")
        if not run.model.gradient_checkpointing:
            raise UserError(f"{where}; set model.gradient_checkpointing: true")
        raise UserError(
            f"{where}; one row does not fit: lower rollout.max_new_tokens or use more GPUs (FSDP)"
        )
    rows = int((room - static) // (p.kv_per_row + 24 * model_shape(run.model).vocab))
    raise UserError(f"{where}; set rollout.backend.max_batch <= {max(rows, 1)} (now {p.sampler_rows} rows)")


def memory_lines(runs: list[Any], gpu_mem: str, accelerate_config: str | Path | None = None) -> list[str]:
    """``plan_lines`` once per distinct plan among ``runs`` (arms that differ only in the estimator share
    one)."""
    gpu, launch = parse_size(gpu_mem), launch_from(accelerate_config)
    groups: dict[tuple, list[str]] = {}
    for r in runs:
        p = plan(r, launch)
        key = (r.model.path, None if p is None else tuple(round(v) for v in p.rows.values()))
        groups.setdefault(key, []).append(r.run_id)
    out: list[str] = []
    for ids in groups.values():
        run = next(r for r in runs if r.run_id == ids[0])
        more = f" and {len(ids) - 1} more" if len(ids) > 1 else ""
        out += ["", f"# {ids[0]}{more}", *plan_lines(run, launch, gpu)]
    return out


def check_runs(runs: list[Any], gpu_mem: str, accelerate_config: str | Path | None = None) -> None:
    """``check_fits`` for every run (UserError at the first that cannot fit)."""
    gpu, launch = parse_size(gpu_mem), launch_from(accelerate_config)
    for r in runs:
        check_fits(r, launch, gpu)
