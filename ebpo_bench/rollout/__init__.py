"""Rollout backends: sample G responses per prompt and return token ids, masks and log-probs.

All backends fill the same ``RolloutBatch``; the trainer and the evaluator never know which one
produced it. Rows are prompt-major: row ``p * n + g`` is sample g of prompt p.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch

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

#: engine options per backend name, for callers that build backends as make_backend(name, model, tok)
#: (the trainer, evaluation.evaluate): the runner and the eval command set the spec's options here first
_OPTIONS: dict[str, dict[str, Any]] = {}


class BackendUnavailable(RuntimeError):
    """A backend's engine is not installed; the message says what to install."""


def set_backend_options(name: str, **options: Any) -> None:
    """Options every later ``make_backend(name, ...)`` in this process receives (explicit kwargs win)."""
    _OPTIONS[name] = dict(options)


def require_backend(name: str) -> None:
    """Raise ``BackendUnavailable`` (one line, with the install command) when ``name``'s engine does not
    import.

    Only 'vllm' has an optional engine; callers check before any work so a missing extra fails fast.
    """
    if name == "vllm":
        from ebpo_bench.rollout.vllm import import_vllm  # our module; it imports vLLM itself only here

        import_vllm()


def make_backend(name: str, model: Any, tokenizer: Any, **kwargs: Any) -> RolloutBackend:
    """Build backend ``name`` on ``model``; engine modules are imported only when their backend is asked
    for."""
    if name == "hf" and "hf" not in BACKENDS:
        from ebpo_bench.rollout import hf  # noqa: F401  (registers itself)
    if name == "vllm" and "vllm" not in BACKENDS:
        from ebpo_bench.rollout import vllm  # noqa: F401  (registers itself; imports vLLM only when an engine starts)
    return BACKENDS.get(name)(model, tokenizer, **{**_OPTIONS.get(name, {}), **kwargs})


def encode_prompt(tokenizer: Any, text: str, chat_template: bool) -> list[int]:
    """Token ids of a prompt, optionally wrapped in the tokenizer's chat template.

    One function for warm start, training and evaluation, so all three see identical prompts.
    """
    return encode_prompts(tokenizer, [text], chat_template)[0]


def encode_prompts(tokenizer: Any, texts: list[str], chat_template: bool) -> list[list[int]]:
    """``encode_prompt`` for many prompts in one tokenizer call (the same ids, without per-call overhead)."""
    if chat_template:
        texts = [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": t}], tokenize=False, add_generation_prompt=True
            )
            for t in texts
        ]
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


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
