"""Policy-learning simulation of the estimator lab: a softmax bandit per prompt, trained by the policy
gradient.

Each prompt q has K answers, answer 0 the correct one, and pi_q = softmax(logits_q). ``per_prompt``
learns all K logits of every prompt; ``skill`` learns one shared skill theta (start 0) added to every
prompt's correct logit, with the prompt's difficulty and its wrong-answer logits fixed. Initial wrong
logits are N(0, wrong_spread^2) and the correct logit is set so that pi_q(correct) equals the prompt's
success rate drawn from the spec's distribution. A step takes the next P prompts of the order, samples G
answers each, rewards correct answers (1/0 or +1/-1), asks the estimator for advantages through the
public contract and ascends the surrogate mean_{p,g} A log pi(o) (a sample-mean aggregation, like the
trainer's token mean): the gradient on the logits is mean_{p,g} A (onehot(o) - pi). Seeds run side by
side in one tensor; only the estimator calls loop, one estimator object per seed so that stateful
priors stay per seed. Every estimator sees the same random numbers for the same seed and G (common
random numbers), so differences between estimators are paired.

Deliberate simplifications: one update per batch, no PPO ratio, clipping or KL; with SGD an
estimator's overall advantage scale acts as a learning-rate multiplier (``optimizer: adam`` removes
most of that). Logged per step: success = mean over the pool of pi(correct); entropy = mean over the
pool of H(pi_q) in nats (its maximum is log K).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ebpo_bench.lab.simulate import Skipped, batch_indices

ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8


@dataclass(frozen=True)
class Curves:
    """Logged learning curves: steps (T,), success (S, T), entropy (S, T)."""

    steps: np.ndarray
    success: np.ndarray
    entropy: np.ndarray


def initial_logits(p0: np.ndarray, K: int, spread: float, rng: np.random.Generator) -> Tensor:
    """Logits (S, N, K) with softmax(...)[..., 0] == p0 (S, N), wrong answers N(0, spread^2) apart."""
    p = np.clip(p0, 1e-4, 1 - 1e-4)
    wrong = spread * rng.standard_normal((*p.shape, K - 1))
    top = wrong.max(-1, keepdims=True)
    lse = top[..., 0] + np.log(np.exp(wrong - top).sum(-1))
    correct = np.log(p) - np.log1p(-p) + lse
    return torch.from_numpy(np.concatenate([correct[..., None], wrong], axis=-1))


def _pool_stats(logits: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(success, entropy) means over the pool, each (S,)."""
    logp = logits.log_softmax(-1)
    ent = -(logp.exp() * logp).sum(-1)
    return logp[..., 0].exp().mean(-1).numpy(), ent.mean(-1).numpy()


class _Ascent:
    """SGD or Adam ascent on one tensor; elementwise, so seeds stay independent."""

    def __init__(self, param: Tensor, lr: float, kind: str) -> None:
        self.param, self.lr, self.kind, self.t = param, lr, kind, 0
        self.m, self.v = torch.zeros_like(param), torch.zeros_like(param)

    def step(self, grad: Tensor) -> None:
        if self.kind == "sgd":
            self.param += self.lr * grad
            return
        self.t += 1
        (b1, b2) = ADAM_BETAS
        self.m.mul_(b1).add_((1 - b1) * grad)
        self.v.mul_(b2).add_((1 - b2) * grad * grad)
        mhat, vhat = self.m / (1 - b1**self.t), self.v / (1 - b2**self.t)
        self.param += self.lr * mhat / (vhat.sqrt() + ADAM_EPS)


def train_policy(
    make_one: Callable[[], object],
    cfg,
    p0: np.ndarray,
    topic: np.ndarray,
    G: int,
    scale: str,
    rng: np.random.Generator,
) -> Curves:
    """Train S independent bandit policies with one estimator.

    Args:
        make_one: builds a fresh estimator object.
        cfg: the spec's ``PolicyConfig``.
        p0: initial success rates of the pool (S, N); topic: (S, N) topic labels (for the order).
        G: answers per prompt.
        scale: reward scale, ``zero_one`` or ``plus_minus_one``.
        rng: the stream for initial logits, order and sampling (same seed -> same numbers).

    Returns:
        Curves logged every ``cfg.log_every`` steps and after the last step.

    Raises:
        Skipped: the estimator refused this setting (ValueError), with its reason.
    """
    S, N = p0.shape
    K, P = cfg.outcomes, cfg.prompts_per_batch
    base = initial_logits(p0, K, cfg.wrong_spread, rng)
    order = torch.from_numpy(batch_indices(topic, P, cfg.steps, cfg.order, rng))
    skill = cfg.parameterisation == "skill"
    param = torch.zeros(S, dtype=torch.float64) if skill else base.clone()
    opt = _Ascent(param, cfg.lr, cfg.optimizer)
    ests = [make_one() for _ in range(S)]
    logged: list[tuple[int, np.ndarray, np.ndarray]] = []

    def logits() -> Tensor:
        if not skill:
            return param
        return torch.cat([base[..., :1] + param[:, None, None], base[..., 1:]], dim=-1)

    for t in range(cfg.steps + 1):
        if t % cfg.log_every == 0 or t == cfg.steps:
            logged.append((t, *_pool_stats(logits())))
        if t == cfg.steps:
            break
        ids = order[:, t]
        pi = logits().gather(1, ids[..., None].expand(-1, -1, K)).softmax(-1)
        u = torch.from_numpy(rng.random((S, P, G)))
        answer = (u[..., None] >= pi.cumsum(-1)[:, :, None, :]).sum(-1).clamp_max(K - 1)
        hit = (answer == 0).double()
        rewards = 2 * hit - 1 if scale == "plus_minus_one" else hit
        adv = torch.stack([_advantages(est, rewards[s], ids[s]) for s, est in enumerate(ests)])
        onehot = torch.nn.functional.one_hot(answer, K).double()
        g = (adv[..., None] * (onehot - pi[:, :, None, :])).sum(2) / (P * G)  # (S, P, K)
        if skill:
            opt.step(g[..., 0].sum(-1))
        else:
            opt.step(torch.zeros_like(param).scatter_add_(1, ids[..., None].expand(-1, -1, K), g))
    steps, success, entropy = zip(*logged)
    return Curves(np.array(steps), np.stack(success, 1), np.stack(entropy, 1))


def _advantages(est, rewards: Tensor, ids: Tensor) -> Tensor:
    try:
        adv, _ = est(rewards, prompt_ids=ids.tolist())
    except ValueError as e:
        raise Skipped(str(e)) from None
    return adv.to(torch.float64)
