"""The estimator lab's draws and measurements: prompt pools, batch orders, rewards, implied baselines.

Every estimator is driven only through the public contract (``est(rewards (P, G), prompt_ids=...)``),
one fresh object per seed, batches in order, so stateful priors (EBPO cumulative/EMA, SPO) evolve as
in training. No response lengths are simulated (``lengths=None``): length-aware estimators (OPO,
token-weighted REINFORCE++) run in their unweighted form.

Implied baseline. Estimators return normalised advantages, so the baseline is read back from their
output: within each group, regress the rewards on the advantages, r_i = b_p + s_p A_i. The intercept
b_p is the reward level the estimator treats as "expected" (its zero crossing) and the slope s_p > 0
the normalisation scale. This is exact for every estimator that is affine in r within a group
(all registered ones: group mean for GRPO/RLOO, V for EBPO with ``adv_norm: none``, V plus the batch
centring shift for batch-normalised EBPO -- the constant the gradient really subtracts). Groups with
all rewards equal do not identify s_p: an advantage of exactly 0 gives b_p = r (any scale); otherwise
the batch's median s_p over identified groups is used, exact for batch-level normalisation
(EBPO, GRPO-BN, REINFORCE++) and approximate where the scale varies by group (JSPO). A batch with no
identified group and a non-zero advantage leaves b_p undefined (NaN, left out of the means); so does
G = 1 with a non-zero advantage, where one sample cannot separate b_p from s_p.

Closed forms (given the pool's moments: sigma_w^2 = mean within-prompt reward variance, tau^2 = the
variance of the prompts' true values): group mean sigma_w^2 / G; any fixed linear shrinkage
V = (1 - S) m + S mu has E(V - theta)^2 = (1 - S)^2 sigma_w^2 / G + S^2 tau^2, which at the oracle
S* = (sigma_w^2 / G) / (sigma_w^2 / G + tau^2) is Thm 3.3's (1 - S*) sigma_w^2 / G; EBPO's default
plug-in S (pooled total variance sigma_w^2 + tau^2, tau^2 estimated by the variance of group means,
tau^2 + sigma_w^2 / G) gives its large-P limit. These need only second moments, so they hold for
Bernoulli rewards as well as Gaussian ones.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ebpo_bench.estimators import ZERO_ADV_TOL

#: the two method notes every report prints (written into lab.json by ``run_lab``)
IMPLIED_NOTE = (
    "The implied baseline of an estimator is read back from its output: within each group the rewards "
    "are regressed on the advantages, r = b + s A, and b (the reward the estimator treats as expected) is "
    "compared with the prompt's true expected reward. For all-equal groups a zero advantage gives b = r; "
    "otherwise the batch's median scale s is used (exact for batch-level normalisation, approximate for "
    "JSPO). Batch-normalised EBPO's b includes the batch centring shift, which the gradient subtracts too. "
    "At G = 1 one sample cannot separate b from s: the MSE is reported only where A = 0 (b = r)."
)
CLOSED_FORM_NOTE = (
    "Closed forms use the pool's second moments (sigma_w^2: mean within-prompt reward variance, "
    "tau^2: variance of the true values), valid for Bernoulli and Gaussian rewards alike: group mean "
    "sigma_w^2/G; the oracle shrinkage S* = (sigma_w^2/G)/(sigma_w^2/G + tau^2) gives Thm 3.3's "
    "(1 - S*) sigma_w^2/G; EBPO's default plug-in S (pooled total variance, tau^2 from the group means) "
    "has the large-P limit (1 - S)^2 sigma_w^2/G + S^2 tau^2. No response lengths are simulated, so "
    "length-aware estimators run unweighted (reinforce_pp_baseline then equals grpo_bn). The penalty "
    "sweep uses fresh prompts only, so a per-prompt tracker (spo) reads its prior there (0.5 in success-rate "
    "units)."
)
#: metrics averaged over batches (the rest are pooled sums / counts, see ``aggregate``)
MEAN_METRICS = (
    "mse",
    "bias",
    "adv_var",
    "zero_frac",
    "corr_label",
    "corr_true_adv",
    "prior_mse",
    "shrinkage",
)


class Skipped(Exception):
    """An estimator refused a setting (e.g. G = 1 for GRPO); the reason is recorded, the lab goes on."""


def rng_for(base_seed: int, *keys: object) -> np.random.Generator:
    """An independent, reproducible stream per (base seed, context), whatever else runs."""
    return np.random.default_rng([base_seed & 0xFFFFFFFF, *(zlib.crc32(str(k).encode()) for k in keys)])


# ---------------------------------------------------------------- prompt pools
def fit_beta(rate: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """Method-of-moments Beta(a, b) for true pass rates observed through n Bernoulli samples each.

    The observed rates' variance includes binomial noise E[p(1 - p)] / n, removed here; a negative
    remainder (all spread explained by noise) falls back to a nearly degenerate Beta.
    """
    m = float(np.clip(rate.mean(), 1e-3, 1 - 1e-3))
    within = np.mean(rate * (1 - rate) * np.where(n > 1, n / np.maximum(n - 1, 1), 1.0))
    var = max(float(rate.var()) - within * float(np.mean(1 / n)), 1e-4 * m * (1 - m))
    total = max(m * (1 - m) / var - 1, 1e-3)
    return m * total, (1 - m) * total


def draw_pool(dist, n_seeds: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Prompt pools for all seeds.

    Returns:
        values (S, N): success probabilities (Gaussian: the prompts' means theta); topics (S, N) ints.
    """
    shape = (n_seeds, size)
    zeros = np.zeros(shape, dtype=int)
    if dist.type == "beta":
        return rng.beta(dist.a, dist.b, shape), zeros
    if dist.type == "gaussian":
        return rng.normal(dist.mu, dist.tau, shape), zeros
    if dist.type == "topic_mixture":
        w = np.array([t.weight for t in dist.topics])
        topic = rng.choice(len(w), size=shape, p=w / w.sum())
        mean = np.array([t.mean for t in dist.topics])[topic]
        conc = np.array([t.concentration for t in dist.topics])[topic]
        return rng.beta(mean * conc, (1 - mean) * conc), topic
    from ebpo_bench.lab.spec import read_pass_rates

    rate, n, names = read_pass_rates(dist.path, dist.step)
    if dist.fit == "beta":
        a, b = fit_beta(rate, n)
        return rng.beta(a, b, shape), zeros
    pick = rng.integers(0, len(rate), shape)  # empirical: resample observed prompts, benchmarks as topics
    return rate[pick], np.unique(names, return_inverse=True)[1].reshape(-1)[pick]


