"""The trainer's log-probs of sampled responses, with the prompt forwarded once per group.

Every group is G responses to one prompt, so a plain forward over ``[prompt, response]`` rows
computes each prompt's activations G times. ``response_logprobs`` with ``group_size = G`` runs
the prompt once per group (with the KV cache on), repeats the cache G times and runs only the
responses on top of it; gradients flow back through the repeated cache into the single prompt
pass. The log-probs equal the plain path's up to float rounding (tested: < 1e-5 in fp32), and
the forward/backward work drops by the prompt's share of the tokens times (G − 1) / G — about
half on the quickstart (24-token prompts, 12-token responses, G = 4).

The vocabulary-sized part never exists as one (B, T, V) fp32 tensor: the model is run for its final
hidden states only, and ``headlogp.head_logprobs`` computes log-probs and entropies in chunks of
``chunk`` positions (values and gradients as the plain log-softmax path, tested). Models whose head
is not a bias-free linear layer (or that soft-cap logits) take the plain path.

Deliberate limits: the shared path needs the model's KV cache, so it is off under gradient
checkpointing (transformers turns the cache off there); rows must come in whole groups of G
consecutive rows, which the trainer arranges by shuffling groups, not rows, into mini-batches
(as verl's default contiguous mini-batches do).
"""

from __future__ import annotations

from typing import Any

import torch

from ebpo_bench.train import losses
from ebpo_bench.train.headlogp import head_logprobs

#: positions per chunk of the LM head when a caller gives none (about 2 x 1024 x V x 4 B extra memory)
DEFAULT_CHUNK = 1024


def sequence_logprobs(
    model,
    ids,
    attn,
    prompt_width: int,
    temperature: float,
    with_entropy: bool | str,
    chunk: int = DEFAULT_CHUNK,
):
    """Log-probs (B, T) of the response tokens ``ids[:, prompt_width:]`` and per-token entropy (B, T) or None.

    ``ids`` / ``attn`` are (B, Tp + T) with left-padded prompts. ``with_entropy``: False (no
    entropy), True (entropy with gradient, for an entropy bonus) or "detached" (for logging only).
    """
    pos = (attn.cumsum(1) - 1).clamp(min=0)  # left padding: positions must start at each prompt's first token
    targets = ids[:, prompt_width:]
    if not _chunked_ok(model):
        logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits
        return _from_logits(logits[:, prompt_width - 1 : -1], targets, temperature, with_entropy)
    h, _ = _forward_hidden(model, input_ids=ids, attention_mask=attn, position_ids=pos)
    return _from_hidden(model, h[:, prompt_width - 1 : -1], targets, temperature, with_entropy, chunk)


def grouped_logprobs(
    model,
    prompt_ids,
    prompt_mask,
    response_ids,
    response_mask,
    group_size: int,
    temperature: float,
    with_entropy: bool | str,
    chunk: int = DEFAULT_CHUNK,
):
    """As ``sequence_logprobs`` for rows in whole groups, forwarding each group's prompt once.

    Args:
        prompt_ids, prompt_mask: (P, Tp) one left-padded prompt per group.
        response_ids, response_mask: (P·G, T) responses, group-major (row p·G + g is sample g of prompt p).
        group_size: G.
    """
    G = group_size
    chunked = _chunked_ok(model)
    fwd = (lambda **kw: _forward_hidden(model, **kw)) if chunked else (lambda **kw: (None, model(**kw)))
    ppos = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    h1, first = fwd(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=ppos, use_cache=True)
    cache = first.past_key_values
    cache.batch_repeat_interleave(G)
    T = response_ids.shape[1]
    attn = torch.cat([prompt_mask.repeat_interleave(G, 0), response_mask.to(prompt_mask.dtype)], 1)
    rpos = ppos[:, -1:].repeat_interleave(G, 0) + 1 + torch.arange(T, device=ppos.device)
    h2, rest = fwd(
        input_ids=response_ids, attention_mask=attn, position_ids=rpos, past_key_values=cache, use_cache=True
    )
    # the prompt's last position predicts each response's first token; response positions predict the rest
    if chunked:
        h = torch.cat([h1[:, -1:].repeat_interleave(G, 0), h2[:, :-1]], 1)
        return _from_hidden(model, h, response_ids, temperature, with_entropy, chunk)
    logits = torch.cat([first.logits[:, -1:].repeat_interleave(G, 0), rest.logits[:, :-1]], 1)
    return _from_logits(logits, response_ids, temperature, with_entropy)


