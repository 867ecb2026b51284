"""Rollout backends: sample G responses per prompt and return token ids, masks and log-probs.

All backends fill the same ``RolloutBatch``; the trainer and the evaluator never know which one
produced it. Rows are prompt-major: row ``p * n + g`` is sample g of prompt p. Each engine is a class
registered in ``BACKENDS`` under its config's ``type`` (``ebpo_bench/config/rollout.py``), built as
``cls(model, tokenizer, cfg)`` with its options passed explicitly, and offering ``check_available()``
(a classmethod raising ``BackendUnavailable``) and optionally ``shutdown()`` (a classmethod releasing
process resources).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ebpo_bench.config.rollout import ENGINE_CONFIGS, engine_config
from ebpo_bench.models.prompts import encode_prompt, encode_prompts  # noqa: F401  (re-exported)
from ebpo_bench.registry import Registry


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: n per prompt, temperature (0 = greedy), nucleus mass, length cap."""

    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    logprobs: bool = True


@dataclass
class RolloutBatch:
    """Sampled responses for B = P * n rows.

    Attributes:
        prompt_ids: (B, Tp) left-padded prompt tokens.
        prompt_mask: (B, Tp) 1 on real prompt tokens.
        response_ids: (B, T) response tokens, padded after the end of each response.
        response_mask: (B, T) 1 on response tokens up to and including EOS.
        old_logprobs: (B, T) log-probs of the sampled tokens under the sampling policy at the
            sampling temperature (zeros where masked), or None when not requested.
        lengths: (B,) response lengths in tokens (mask sums).
        truncated: (B,) true where no EOS came before max_new_tokens.
        texts: B decoded responses (special tokens removed).
    """

    prompt_ids: Any
    prompt_mask: Any
    response_ids: Any
    response_mask: Any
    old_logprobs: Any
    lengths: Any
    truncated: Any
    texts: list[str]


class RolloutBackend(Protocol):
    """A sampling engine bound to the policy."""

    def generate(
        self, prompts: list[list[int]], params: SamplingParams, *, seed: int | None = None
    ) -> RolloutBatch:
        """Sample ``params.n`` responses for each tokenised prompt."""

    def sync_weights(self, model: Any) -> None:
        """Make the engine sample from ``model``'s current weights (no-op when they share memory)."""


BACKENDS: Registry = Registry("rollout backend")


class BackendUnavailable(RuntimeError):
    """A backend's engine is not installed; the message says what to install."""


def _engine_class(cfg: Any) -> Any:
    """The registered class of an engine config, importing its module (``cfg.module``) on first use."""
    if cfg.type not in BACKENDS:
        importlib.import_module(cfg.module)  # registers itself; vLLM itself is imported only on engine start
    return BACKENDS.get(cfg.type)


def require_backend(engine: Any) -> None:
    """Raise ``BackendUnavailable`` (one line, with the install command) when ``engine``'s library does not
    import; callers check before any work so a missing extra fails fast. ``engine``: a config or a name."""
    cfg = engine_config(engine) if isinstance(engine, str) else engine
    _engine_class(cfg).check_available()


def make_backend(engine: Any, model: Any, tokenizer: Any, **kwargs: Any) -> RolloutBackend:
    """Build the engine ``engine`` (its spec config, or a name for its defaults) on ``model``; ``kwargs``
    override config fields or pass engine-only switches (e.g. the HF sampler's ``share_prompt``).

    A name with no config class (a test double registered in ``BACKENDS``) is built as ``cls(model, tok,
    **kwargs)``.
    """
    if isinstance(engine, str) and engine not in ENGINE_CONFIGS:
        return BACKENDS.get(engine)(model, tokenizer, **kwargs)
    cfg = engine_config(engine) if isinstance(engine, str) else engine
    fields = {k: kwargs.pop(k) for k in list(kwargs) if k in type(cfg).model_fields}
    if fields:
        cfg = type(cfg).model_validate({**cfg.model_dump(), **fields})
    return _engine_class(cfg)(model, tokenizer, cfg, **kwargs)


def shutdown_engines() -> None:
    """Release every engine class's process resources (only engines whose module was imported)."""
    for name in BACKENDS.names():
        release = getattr(BACKENDS.get(name), "shutdown", None)
        if release is not None:
            release()


def left_pad(rows: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token rows as (B, Tp) ids left-padded with ``pad`` and the (B, Tp) mask of real tokens.

    Left padding puts every prompt's last token in column Tp − 1, where generation continues.
    """
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad] * (width - len(r)) + list(r) for r in rows], dtype=torch.long)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], dtype=torch.long)
    return ids, mask


def _pad_cat(tensors: list[torch.Tensor], value: float, left: bool) -> torch.Tensor:
    width = max(t.shape[1] for t in tensors)
    out = []
    for t in tensors:
        fill = torch.full((t.shape[0], width - t.shape[1]), value, dtype=t.dtype)
        out.append(torch.cat([fill, t] if left else [t, fill], 1))
    return torch.cat(out, 0)


def concat(parts: list[RolloutBatch], pad: int) -> RolloutBatch:
    """Stack batches row-wise, re-padding prompts on the left and responses on the right."""
    if len(parts) == 1:
        return parts[0]
    return RolloutBatch(
        prompt_ids=_pad_cat([p.prompt_ids for p in parts], pad, left=True),
        prompt_mask=_pad_cat([p.prompt_mask for p in parts], 0, left=True),
        response_ids=_pad_cat([p.response_ids for p in parts], pad, left=False),
        response_mask=_pad_cat([p.response_mask for p in parts], 0, left=False),
        old_logprobs=None
        if parts[0].old_logprobs is None
        else _pad_cat([p.old_logprobs for p in parts], 0, left=False),
        lengths=torch.cat([p.lengths for p in parts]),
        truncated=torch.cat([p.truncated for p in parts]),
        texts=[t for p in parts for t in p.texts],
    )


def take(batch: RolloutBatch, rows: list[int]) -> RolloutBatch:
    """The given rows of a batch (in that order)."""
    idx = torch.as_tensor(rows, dtype=torch.long)
    pick = lambda t: None if t is None else t[idx]  # noqa: E731
    return RolloutBatch(
        pick(batch.prompt_ids),
        pick(batch.prompt_mask),
        pick(batch.response_ids),
        pick(batch.response_mask),
        pick(batch.old_logprobs),
        pick(batch.lengths),
        pick(batch.truncated),
        [batch.texts[i] for i in rows],
    )
