"""EBPO: the group mean shrunk toward a global prior kept with Welford's algorithm (or an EMA)."""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from ebpo_bench.config.estimators import EBPOAdvantage
from ebpo_bench.estimators.base import _Base, var, whiten


def _moments(x: Tensor) -> dict:
    """Welford triple of a batch, in float64: count, mean, M2 (sum of squared deviations)."""
    x = x.detach().double().reshape(-1)
    mean = x.mean()
    mean_f, m2 = torch.stack([mean, ((x - mean) ** 2).sum()]).tolist()
    return {"count": x.numel(), "mean": mean_f, "m2": m2}


def _merge(a: dict, b: dict) -> dict:
    """Chan et al.'s parallel Welford update: the statistics of a and b together (exactly b if a is empty)."""
    n, delta = a["count"] + b["count"], b["mean"] - a["mean"]
    return {
        "count": n,
        "mean": a["mean"] + delta * (b["count"] / n),
        "m2": a["m2"] + b["m2"] + delta * delta * a["count"] * b["count"] / n,
    }


def _ema_fold(a: dict, b: dict, decay: float) -> dict:
    """EMA of the mean and the raw second moment; an empty accumulator takes the batch values."""
    b_sq = b["m2"] / b["count"] + b["mean"] ** 2
    if a["count"] == 0:
        return {"count": b["count"], "mean": b["mean"], "sq": b_sq}
    return {
        "count": a["count"] + b["count"],
        "mean": decay * a["mean"] + (1 - decay) * b["mean"],
        "sq": decay * a["sq"] + (1 - decay) * b_sq,
    }


def _accvar(acc: dict, ddof: int) -> float:
    n = acc["count"]
    if n <= ddof:
        return 0.0
    pop = acc["m2"] / n if "m2" in acc else max(acc["sq"] - acc["mean"] ** 2, 0.0)
    return pop * n / (n - ddof)


class EBPO(_Base, name="ebpo"):
    """EBPO: empirical-Bayes shrinkage of the group mean toward a global prior (arXiv 2602.05165).

    m_p = mean_g r[p,g]; mu_glob = mean of the group-means accumulator; sigma2 = variance of the rewards
    accumulator (pooled_total) or mean_p of THIS batch's within-group variances (mean_within: always per
    batch); tau2 = variance of the group-means accumulator (var_ddof throughout; count <= ddof gives 0). S =
    (sigma2/G) / (sigma2/G + tau2), or 1.0 if that denominator <= eps; V_p = (1 - S) m_p + S mu_glob; A_raw =
    r - V; adv_norm: batch_std -> (A_raw - mean) / (unbiased std + eps), batch_mean -> A_raw - mean, none ->
    A_raw. Source: paper Alg. 1 and the authors' verl ``compute_ebpo_outcome_advantage``. Prior scope (the
    current batch is folded in BEFORE scoring, as in paper and code): batch = this call only (code);
    cumulative = Welford over all calls (paper); ema = EMA (ema_decay) of batch mean and raw second moment,
    call 1 taking the batch values (its ddof factor uses the total count, so call 1 = batch). Edge cases: an
    all-fail group gets A_raw = -S (mu_glob - r_fail) < 0 when S > 0 and mu_glob > r_fail (GRPO: 0); an
    all-equal batch under batch scope gives S = 1 and A = 0; G = 1 works (batch scope: sigma2 = tau2, S =
    1/2). State: batch {}; cumulative {"prior_scope", "rewards": {count, mean, m2}, "means": {...}}; ema the
    same with "sq" (raw second moment) for "m2".
    """

    def __init__(self, cfg: EBPOAdvantage) -> None:
        super().__init__(cfg)
        self.prior_scope, self.ema_decay, self.sigma2 = cfg.prior_scope, cfg.ema_decay, cfg.sigma2
        self.var_ddof, self.adv_norm, self.eps = cfg.var_ddof, cfg.adv_norm, cfg.eps
        self._acc = self._empty()

    def _empty(self) -> dict:
        if self.prior_scope == "batch":
            return {}
        zero = {"count": 0, "mean": 0.0, "m2" if self.prior_scope == "cumulative" else "sq": 0.0}
        return {"prior_scope": self.prior_scope, "rewards": dict(zero), "means": dict(zero)}

    def _fold(self, rew: dict, means: dict) -> tuple[dict, dict]:
        if self.prior_scope == "batch":
            return rew, means
        fold = _merge if self.prior_scope == "cumulative" else (lambda a, b: _ema_fold(a, b, self.ema_decay))
        self._acc["rewards"] = fold(self._acc["rewards"], rew)
        self._acc["means"] = fold(self._acc["means"], means)
        return self._acc["rewards"], self._acc["means"]

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        G = r.shape[1]
        group_mean = r.mean(dim=1)
        rew_acc, mean_acc = self._fold(_moments(r), _moments(group_mean))
        mu_glob, tau2 = mean_acc["mean"], _accvar(mean_acc, self.var_ddof)
        sigma2 = (
            _accvar(rew_acc, self.var_ddof)
            if self.sigma2 == "pooled_total"
            else var(r.double(), 1, self.var_ddof).mean().item()
        )
        noise = sigma2 / G
        S = noise / (noise + tau2) if noise + tau2 > self.eps else 1.0
        raw = r - ((1.0 - S) * group_mean + S * mu_glob).unsqueeze(1)
        adv = (
            whiten(raw, self.eps)
            if self.adv_norm == "batch_std"
            else raw - raw.mean()
            if self.adv_norm == "batch_mean"
            else raw
        )
        return adv, {
            "shrinkage": S,
            "mu_glob": mu_glob,
            "sigma2": sigma2,
            "tau2": tau2,
            "count": rew_acc["count"],
        }

    def state_dict(self) -> dict:
        return copy.deepcopy(self._acc)

    def load_state_dict(self, state: dict) -> None:
        if set(state) != set(self._empty()) or state.get("prior_scope") != self._empty().get("prior_scope"):
            raise ValueError(
                f"ebpo state with keys {sorted(state)} (prior_scope={state.get('prior_scope')!r}) "
                f"does not fit prior_scope={self.prior_scope!r}"
            )
        self._acc = copy.deepcopy(dict(state))
