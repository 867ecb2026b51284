"""The update phase: PPO epochs over mini-batches, each split into micro-batches under a token budget.

Each rank's rollouts (B = P_local x G rows) are shuffled in units (whole groups with
``train.shared_prefix``, else rows) into ``train.mini_batches`` mini-batches; one optimiser step per
mini-batch. A mini-batch is split into micro-batches of whole units whose padded size
rows x (prompt width + response width) stays within ``train.max_tokens_per_microbatch``: units are
sorted by length, longest first, and packed greedily (a unit longer than the budget goes alone).
Gradients accumulate over the micro-batches (no DDP all-reduce until the last one), then one
clip + step. Ranks may pack different numbers of micro-batches; the shorter ones add zero-weight
passes so that every rank runs as many forward/backward passes (FSDP's collectives need that).
When one whole group exceeds the budget, rows are shuffled and split instead of groups (each
prompt then forwarded per row, as without ``train.shared_prefix``).

Exactness: every micro-batch's loss is normalised by the *mini-batch's* totals
(``losses.MiniBatchTotals``): token_mean by its valid tokens, seq_mean_token_mean by its non-empty
sequences, the Dr.GRPO constant normaliser by its rows x C. The micro-batch losses then sum to the
one-pass loss and the gradient does not depend on the split (tested to 1e-5 in fp32). Deviation:
Clip-Cov / KL-Cov select tokens by covariance per micro-batch (``surrogates.py``), as verl does.

Logged statistics are combined over micro-batches: losses summed (they are parts of one loss),
``ratio_max`` maxed, every other statistic averaged weighted by the micro-batch's valid tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from ebpo_bench.rollout import RolloutBatch
from ebpo_bench.train import losses
from ebpo_bench.train.logprobs import response_logprobs

_SUMMED = ("loss/total", "loss/pg_loss")
_MAXED = ("loss/ratio_max",)


def update(t: Any, batch: RolloutBatch, adv: torch.Tensor, step: int) -> dict[str, float]:
    """PPO-clip updates over mini-batches of the local rollouts; returns averaged statistics.

    With ``train.shared_prefix`` (and no gradient checkpointing) mini-batches are shuffled whole
    groups, so each prompt is forwarded once per group (``logprobs.grouped_logprobs``); otherwise
    shuffled rows. With ``loss.tis`` the trainer's own log-probs before the update replace the
    sampler's in the ratio, and min(pi_trainer / pi_sampler, cap) weights each token.
    """
    run = t.run
    n = adv.shape[0]
    gen = torch.Generator().manual_seed(run.seed * 100_003 + step)
    unit = run.rollout.group_size if shared_prefix(run, n // run.rollout.group_size) else 1  # rows per unit
    budget = run.train.max_tokens_per_microbatch
    if (
        unit > 1
        and budget is not None
        and unit * int((batch.prompt_mask.sum(1) + batch.lengths).max()) > budget
    ):
        unit = 1  # a whole group would exceed the budget: shuffle and split rows (no shared prefix)
    old, weights = proximal_logprobs(t, batch, unit) if run.loss.tis.enabled else (batch.old_logprobs, None)
    sums: dict[str, float] = {}
    count = 0
    t.model.train()
    for _ in range(run.train.ppo_epochs):
        order = torch.randperm(n // unit, generator=gen)
        per = n // unit // run.train.mini_batches
        for k in range(run.train.mini_batches):
            idx = (order[k * per : (k + 1) * per].unsqueeze(1) * unit + torch.arange(unit)).reshape(-1)
            stats = minibatch_step(t, batch, adv, idx, old, weights, unit)
            for key, v in stats.items():
                sums[key] = sums.get(key, 0.0) + v
            count += 1
    out = {k: v / count for k, v in sums.items()}
    out["train/lr"] = float(t.sched.get_last_lr()[0])
    t.sched.step()
    t.opt.zero_grad(set_to_none=True)  # no gradient memory held through the next rollout
    return out


def shared_prefix(run: Any, groups: int) -> bool:
    """Whether an update over ``groups`` local groups can forward each prompt once per group
    (``logprobs.py``)."""
    return (
        run.train.shared_prefix
        and not run.model.gradient_checkpointing
        and run.rollout.group_size > 1
        and groups % run.train.mini_batches == 0
    )


def micro_batches(
    batch: RolloutBatch, idx: torch.Tensor, unit: int, budget: int | None
) -> list[torch.Tensor]:
    """Split the rows ``idx`` (whole units of ``unit`` consecutive rows) into micro-batches.

    The cost of a micro-batch is rows x (longest prompt + longest response) among them, its padded
    size; units are taken longest first and packed while the cost stays within ``budget``.
    None: one micro-batch, ``idx`` as given.
    """
    if budget is None:
        return [idx]
    units = idx.reshape(-1, unit)
    lens = (batch.prompt_mask.sum(1) + batch.lengths)[units].amax(1)  # (units,)
    parts, cur, width = [], [], 0
    for u in torch.argsort(lens, descending=True, stable=True).tolist():
        w = max(width, int(lens[u]))
        if cur and (len(cur) + 1) * unit * w > budget:
            parts.append(torch.cat(cur))
            cur, w = [], int(lens[u])
        cur.append(units[u])
        width = w
    parts.append(torch.cat(cur))
    return parts


def proximal_logprobs(t: Any, batch: RolloutBatch, unit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncated IS: the trainer's log-probs (B, T) before the update, and min(e^(old − sampler), cap)
    (B, T)."""
    run, n = t.run, batch.response_ids.shape[0]
    width = int(batch.lengths.max().clamp(min=1))
    budget = run.train.max_tokens_per_microbatch
    if budget is None:  # as many rows at once as one mini-batch
        budget = (n // run.train.mini_batches) * (batch.prompt_ids.shape[1] + width)
    old = torch.zeros_like(batch.old_logprobs)
    t.model.eval()
    with torch.no_grad():
        for idx in micro_batches(batch, torch.arange(n), unit, budget):
            lp, _ = response_logprobs(
                t.model, batch, idx, width, t.acc.device, run.rollout.temperature, False, unit,
                chunk=run.train.logprob_chunk_tokens,
            )  # fmt: skip
            old[idx, :width] = lp.float().cpu()
    mask = batch.response_mask
    old = old * mask
    weights = torch.exp((old - batch.old_logprobs).clamp(max=20)).clamp(max=run.loss.tis.cap) * mask
    return old, weights


def minibatch_step(
    t: Any,
    batch: RolloutBatch,
    adv: torch.Tensor,
    idx: torch.Tensor,
    old: torch.Tensor,
    is_weights: torch.Tensor | None,
    unit: int,
) -> dict[str, float]:
    """One optimiser step on the mini-batch ``idx``: accumulate its micro-batches, clip, step."""
    t.opt.zero_grad()
    out = accumulate(t, batch, adv, idx, old, is_weights, unit)
    gnorm = t.acc.clip_grad_norm_(t.model.parameters(), t.run.train.grad_clip)
    t.opt.step()
    out["train/grad_norm"] = float(gnorm)
    return out


def accumulate(
    t: Any,
    batch: RolloutBatch,
    adv: torch.Tensor,
    idx: torch.Tensor,
    old: torch.Tensor,
    is_weights: torch.Tensor | None,
    unit: int,
) -> dict[str, float]:
    """Backward over every micro-batch of ``idx`` (gradients add up in ``.grad``); combined statistics."""
    m = batch.response_mask[idx]
    lengths = m.sum(1)
    totals = losses.MiniBatchTotals(float(lengths.sum()), float((lengths > 0).sum()), int(idx.numel()))
    parts = micro_batches(batch, idx, unit, t.run.train.max_tokens_per_microbatch)
    real = len(parts)
    # every rank must run as many forward/backward passes (FSDP collectives): pad with zero-weight repeats
    parts += [parts[-1]] * (_max_over_ranks(t.acc, real) - real)
    stats: list[tuple[float, dict[str, float]]] = []
    for k, mb in enumerate(parts):
        last = k == len(parts) - 1
        with t.acc.no_sync(t.model) if not last else _nullcontext():
            st = microbatch_backward(
                t, batch, adv, mb, old, is_weights, unit, totals, 1.0 if k < real else 0.0
            )
        if k < real:
            stats.append((float(batch.response_mask[mb].sum()) / max(totals.tokens, 1.0), st))
    out: dict[str, float] = {}
    for key in stats[0][1]:
        vals = [(w, s[key]) for w, s in stats]
        if key in _SUMMED:
            out[key] = sum(v for _, v in vals)
        elif key in _MAXED:
            out[key] = max(v for _, v in vals)
        else:
            out[key] = sum(w * v for w, v in vals) if totals.tokens > 0 else vals[0][1]
    return out


def microbatch_backward(
    t: Any,
    batch: RolloutBatch,
    adv: torch.Tensor,
    idx: torch.Tensor,
    old: torch.Tensor,
    is_weights: torch.Tensor | None,
    unit: int,
    totals: losses.MiniBatchTotals,
    scale: float = 1.0,
) -> dict[str, float]:
    """Forward + backward of one micro-batch; its loss is normalised by the mini-batch's ``totals``
    (``scale`` 0: a padding pass that adds nothing to the gradient)."""
    run, acc, L = t.run, t.acc, t.run.loss
    width = int(batch.lengths[idx].max().clamp(min=1))  # trim padding the micro-batch does not use
    mask = batch.response_mask[idx][:, :width].to(acc.device)
    bonus, temp, chunk = L.entropy_coef > 0, run.rollout.temperature, run.train.logprob_chunk_tokens
    logp, ent = response_logprobs(
        t.model, batch, idx, width, acc.device, temp, True if bonus else "detached", unit, chunk=chunk
    )
    ref = None
    if t.ref_model is not None:
        with torch.no_grad():
            ref, _ = response_logprobs(
                t.ref_model, batch, idx, width, acc.device, temp, False, unit, chunk=chunk
            )
    w = None if is_weights is None else is_weights[idx][:, :width].to(acc.device)
    inputs = losses.LossInputs(
        logp,
        old[idx][:, :width].to(acc.device),
        adv[idx].to(acc.device),
        mask,
        ref_logp=ref,
        entropy=ent if bonus else None,
        is_weights=w,
        totals=totals,
    )
    loss, st = losses.policy_loss(inputs, L)
    acc.backward(loss * scale if scale != 1.0 else loss)
    out = {f"loss/{k}": float(v) for k, v in st.items()}
    out["loss/total"] = float(loss.detach())
    out["train/entropy"] = float((ent.detach() * mask).sum() / mask.sum().clamp(min=1))
    if w is not None:
        out.update(tis_stats(w, mask, old[idx][:, :width] - batch.old_logprobs[idx][:, :width], L.tis.cap))
    return out


def tis_stats(w: torch.Tensor, mask: torch.Tensor, diff: torch.Tensor, cap: float) -> dict[str, float]:
    """Over valid tokens: mean IS weight, fraction at the cap, mean |log pi_trainer − log pi_sampler|."""
    m = mask.float()
    n = m.sum().clamp(min=1)
    return {
        "tis/weight_mean": float((w * m).sum() / n),
        "tis/capped_frac": float(((w >= cap) * m).sum() / n),
        "tis/logp_abs_diff": float((diff.abs().to(m.device) * m).sum() / n),
    }


def _max_over_ranks(acc: Any, n: int) -> int:
    """The largest ``n`` over all ranks (``n`` itself in one process)."""
    if getattr(acc, "num_processes", 1) <= 1:
        return n
    return int(acc.gather(torch.tensor([n], device=acc.device)).max())


def _nullcontext():
    import contextlib

    return contextlib.nullcontext()