def response_logprobs(
    model,
    batch: Any,
    idx: torch.Tensor,
    width: int,
    device: Any,
    temperature: float,
    with_entropy: bool | str,
    group_size: int = 1,
    chunk: int = DEFAULT_CHUNK,
):
    """Log-probs (B, width) and entropy of rows ``idx`` of a ``RolloutBatch``, trimmed to ``width`` tokens.

    ``group_size`` > 1 takes the shared-prefix path: ``idx`` must list whole groups in order. ``chunk``:
    positions per LM-head chunk (``headlogp.py``).
    """
    pm = batch.prompt_mask[idx]
    first = int((pm.sum(0) > 0).nonzero()[0]) if pm.any() else 0  # drop columns that are padding in every row
    prompt, pm = batch.prompt_ids[idx][:, first:].to(device), pm[:, first:].to(device)
    resp = batch.response_ids[idx][:, :width].to(device)
    rmask = batch.response_mask[idx][:, :width].to(device)
    if group_size > 1:
        G = group_size
        return grouped_logprobs(model, prompt[::G], pm[::G], resp, rmask, G, temperature, with_entropy, chunk)
    ids = torch.cat([prompt, resp], 1)
    attn = torch.cat([pm, rmask.long()], 1)
    return sequence_logprobs(model, ids, attn, prompt.shape[1], temperature, with_entropy, chunk)


def _core(model):
    """The transformers model under a DDP / compile wrapper (FSDP2 shards in place: no wrapper)."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def _forward_hidden(model, **kw):
    """Run ``model`` (through its DDP wrapper, so gradient sync still works) for the final hidden states
    (B, T, H) only: ``logits_to_keep`` = no position, the decoder's output caught by a forward hook.
    Under FSDP2 the root module (embeddings, final norm, LM head) is not resharded after forward, so
    the head weight read next is the gathered one."""
    core = _core(model)
    box: dict = {}

    def keep(_m, _a, out):
        box["h"] = out[0] if isinstance(out, tuple) else out.last_hidden_state

    handle = core.get_decoder().register_forward_hook(keep)
    try:
        dev = kw["input_ids"].device
        out = model(**kw, logits_to_keep=torch.zeros(0, dtype=torch.long, device=dev))
    finally:
        handle.remove()
    return box["h"], out


def _chunked_ok(model) -> bool:
    """The chunked head applies to a bias-free linear LM head with no logit soft-capping."""
    core = _core(model)
    head = core.get_output_embeddings() if hasattr(core, "get_output_embeddings") else None
    return (
        head is not None
        and getattr(head, "bias", None) is None
        and hasattr(core, "get_decoder")
        and not getattr(core.config, "final_logit_softcapping", None)
    )


def _from_hidden(model, h, targets, temperature: float, with_entropy: bool | str, chunk: int):
    """``_from_logits`` from (B, T, H) final hidden states through the chunked LM head."""
    weight = _core(model).get_output_embeddings().weight
    return head_logprobs(h, weight, targets, temperature, with_entropy, chunk)


def _from_logits(logits, targets, temperature: float, with_entropy: bool | str):
    """Token log-probs (B, T) and entropy from one (B, T, V) log-softmax: at a 150k vocabulary the
    logits are the update's largest tensor, so a second normalisation pass would double it."""
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp_all.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)
    if not with_entropy:
        return logp, None
    if with_entropy == "detached":
        with torch.no_grad():
            return logp, losses.entropy_from_logp(logp_all.detach())
    return logp, losses.entropy_from_logp(logp_all)
