"""SPO-style persistent per-prompt value tracker."""

from __future__ import annotations

import torch
from torch import Tensor

from ebpo_bench.config.estimators import SPOAdvantage
from ebpo_bench.estimators.base import _Base, whiten


class SPO(_Base, name="spo"):
    """SPO-style per-prompt value tracker (Xu & Ding, arXiv 2509.13232; the EBPO authors' Beta-EMA baseline).

    Per prompt id, pseudo-counts n (trials) and s (reward sum) decayed by rho. Baseline v = s / n read BEFORE
    the update; a never-seen prompt uses its own group mean (replacing SPO's offline initialisation pass).
    Then n <- rho n + G, s <- rho s + sum_g r. A = r - v, batch z-scored (unbiased std + eps) if
    adv_norm="batch_std". Deviation: fixed rho (SPO adapts it to the KL since the prompt was last seen). Edge
    cases: prompt_ids is required; a first-seen all-equal group gets A_raw = 0; G = 1 works; an id repeated in
    one batch reads the pre-batch value and is updated per occurrence, in order. State: {"n": {id: float},
    "s": {id: float}} with ids stored as str(id) so it serialises (5 and "5" share an entry); it grows with
    the number of distinct prompts.
    """

    def __init__(self, cfg: SPOAdvantage) -> None:
        super().__init__(cfg)
        self.rho, self.adv_norm, self.eps = cfg.rho, cfg.adv_norm, cfg.eps
        self._n: dict[str, float] = {}
        self._s: dict[str, float] = {}

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        if keys is None:
            raise ValueError(
                "spo tracks a value per prompt: pass prompt_ids=<P ids> when calling the estimator"
            )
        G = r.shape[1]
        # dict lookups are the only per-prompt Python work; the arithmetic is vectorised
        n = torch.tensor([self._n.get(k, 0.0) for k in keys], dtype=torch.float64, device=r.device)
        s = torch.tensor([self._s.get(k, 0.0) for k in keys], dtype=torch.float64, device=r.device)
        sums = r.double().sum(dim=1)
        base = torch.where(seen := n > 0, s / n.clamp_min(1e-12), sums / G).to(r.dtype)
        raw = r - base.unsqueeze(1)
        adv = whiten(raw, self.eps) if self.adv_norm == "batch_std" else raw
        for k, total in zip(keys, sums.tolist()):
            self._n[k] = self.rho * self._n.get(k, 0.0) + G
            self._s[k] = self.rho * self._s.get(k, 0.0) + total
        stats = torch.stack([(~seen).double().mean(), base.double().mean()]).tolist()
        return adv, {"new_frac": stats[0], "baseline_mean": stats[1], "tracked": len(self._n)}

    def state_dict(self) -> dict:
        return {"n": dict(self._n), "s": dict(self._s)}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"n", "s"} or set(state["n"]) != set(state["s"]):
            raise ValueError(f"spo state needs matching 'n' and 's' maps, got keys {sorted(state)}")
        self._n = {str(k): float(v) for k, v in state["n"].items()}
        self._s = {str(k): float(v) for k, v in state["s"].items()}
