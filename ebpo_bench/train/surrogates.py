"""Policy-gradient surrogates: per-token losses (B, T) from the ratio and the advantages.

One function per ``loss.surrogate.type`` (``ebpo_bench/config/losses.py``), registered in ``SURROGATES``
and called by ``losses.policy_loss`` as ``fn(ratio, logp, adv, mask, cfg)``; each returns the per-token
loss before aggregation and its own detached () statistics. Shapes: ratio, logp, mask (B, T); adv (B, 1)
broadcast over tokens. With r = ratio = exp(logp - old_logp):

- ppo_clip:  pg = -min(r A, clip(r, 1 - clip_low, 1 + clip_high) A); for A < 0 also min(pg, clip_c |A|).
- clip_cov (Cui et al. 2025, arXiv 2505.22617; verl ``clip_cov``): pg = max(-r A, -clip(r) A) x corr, where
  cov = (A - mean A) (logp - mean logp) over the valid tokens of the mini-batch; among valid tokens not
  already clipped by PPO with cov_lb < cov < cov_ub, max(1, floor(clip_ratio x #valid)) are drawn at
  random (torch's global generator, seeded by the trainer) and get corr = 0 (no gradient); corr = 1
  elsewhere. No dual clip (as in verl).
- kl_cov (same paper; verl ``kl_cov``): pg = -r A, plus kl_coef |logp - old_logp| on the
  max(1, floor(kl_ratio x #valid)) valid tokens with the largest cov. No ratio clipping at all.

The covariance (its centring means) and the number of selected tokens are taken per *micro-batch*
on each rank, as verl does: with ``train.max_tokens_per_microbatch`` set, Clip-Cov / KL-Cov see
each micro-batch separately, so unlike the other losses their gradient depends on the split; with
no budget (one micro-batch per mini-batch) they see the whole mini-batch of the rank.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ebpo_bench.registry import Registry

Surrogate = Callable[[Tensor, Tensor, Tensor, Tensor, object], tuple[Tensor, dict[str, Tensor]]]
SURROGATES: Registry[Surrogate] = Registry("loss surrogate")


def masked_mean(x: Tensor, m: Tensor) -> Tensor:
    return (x * m).sum() / m.sum().clamp(min=1)


@SURROGATES.register("ppo_clip")
def ppo_clip(ratio: Tensor, logp: Tensor, adv: Tensor, m: Tensor, cfg) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO / DAPO clip-higher / dual clip; the clipped branches are constants, so clipped tokens get no
    gradient."""
    pg = -torch.minimum(ratio * adv, ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high) * adv)
    dual = torch.zeros_like(pg, dtype=torch.bool)
    if cfg.clip_c is not None:
        negative = adv < 0
        cap = -cfg.clip_c * adv  # = clip_c |A| where A < 0
        dual = negative & (pg > cap)
        pg = torch.where(negative, torch.minimum(pg, cap), pg)
    with torch.no_grad():
        stats = _clip_fracs(ratio, adv, m, cfg.clip_low, cfg.clip_high)
        stats["dual_clip_frac"] = masked_mean(dual.to(m.dtype), m)
    return pg, stats


def _covariance(adv: Tensor, logp: Tensor, m: Tensor) -> Tensor:
    """(B, T) centred advantage x centred log-prob over the valid tokens (detached; padding -inf)."""
    a = adv.detach().expand_as(logp)
    lp = logp.detach()
    cov = (a - masked_mean(a, m)) * (lp - masked_mean(lp, m))
    return cov.masked_fill(m <= 0, float("-inf"))


def _n_selected(ratio_share: float, m: Tensor) -> int:
    return max(int(ratio_share * float(m.sum())), 1)


@SURROGATES.register("clip_cov")
def clip_cov(ratio: Tensor, logp: Tensor, adv: Tensor, m: Tensor, cfg) -> tuple[Tensor, dict[str, Tensor]]:
    """Clip-Cov: PPO clip, then a random draw of in-band covariance tokens loses its gradient."""
    unclipped = -adv * ratio
    clipped = -adv * ratio.clamp(1.0 - cfg.clip_low, 1.0 + cfg.clip_high)
    by_ppo = (clipped > unclipped) & (m > 0)
    cov = _covariance(adv, logp, m)
    eligible = (cov > cfg.cov_lb) & (cov < cfg.cov_ub) & (m > 0) & ~by_ppo
    idx = eligible.reshape(-1).nonzero().squeeze(1)
    pick = idx[torch.randperm(idx.numel(), device="cpu").to(idx.device)[: _n_selected(cfg.clip_ratio, m)]]
    corr = torch.ones_like(ratio).reshape(-1).index_fill(0, pick, 0.0).reshape(ratio.shape)
    pg = torch.maximum(unclipped, clipped) * corr
    with torch.no_grad():
        stats = _clip_fracs(ratio, adv, m, cfg.clip_low, cfg.clip_high)
        stats["cov_clip_frac"] = masked_mean((corr == 0).to(m.dtype), m)
        stats["cov_eligible_frac"] = masked_mean(eligible.to(m.dtype), m)
    return pg, stats


@SURROGATES.register("kl_cov")
def kl_cov(ratio: Tensor, logp: Tensor, adv: Tensor, m: Tensor, cfg) -> tuple[Tensor, dict[str, Tensor]]:
    """KL-Cov: the plain ratio surrogate, with an |log ratio| penalty on the top-covariance tokens."""
    pg = -adv * ratio
    cov = _covariance(adv, logp, m).reshape(-1)
    k = min(_n_selected(cfg.kl_ratio, m), int((m > 0).sum()))
    top = cov.topk(k).indices if k > 0 else cov.new_zeros(0, dtype=torch.long)
    chosen = torch.zeros_like(cov, dtype=torch.bool).index_fill(0, top, True).reshape(pg.shape)
    abs_log_ratio = ratio.log().abs()  # ratio = exp(clamped log ratio), so this is finite
    pg = torch.where(chosen, pg + cfg.kl_coef * abs_log_ratio, pg)
    with torch.no_grad():
        stats = {
            "kl_cov_frac": masked_mean(chosen.to(m.dtype), m),
            "abs_log_ratio": masked_mean(abs_log_ratio.detach(), m),
        }
    return pg, stats


def _clip_fracs(ratio: Tensor, adv: Tensor, m: Tensor, low: float, high: float) -> dict[str, Tensor]:
    """Fractions of valid tokens where the lower (A < 0) / upper (A > 0) ratio clip is active."""
    return {
        "clip_frac_low": masked_mean(((adv < 0) & (ratio < 1.0 - low)).to(m.dtype), m),
        "clip_frac_high": masked_mean(((adv > 0) & (ratio > 1.0 + high)).to(m.dtype), m),
    }
