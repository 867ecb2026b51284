"""Group-baseline estimators: GRPO, GRPO with batch std, RLOO, REINFORCE++-baseline, OPO."""

from __future__ import annotations

import torch
from torch import Tensor

from ebpo_bench.estimators.base import _Base, var, whiten


class GRPO(_Base, name="grpo"):
    """GRPO: A = (r - mu_q) / (sigma_q + eps), sigma_q the group std with std_ddof (verl/TRL: 1).

    normalize_std=False gives A = r - mu_q (the Dr.GRPO advantage). Source: DeepSeekMath (arXiv 2402.03300);
    Dr.GRPO (arXiv 2503.20783). Edge cases: an all-equal group gets exactly 0; G = 1 raises
    ValueError (verl silently returns A = r). Stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        centred = r - r.mean(dim=1, keepdim=True)
        std = var(r, 1, self.cfg.std_ddof).sqrt()
        adv = centred / (std.unsqueeze(1) + self.cfg.eps) if self.cfg.normalize_std else centred
        return adv, {"group_std_mean": std.mean().item()}


class GRPOBatchNorm(_Base, name="grpo_bn"):
    """GRPO-BN: group-mean baseline, batch-level std. A = (r - mu_q) / (std_B + eps).

    std_B is the unbiased std over the whole batch of the residuals r - mu_q (std_of="residuals"; equals EBPO
    with S = 0) or of the raw rewards (std_of="rewards", TRL scale_rewards="batch"). Source: TRL GRPOTrainer;
    the EBPO authors' ``grpo_bn`` control. Edge cases: all-equal groups get 0; G = 1 raises ValueError.
    Stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        resid = r - r.mean(dim=1, keepdim=True)
        std = var(resid if self.cfg.std_of == "residuals" else r, None, 1).sqrt()
        return resid / (std + self.cfg.eps), {"batch_std": std.item()}


class RLOO(_Base, name="rloo"):
    """RLOO: A_i = r_i - mean_{j != i} r_j = G/(G-1) (r_i - mu_q).

    Source: Ahmadian et al. (arXiv 2402.14740); verl ``rloo_vectorized``. Edge cases: all-equal groups get 0;
    G = 1 raises ValueError (no leave-one-out sibling). No options, stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        G = r.shape[1]
        return (r - r.mean(dim=1, keepdim=True)) * (G / (G - 1)), {}


class ReinforcePPBaseline(_Base, name="reinforce_pp_baseline"):
    """REINFORCE++-baseline: x = r - mu_q, then A = (x - mean_B x) / (std_B x + eps) over the batch.

    With token_weighted and lengths given, mean_B/std_B weight each response by its token count L (verl
    whitens over valid tokens; Bessel factor sum L / (sum L - 1)), else each response counts once. Source: Hu
    (arXiv 2501.03262); verl ``reinforce_plus_plus_baseline``. Deviation: / (std + eps), not verl's *
    rsqrt(var + 1e-8). Edge cases: all-equal groups get -mean_B / (std_B + eps), not 0; G = 1 raises
    ValueError. Stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        x = r - r.mean(dim=1, keepdim=True)
        weighted = self.cfg.token_weighted and L is not None and bool(L.sum() > 0)
        return whiten(x, self.cfg.eps, L if weighted else None), {"token_weighted": float(weighted)}


class OPO(_Base, name="opo"):
    """OPO: length-weighted baseline b_q = sum_i L_i r_i / sum_i L_i; A = r - b_q.

    Source: Hao et al., "On-Policy RL with Optimal reward baseline" (arXiv 2505.23585); verl ``opo``. Edge
    cases: without lengths every response weighs the same (b_q = group mean, the Dr.GRPO advantage); a group
    whose lengths sum to 0 also falls back to its plain mean; all-equal groups get 0; G = 1 raises ValueError.
    No options, stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        total = None if L is None else L.sum(dim=1)
        base = (
            r.mean(dim=1)
            if L is None
            else torch.where(total > 0, (L * r).sum(dim=1) / total.clamp_min(1e-12), r.mean(dim=1))
        )
        return r - base.unsqueeze(1), {"baseline_mean": base.mean().item()}
