"""SPO-style persistent per-prompt value tracker.

Source: Xu & Ding, arXiv 2509.13232 (SPO), as the EBPO authors run it (their ``SPOTracker`` in
``verl/trainer/ppo/core_algos.py``: Beta-EMA, fixed rho = 0.9, n0 = 1 / (1 - 0.875) = 8).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ebpo_bench.config.estimators import SPOAdvantage
from ebpo_bench.estimators.base import _Base, whiten


class SPO(_Base, name="spo"):
    """SPO per-prompt value tracker (Xu & Ding, arXiv 2509.13232; the EBPO authors' Beta-EMA baseline).

    ``init="authors"`` (default), the authors' rule. Rewards map to a success rate p = r (zero_one) or
    p = (r + 1) / 2 (plus_minus_one). Per prompt a Beta(alpha, beta); an unseen prompt starts at
    alpha = beta = n0 / 2 (n0 = prior_strength = 8), so its baseline is 0.5. Baseline v = alpha / (alpha +
    beta) read BEFORE the update, used in reward units b = v (zero_one) or 2 v - 1 (plus_minus_one);
    A = r - b. Then one observation per visit, the group success rate clamped to [0, 1]:
    pbar = clamp(mean_g p, 0, 1); alpha <- rho alpha + pbar; beta <- rho beta + (1 - pbar). The prior is
    discounted on the first visit too, as in the authors' code: after one visit with pbar = 0.75,
    v = (0.9 * 4 + 0.75) / (0.9 * 8 + 1) = 4.35 / 8.2 = 0.5305. G = 1 works and a first visit gets
    A = r - 0.5, not 0 (SPO's single-stream setting; SPO initialises v offline, the prior replaces that pass).

    ``init="group_mean"``, the earlier ebpo-bench rule: pseudo-counts n (trials) and s (reward sum), an
    unseen prompt's baseline is its own group mean, then n <- rho n + G, s <- rho s + sum_g r; A = r - s / n.
    Needs G >= 2 (at G = 1 every first visit would get A = 0).

    Both: A is batch z-scored (unbiased std + eps) if adv_norm="batch_std". Deliberate deviations from the
    authors' code: (1) their code subtracts v in [0, 1] from raw +-1 scores and clamps the +-1 group mean
    to [0, 1] (a group with half or fewer correct counts as 0 successes); here +-1 rewards are mapped to
    p = (r + 1) / 2 first, so a +-1 run gives exactly 2x the 0/1 raw advantages (equal after the z-score);
    reward_scale='zero_one' on +-1 rewards reproduces their literal code. Nothing checks reward_scale against
    the spec's reward.scale yet.
    (2) fixed rho (SPO adapts it to the KL since the prompt was last seen). (3) their tracker is a module
    global, not checkpointed; here it is estimator state. Edge cases: prompt_ids is required; an id repeated
    in one batch reads the pre-batch value and is updated per occurrence, in order. State:
    authors {"alpha": {id: float}, "beta": {id: float}}, group_mean {"n": ..., "s": ...}, ids stored as
    str(id) so it serialises (5 and "5" share an entry); it grows with the number of distinct prompts.
    """

    def __init__(self, cfg: SPOAdvantage) -> None:
        super().__init__(cfg)
        self.rho, self.adv_norm, self.eps = cfg.rho, cfg.adv_norm, cfg.eps
        self.authors = cfg.init == "authors"
        # reward units of the tracker's [0, 1] success scale: r = lo + span * p
        self.lo, self.span = (-1.0, 2.0) if cfg.reward_scale == "plus_minus_one" else (0.0, 1.0)
        self.prior = cfg.prior_strength / 2.0
        self._keys = ("alpha", "beta") if self.authors else ("n", "s")
        self._state: dict[str, dict[str, float]] = {k: {} for k in self._keys}

    def _check_size(self, P: int, G: int) -> None:
        if self.cfg.min_group_size > G:
            raise ValueError(
                f"spo with init='group_mean' needs G >= 2 samples per prompt, got G={G} (a first visit "
                "would get advantage 0); use init='authors' (prior baseline 0.5) for G = 1"
            )
        super()._check_size(P, G)

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        if keys is None:
            raise ValueError(
                "spo tracks a value per prompt: pass prompt_ids=<P ids> when calling the estimator"
            )
        first, second = (self._state[k] for k in self._keys)
        seen = torch.tensor([k in first for k in keys], device=r.device)
        if self.authors:
            a = torch.tensor([first.get(k, self.prior) for k in keys], dtype=torch.float64, device=r.device)
            b = torch.tensor([second.get(k, self.prior) for k in keys], dtype=torch.float64, device=r.device)
            base = self.lo + self.span * a / (a + b)  # v read before the update, in reward units
            obs = ((r.double().mean(dim=1) - self.lo) / self.span).clamp(0.0, 1.0).tolist()
            for k, p in zip(keys, obs):
                first[k] = self.rho * first.get(k, self.prior) + p
                second[k] = self.rho * second.get(k, self.prior) + (1.0 - p)
        else:
            G = r.shape[1]
            n = torch.tensor([first.get(k, 0.0) for k in keys], dtype=torch.float64, device=r.device)
            s = torch.tensor([second.get(k, 0.0) for k in keys], dtype=torch.float64, device=r.device)
            sums = r.double().sum(dim=1)
            base = torch.where(seen, s / n.clamp_min(1e-12), sums / G)
            for k, total in zip(keys, sums.tolist()):
                first[k] = self.rho * first.get(k, 0.0) + G
                second[k] = self.rho * second.get(k, 0.0) + total
        raw = r - base.to(r.dtype).unsqueeze(1)
        adv = whiten(raw, self.eps) if self.adv_norm == "batch_std" else raw
        stats = torch.stack([(~seen).double().mean(), base.double().mean()]).tolist()
        return adv, {"new_frac": stats[0], "baseline_mean": stats[1], "tracked": len(first)}

    def state_dict(self) -> dict:
        return {k: dict(v) for k, v in self._state.items()}

    def load_state_dict(self, state: dict) -> None:
        one, two = self._keys
        if set(state) != set(self._keys) or set(state[one]) != set(state[two]):
            raise ValueError(
                f"spo (init='{self.cfg.init}') state needs matching '{one}' and '{two}' maps, "
                f"got keys {sorted(state)}"
            )
        self._state = {k: {str(i): float(v) for i, v in state[k].items()} for k in self._keys}