def batch_indices(topic: np.ndarray, P: int, B: int, order: str, rng: np.random.Generator) -> np.ndarray:
    """Pool indices of B batches of P prompts (S, B, P): epochs of permutations cut into batches.

    ``clustered`` sorts each epoch by topic (topics in a random order, prompts shuffled within a topic),
    like a topic-sorted dataset read without shuffling; batches may straddle two topics.
    """
    S, N = topic.shape
    epochs = -(-B * P // N)
    key = rng.random((S, epochs, N))
    if order == "clustered":
        K = int(topic.max()) + 1
        rank = np.argsort(rng.random((S, epochs, K)), axis=-1).argsort(axis=-1)
        key = key + np.take_along_axis(rank, np.broadcast_to(topic[:, None, :], key.shape), axis=-1)
    perm = np.argsort(key, axis=-1).reshape(S, epochs * N)
    return perm[:, : B * P].reshape(S, B, P)


def sample_rewards(
    values: np.ndarray, idx: np.ndarray, G: int, scale: str, sigma: float | None, rng: np.random.Generator
) -> tuple[Tensor, Tensor]:
    """Rewards (S, B, P, G) float64 and the true expected reward of each prompt (S, B, P).

    Bernoulli(p) on the reward scale (1/0 or +1/-1); with ``sigma`` set, Gaussian N(theta, sigma^2).
    """
    theta = np.take_along_axis(values, idx.reshape(idx.shape[0], -1), axis=1).reshape(idx.shape)
    if sigma is not None:
        r = theta[..., None] + sigma * rng.standard_normal((*idx.shape, G))
        return torch.from_numpy(r), torch.from_numpy(theta)
    hit = (rng.random((*idx.shape, G)) < theta[..., None]).astype(float)
    if scale == "plus_minus_one":
        return torch.from_numpy(2 * hit - 1), torch.from_numpy(2 * theta - 1)
    return torch.from_numpy(hit), torch.from_numpy(theta)


# ---------------------------------------------------------------- estimators and measurements
def run_estimator(
    make_one: Callable[[], object], r: Tensor, idx: np.ndarray
) -> tuple[Tensor, dict[str, Tensor]]:
    """Call a fresh estimator per seed on its batches in order.

    Args:
        make_one: builds a new estimator object.
        r: rewards (S, B, P, G).
        idx: prompt ids (S, B, P), the pool indices (per-prompt trackers see revisits).

    Returns:
        advantages (S, B, P, G) and the estimator's numeric metrics present in every call, each (S, B).

    Raises:
        Skipped: the estimator raised ValueError for this setting (its message is the reason).
    """
    S, B = r.shape[:2]
    advs, mets = [], []
    for s in range(S):
        est = make_one()
        for b in range(B):
            try:
                adv, m = est(r[s, b], prompt_ids=idx[s, b].tolist())
            except ValueError as e:
                raise Skipped(str(e)) from None
            advs.append(adv.to(torch.float64))
            mets.append(m)
    keys = set.intersection(*(set(m) for m in mets))
    out = {k: torch.tensor([float(m[k]) for m in mets], dtype=torch.float64).reshape(S, B) for k in keys}
    return torch.stack(advs).reshape(r.shape), out


def implied_baseline(r: Tensor, adv: Tensor) -> Tensor:
    """The baseline b (..., P) with r = b + s A within each group (module docstring); r, adv (..., P, G)."""
    rc, ac = r - r.mean(-1, keepdim=True), adv - adv.mean(-1, keepdim=True)
    saa = (ac * ac).sum(-1)
    ident = (saa > 1e-18) & (rc.abs().amax(-1) > 0)
    s = torch.where(ident, (rc * ac).sum(-1) / saa.clamp_min(1e-300), torch.full_like(saa, math.nan))
    s = torch.where(ident, s, s.nanmedian(dim=-1, keepdim=True).values)
    b = r.mean(-1) - s * adv.mean(-1)
    zero = ~ident & (adv.abs().amax(-1) < ZERO_ADV_TOL)
    return torch.where(zero, r.mean(-1), b)


def _corr(x: Tensor, y: Tensor) -> Tensor:
    """Pearson correlation over the last dim; NaN where either side is constant."""
    xc, yc = x - x.mean(-1, keepdim=True), y - y.mean(-1, keepdim=True)
    den = (xc.pow(2).sum(-1) * yc.pow(2).sum(-1)).sqrt()
    return torch.where(den > 1e-12, (xc * yc).sum(-1) / den.clamp_min(1e-300), torch.full_like(den, math.nan))


def batch_metrics(
    r: Tensor,
    adv: Tensor,
    value: Tensor,
    low: float,
    high: float,
    est_metrics: dict[str, Tensor],
    prefix: str,
) -> dict[str, Tensor]:
    """Per-batch measurements (each (S, B)); sums/counts for group-regime advantages.

    Args:
        r, adv: rewards and advantages (S, B, P, G).
        value: true expected reward per prompt (S, B, P).
        low, high: failure / success reward (all-fail groups: every r == low).
        est_metrics: the estimator's own metrics (S, B); ``<prefix>/mu_glob`` and ``<prefix>/shrinkage``
            are used when present (a prior mean gives ``prior_mse`` and the Thm 3.2 prediction).
        prefix: the estimator object's metric prefix (its registry name).
    """
    G = r.shape[-1]
    err = implied_baseline(r, adv) - value
    flat_a, flat_r = adv.flatten(-2), r.flatten(-2)
    fail, succ = (r == low).all(-1), (r == high).all(-1)
    out = {
        "mse": err.pow(2).nanmean(-1),
        "bias": err.nanmean(-1),
        "adv_var": flat_a.var(-1),
        "zero_frac": (flat_a.abs() < ZERO_ADV_TOL).double().mean(-1),
        "corr_label": _corr(flat_a, flat_r),
        "corr_true_adv": _corr(flat_a, (r - value.unsqueeze(-1)).flatten(-2)),
        "fail_sum": (adv * fail.unsqueeze(-1)).sum((-1, -2)),
        "fail_n": fail.sum(-1).double() * G,
        "success_sum": (adv * succ.unsqueeze(-1)).sum((-1, -2)),
        "success_n": succ.sum(-1).double() * G,
    }
    mu, shrink = est_metrics.get(f"{prefix}/mu_glob"), est_metrics.get(f"{prefix}/shrinkage")
    if mu is not None:
        out["prior_mse"] = (mu.unsqueeze(-1) - value).pow(2).mean(-1)
    if shrink is not None:
        out["shrinkage"] = shrink
    if mu is not None and shrink is not None:  # Thm 3.2: raw all-fail advantage -S (mu_glob - r_fail)
        out["fail_pred_sum"] = -shrink * (mu - low) * out["fail_n"]
    return out


def aggregate(per_batch: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """Per-seed values (S,): batch means, and advantages pooled over all all-fail / all-success samples."""
    out = {k: v.nanmean(-1).numpy() for k, v in per_batch.items() if k in MEAN_METRICS}
    for kind in ("fail", "success"):
        n = per_batch[f"{kind}_n"].sum(-1)
        out[f"{kind}_adv"] = torch.where(
            n > 0, per_batch[f"{kind}_sum"].sum(-1) / n.clamp_min(1), math.nan
        ).numpy()
    if "fail_pred_sum" in per_batch:
        n = per_batch["fail_n"].sum(-1)
        out["fail_adv_pred"] = torch.where(
            n > 0, per_batch["fail_pred_sum"].sum(-1) / n.clamp_min(1), math.nan
        ).numpy()
    return out


def reference_metrics(
    r: Tensor,
    value: Tensor,
    values: np.ndarray,
    topic: np.ndarray,
    within: np.ndarray,
    low: float,
    high: float,
) -> dict[str, np.ndarray]:
    """Estimator-free references per seed (S,): the simulated group mean and the closed forms.

    Args:
        r: rewards (S, B, P, G); value: true expected reward (S, B, P).
        values: true expected reward of every pool prompt (S, N); topic: (S, N).
        within: within-prompt reward variance of every pool prompt (S, N).
    """
    G = r.shape[-1]
    sw, tau2 = within.mean(-1), values.var(-1)
    s_star = _share(sw / G, tau2)
    s_plug = _share((sw + tau2) / G, tau2 + sw / G)  # EBPO's pooled total sigma^2 and tau^2 proxy, large P
    # Prop 3.8's idealised clustered prior error: E_k Var(theta | k), topic shares as weights
    j_coherent = np.array(
        [sum((t == k).mean() * v[t == k].var() for k in np.unique(t)) for v, t in zip(values, topic)]
    )
    groups = r.mean(-1)
    return {
        "group_mean_mse": (groups - value).pow(2).mean((-1, -2)).numpy(),
        "group_mean_mse_closed": sw / G,
        "oracle_eb_mse_closed": (1 - s_star) * sw / G,
        "ebpo_plugin_mse_closed": (1 - s_plug) ** 2 * sw / G + s_plug**2 * tau2,
        "oracle_shrinkage": s_star,
        "ebpo_plugin_shrinkage": s_plug,
        "batch_mean_reward": groups.mean((-1, -2)).numpy(),
        "all_fail_frac": (r == low).all(-1).double().mean((-1, -2)).numpy(),
        "all_success_frac": (r == high).all(-1).double().mean((-1, -2)).numpy(),
        "prior_mse_shuffled_closed": tau2,
        "prior_mse_clustered_closed": j_coherent,
    }


def _share(noise: np.ndarray, signal: np.ndarray) -> np.ndarray:
    """noise / (noise + signal), 1 where both vanish (EBPO's S = 1 fallback)."""
    den = noise + signal
    return np.where(den > 0, noise / np.where(den > 0, den, 1.0), 1.0)
