"""JSPO: a leave-one-question-out James-Stein mix of the RLOO baseline and the batch mean."""

from __future__ import annotations

import torch
from torch import Tensor

from ebpo_bench.estimators.base import _Base, var


class JSPO(_Base, name="jspo"):
    """JSPO: leave-one-question-out James-Stein baseline (Zeng et al., arXiv 2511.03710, its ``jspo``).

    Over the other prompts q != p only: mu_-p = mean_q m_q; v2_-p = mean_q s2_q / G (s2_q unbiased
    within-group variance); s2_-p = population variance of the m_q. lambda_p = v2_-p / (v2_-p + s2_-p + eps);
    b_loo = (sum_j r_pj - r_pi) / (G - 1); A = r - [(1 - lambda_p) b_loo + lambda_p mu_-p], not normalised;
    sums replace the reference O(P^2) loop. Edge cases: P < 2 or G < 2 raise ValueError; other prompts all
    equal and constant give lambda = 0 (the RLOO advantage); an all-equal group is pulled toward mu_-p (A !=
    0). Stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        P, G = r.shape  # P >= 2 and G >= 2 are checked by the caller (the config's limits)
        m = r.mean(dim=1)
        v = var(r, 1, 1) / G
        c = m - m.mean()  # centred means keep the sum-of-squares difference well conditioned
        mu_out, c_out, v2 = (m.sum() - m) / (P - 1), (c.sum() - c) / (P - 1), (v.sum() - v) / (P - 1)
        s2 = ((c.pow(2).sum() - c.pow(2)) / (P - 1) - c_out.pow(2)).clamp_min(0.0)
        lam = v2 / (v2 + s2 + self.cfg.eps)
        b_loo = (r.sum(dim=1, keepdim=True) - r) / (G - 1)
        base = (1 - lam).unsqueeze(1) * b_loo + (lam * mu_out).unsqueeze(1)
        stats = torch.stack([lam.mean(), v2.mean(), s2.mean()]).tolist()
        return r - base, {"lambda_mean": stats[0], "v2_mean": stats[1], "s2_mean": stats[2]}
