"""Advantage estimators: rewards (P, G) -> advantages (P, G) plus metrics, one call signature for all.

``make(name, **options)`` builds one (names: ``available()``; options = the fields of ``estimator_configs.py``).
The trainer calls it once per step on the full gathered batch and checkpoints it through ``state_dict``;
broadcasting to tokens happens in the loss. Deliberate deviations (repeated in each class docstring): EBPO
defaults to the authors' code (prior reset every batch, population variances, mu_glob = mean of group means),
the paper's cumulative prior and an EMA prior are switches; REINFORCE++-baseline divides by (std + eps), not
verl's rsqrt(var + 1e-8); SPO has a fixed rho and its first group mean replaces the offline initialisation
pass; JSPO's O(P^2) leave-one-question-out loop becomes sums (same numbers).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Hashable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from ebpo_bench.registry import Registry

ZERO_ADV_TOL = 1e-8  # |A| below this counts as "no learning signal" in zero_adv_frac
_ESTIMATORS: Registry[type] = Registry("advantage estimator")
PromptIds = Sequence[Hashable] | Tensor | None


class Estimator(Protocol):
    """What the trainer relies on: ``__call__(rewards (P, G), *, prompt_ids=None (P,), lengths=None (P, G))``.

    Returns advantages (P, G) in the rewards' dtype (float32 for integer/bool rewards) and python floats keyed
    ``<name>/...``, always with ``all_fail_frac``, ``all_success_frac`` and ``zero_adv_frac``. State is updated
    exactly once per call; ``state_dict()`` gives plain python containers (JSON- and torch.save-able) that
    ``load_state_dict`` restores. Stateless estimators return ``{}`` and accept only ``{}``.
    """

    name: str

    def __call__(
        self, rewards: Tensor, *, prompt_ids: PromptIds = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def make(name: str, **options: Any) -> Estimator:
    """Build estimator ``name``: KeyError (with a suggestion) for an unknown name, TypeError for an unknown option."""
    cls = _ESTIMATORS.get(name)
    valid = list(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise TypeError(
            f"Unknown option(s) {', '.join(map(repr, unknown))} for advantage estimator '{name}'; "
            f"valid options: {', '.join(valid) or '(none)'}"
        )
    return cls(**options)


def available() -> list[str]:
    """Names of all registered estimators, sorted."""
    return _ESTIMATORS.names()


def _choice(option: str, value: Any, allowed: tuple) -> Any:
    if value not in allowed:
        raise ValueError(f"{option}={value!r} is not one of {allowed}")
    return value


def _need_groups(name: str, G: int) -> None:
    if G < 2:
        raise ValueError(
            f"{name} is group-relative and needs G >= 2 samples per prompt, got G={G}; raise "
            "rollout.group_size or pick an estimator defined for G = 1 (ebpo, spo)"
        )


def _var(x: Tensor, dim: int | None, ddof: int) -> Tensor:
    """Variance with ``ddof`` over ``dim`` (None: all); 0 where the count is <= ddof instead of NaN."""
    n = x.numel() if dim is None else x.shape[dim]
    if n <= ddof:
        return x.new_zeros(()) if dim is None else x.new_zeros(x.shape[:dim] + x.shape[dim + 1 :])
    return x.var(correction=ddof) if dim is None else x.var(dim=dim, correction=ddof)


def _whiten(x: Tensor, eps: float, weights: Tensor | None = None) -> Tensor:
    """(x - mean) / (std + eps) over the whole batch; unbiased std, optionally weighted by token counts."""
    w = torch.ones_like(x) if weights is None else weights
    total = w.sum()
    mean = (w * x).sum() / total.clamp_min(1e-12)
    var = (w * (x - mean) ** 2).sum() / (total - 1).clamp_min(1e-12)
    std = torch.where(total > 1, var.sqrt(), torch.zeros_like(var))  # a single entry has no spread
    return (x - mean) / (std + eps)


def _common_metrics(name: str, r: Tensor, adv: Tensor) -> dict[str, float]:
    """Group regimes (all equal and <= 0 / > 0, valid for 0/1 and -1/+1 rewards) and the zero-advantage share."""
    lo, hi = r.aminmax(dim=1)
    same = lo == hi
    vals = torch.stack(
        [
            (same & (hi <= 0)).double().mean(),
            (same & (hi > 0)).double().mean(),
            (adv.abs() < ZERO_ADV_TOL).double().mean(),
        ]
    ).tolist()
    return {
        f"{name}/all_fail_frac": vals[0],
        f"{name}/all_success_frac": vals[1],
        f"{name}/zero_adv_frac": vals[2],
    }


class _Base:
    """Shared call path: input checks, the subclass's ``_advantages(r, keys, L)``, then the common metrics."""

    name = ""

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.name = name  # the registry name doubles as the metric prefix
        _ESTIMATORS.register(name)(cls)

    def __call__(
        self, rewards: Tensor, *, prompt_ids: PromptIds = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        r = torch.as_tensor(rewards)
        if r.dim() != 2 or r.numel() == 0:
            raise ValueError(f"rewards must be a non-empty (P, G) tensor, got shape {tuple(r.shape)}")
        r = r if r.is_floating_point() else r.float()
        L = None if lengths is None else torch.as_tensor(lengths, device=r.device).to(r.dtype)
        if L is not None and (L.shape != r.shape or bool((L < 0).any())):
            raise ValueError(f"lengths must be a non-negative (P, G) tensor like rewards {tuple(r.shape)}")
        ids = prompt_ids.tolist() if isinstance(prompt_ids, Tensor) else prompt_ids
        keys = None if ids is None else [str(i) for i in ids]  # str keys so that per-prompt state serialises
        if keys is not None and len(keys) != r.shape[0]:
            raise ValueError(f"prompt_ids has {len(keys)} entries but rewards has P={r.shape[0]} rows")
        adv, own = self._advantages(r, keys, L)
        metrics = {f"{self.name}/{k}": float(v) for k, v in own.items()}
        return adv, {**metrics, **_common_metrics(self.name, r, adv)}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(
                f"advantage estimator '{self.name}' is stateless but got state keys {sorted(state)}"
            )


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


def _acc_var(acc: dict, ddof: int) -> float:
    n = acc["count"]
    if n <= ddof:
        return 0.0
    pop = acc["m2"] / n if "m2" in acc else max(acc["sq"] - acc["mean"] ** 2, 0.0)
    return pop * n / (n - ddof)


class EBPO(_Base, name="ebpo"):
    """EBPO: empirical-Bayes shrinkage of the group mean toward a global prior (arXiv 2602.05165).

    m_p = mean_g r[p,g]; mu_glob = mean of the group-means accumulator; sigma2 = variance of the rewards
    accumulator (pooled_total) or mean_p of THIS batch's within-group variances (mean_within: always per batch);
    tau2 = variance of the group-means accumulator (var_ddof throughout; count <= ddof gives 0). S = (sigma2/G) /
    (sigma2/G + tau2), or 1.0 if that denominator <= eps; V_p = (1 - S) m_p + S mu_glob; A_raw = r - V; adv_norm:
    batch_std -> (A_raw - mean) / (unbiased std + eps), batch_mean -> A_raw - mean, none -> A_raw. Source: paper
    Alg. 1 and the authors' verl ``compute_ebpo_outcome_advantage``. Prior scope (the current batch is folded in
    BEFORE scoring, as in paper and code): batch = this call only (code); cumulative = Welford over all calls
    (paper); ema = EMA (ema_decay) of batch mean and raw second moment, call 1 taking the batch values (its ddof
    factor uses the total count, so call 1 = batch). Edge cases: an all-fail group gets A_raw = -S (mu_glob -
    r_fail) < 0 when S > 0 and mu_glob > r_fail (GRPO: 0); an all-equal batch under batch scope gives S = 1 and
    A = 0; G = 1 works (batch scope: sigma2 = tau2, S = 1/2). State: batch {}; cumulative {"prior_scope",
    "rewards": {count, mean, m2}, "means": {...}}; ema the same with "sq" (raw second moment) for "m2".
    """

    def __init__(
        self,
        *,
        prior_scope: str = "batch",
        ema_decay: float = 0.9,
        sigma2: str = "pooled_total",
        var_ddof: int = 0,
        adv_norm: str = "batch_std",
        eps: float = 1e-6,
    ) -> None:
        self.prior_scope = _choice("prior_scope", prior_scope, ("batch", "cumulative", "ema"))
        if not 0.0 <= ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {ema_decay}")
        self.ema_decay = float(ema_decay)
        self.sigma2 = _choice("sigma2", sigma2, ("pooled_total", "mean_within"))
        self.var_ddof = _choice("var_ddof", var_ddof, (0, 1))
        self.adv_norm = _choice("adv_norm", adv_norm, ("batch_std", "batch_mean", "none"))
        self.eps = float(eps)
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
        mu_glob, tau2 = mean_acc["mean"], _acc_var(mean_acc, self.var_ddof)
        sigma2 = (
            _acc_var(rew_acc, self.var_ddof)
            if self.sigma2 == "pooled_total"
            else _var(r.double(), 1, self.var_ddof).mean().item()
        )
        noise = sigma2 / G
        S = noise / (noise + tau2) if noise + tau2 > self.eps else 1.0
        raw = r - ((1.0 - S) * group_mean + S * mu_glob).unsqueeze(1)
        adv = (
            _whiten(raw, self.eps)
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


class GRPO(_Base, name="grpo"):
    """GRPO: A = (r - mu_q) / (sigma_q + eps), sigma_q the group std with std_ddof (verl/TRL: 1).

    normalize_std=False gives A = r - mu_q (the Dr.GRPO advantage). Source: DeepSeekMath (arXiv 2402.03300);
    Dr.GRPO (arXiv 2503.20783). Edge cases: an all-equal group gets exactly 0; G = 1 with std_ddof = 1 raises
    ValueError (verl silently returns A = r). Stateless.
    """

    def __init__(self, *, normalize_std: bool = True, std_ddof: int = 1, eps: float = 1e-6) -> None:
        self.normalize_std = bool(normalize_std)
        self.std_ddof = _choice("std_ddof", std_ddof, (0, 1))
        self.eps = float(eps)

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        if self.std_ddof >= 1:
            _need_groups(self.name, r.shape[1])
        centred = r - r.mean(dim=1, keepdim=True)
        std = _var(r, 1, self.std_ddof).sqrt()
        adv = centred / (std.unsqueeze(1) + self.eps) if self.normalize_std else centred
        return adv, {"group_std_mean": std.mean().item()}


class GRPOBatchNorm(_Base, name="grpo_bn"):
    """GRPO-BN: group-mean baseline, batch-level std. A = (r - mu_q) / (std_B + eps).

    std_B is the unbiased std over the whole batch of the residuals r - mu_q (std_of="residuals"; equals EBPO with
    S = 0) or of the raw rewards (std_of="rewards", TRL scale_rewards="batch"). Source: TRL GRPOTrainer; the EBPO
    authors' ``grpo_bn`` control. Edge cases: all-equal groups get 0; G = 1 gives all zeros. Stateless.
    """

    def __init__(self, *, std_of: str = "residuals", eps: float = 1e-6) -> None:
        self.std_of = _choice("std_of", std_of, ("residuals", "rewards"))
        self.eps = float(eps)

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        resid = r - r.mean(dim=1, keepdim=True)
        std = _var(resid if self.std_of == "residuals" else r, None, 1).sqrt()
        return resid / (std + self.eps), {"batch_std": std.item()}


class RLOO(_Base, name="rloo"):
    """RLOO: A_i = r_i - mean_{j != i} r_j = G/(G-1) (r_i - mu_q).

    Source: Ahmadian et al. (arXiv 2402.14740); verl ``rloo_vectorized``. Edge cases: all-equal groups get 0;
    G = 1 raises ValueError (no leave-one-out sibling). No options, stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        G = r.shape[1]
        _need_groups(self.name, G)
        return (r - r.mean(dim=1, keepdim=True)) * (G / (G - 1)), {}


class ReinforcePPBaseline(_Base, name="reinforce_pp_baseline"):
    """REINFORCE++-baseline: x = r - mu_q, then A = (x - mean_B x) / (std_B x + eps) over the batch.

    With token_weighted and lengths given, mean_B/std_B weight each response by its token count L (verl whitens
    over valid tokens; Bessel factor sum L / (sum L - 1)), else each response counts once. Source: Hu (arXiv
    2501.03262); verl ``reinforce_plus_plus_baseline``. Deviation: / (std + eps), not verl's * rsqrt(var + 1e-8).
    Edge cases: all-equal groups get -mean_B / (std_B + eps), not 0; G = 1 gives all zeros. Stateless.
    """

    def __init__(self, *, eps: float = 1e-6, token_weighted: bool = True) -> None:
        self.eps = float(eps)
        self.token_weighted = bool(token_weighted)

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        x = r - r.mean(dim=1, keepdim=True)
        weighted = self.token_weighted and L is not None and bool(L.sum() > 0)
        return _whiten(x, self.eps, L if weighted else None), {"token_weighted": float(weighted)}


class OPO(_Base, name="opo"):
    """OPO: length-weighted baseline b_q = sum_i L_i r_i / sum_i L_i; A = r - b_q.

    Source: Hao et al., "On-Policy RL with Optimal reward baseline" (arXiv 2505.23585); verl ``opo``. Edge cases:
    without lengths every response weighs the same (b_q = group mean, the Dr.GRPO advantage); a group whose
    lengths sum to 0 also falls back to its plain mean; all-equal groups and G = 1 get 0. No options, stateless.
    """

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        total = None if L is None else L.sum(dim=1)
        base = (
            r.mean(dim=1)
            if L is None
            else torch.where(total > 0, (L * r).sum(dim=1) / total.clamp_min(1e-12), r.mean(dim=1))
        )
        return r - base.unsqueeze(1), {"baseline_mean": base.mean().item()}


class JSPO(_Base, name="jspo"):
    """JSPO: leave-one-question-out James-Stein baseline (Zeng et al., arXiv 2511.03710, its ``jspo``).

    Over the other prompts q != p only: mu_-p = mean_q m_q; v2_-p = mean_q s2_q / G (s2_q unbiased within-group
    variance); s2_-p = population variance of the m_q. lambda_p = v2_-p / (v2_-p + s2_-p + eps); b_loo =
    (sum_j r_pj - r_pi) / (G - 1); A = r - [(1 - lambda_p) b_loo + lambda_p mu_-p], not normalised; sums replace
    the reference O(P^2) loop. Edge cases: P < 2 or G < 2 raise ValueError; other prompts all equal and constant
    give lambda = 0 (the RLOO advantage); an all-equal group is pulled toward mu_-p (A != 0). Stateless.
    """

    def __init__(self, *, eps: float = 1e-6) -> None:
        self.eps = float(eps)

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        P, G = r.shape
        _need_groups(self.name, G)
        if P < 2:
            raise ValueError(
                "jspo needs P >= 2 prompts per batch (its prior leaves the own prompt out); "
                "raise train.prompts_per_step"
            )
        m = r.mean(dim=1)
        v = _var(r, 1, 1) / G
        c = m - m.mean()  # centred means keep the sum-of-squares difference well conditioned
        mu_out, c_out, v2 = (m.sum() - m) / (P - 1), (c.sum() - c) / (P - 1), (v.sum() - v) / (P - 1)
        s2 = ((c.pow(2).sum() - c.pow(2)) / (P - 1) - c_out.pow(2)).clamp_min(0.0)
        lam = v2 / (v2 + s2 + self.eps)
        b_loo = (r.sum(dim=1, keepdim=True) - r) / (G - 1)
        base = (1 - lam).unsqueeze(1) * b_loo + (lam * mu_out).unsqueeze(1)
        stats = torch.stack([lam.mean(), v2.mean(), s2.mean()]).tolist()
        return r - base, {"lambda_mean": stats[0], "v2_mean": stats[1], "s2_mean": stats[2]}


class SPO(_Base, name="spo"):
    """SPO-style per-prompt value tracker (Xu & Ding, arXiv 2509.13232; the EBPO authors' Beta-EMA baseline).

    Per prompt id, pseudo-counts n (trials) and s (reward sum) decayed by rho. Baseline v = s / n read BEFORE the
    update; a never-seen prompt uses its own group mean (replacing SPO's offline initialisation pass). Then
    n <- rho n + G, s <- rho s + sum_g r. A = r - v, batch z-scored (unbiased std + eps) if adv_norm="batch_std".
    Deviation: fixed rho (SPO adapts it to the KL since the prompt was last seen). Edge cases: prompt_ids is
    required; a first-seen all-equal group gets A_raw = 0; G = 1 works; an id repeated in one batch reads the
    pre-batch value and is updated per occurrence, in order. State: {"n": {id: float}, "s": {id: float}} with ids
    stored as str(id) so it serialises (5 and "5" share an entry); it grows with the number of distinct prompts.
    """

    def __init__(self, *, rho: float = 0.9, adv_norm: str = "batch_std", eps: float = 1e-6) -> None:
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1), got {rho}")
        self.rho = float(rho)
        self.adv_norm = _choice("adv_norm", adv_norm, ("batch_std", "none"))
        self.eps = float(eps)
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
        adv = _whiten(raw, self.eps) if self.adv_norm == "batch_std" else raw
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
