"""Surrogates (ebpo_bench/train/surrogates.py): ppo_clip equal to the pre-union formula bit for bit,
Clip-Cov's token selection and KL-Cov's penalty by hand, and the spec switch through policy_loss."""

from __future__ import annotations

import math

import pytest
import torch

from ebpo_bench.config.losses import ClipCovSurrogate, KLCovSurrogate, LossConfig, PPOClipSurrogate
from ebpo_bench.train import losses, surrogates

D = torch.float64


def _old_ppo(ratio, adv, lo, hi, c):
    """The surrogate exactly as losses.py computed it before the union (reference copy for the switch)."""
    pg = -torch.minimum(ratio * adv, ratio.clamp(1.0 - lo, 1.0 + hi) * adv)
    if c is None:
        return pg
    negative = adv < 0
    return torch.where(negative, torch.minimum(pg, -c * adv), pg)


@pytest.mark.parametrize("clip_c", [None, 3.0])
def test_ppo_clip_is_bit_identical_to_the_formula_before_the_union(clip_c):
    g = torch.Generator().manual_seed(0)
    ratio = torch.exp(torch.randn(16, 9, generator=g) * 0.5)
    adv = torch.randn(16, 1, generator=g)
    m = (torch.rand(16, 9, generator=g) > 0.2).float()
    cfg = PPOClipSurrogate(clip_low=0.2, clip_high=0.28, clip_c=clip_c)
    pg, _ = surrogates.ppo_clip(ratio, ratio.log(), adv, m, cfg)
    assert torch.equal(pg, _old_ppo(ratio, adv, 0.2, 0.28, clip_c))


def _tokens(logp_rows, adv_rows):
    logp = torch.tensor(logp_rows, dtype=D, requires_grad=True)
    return logp, torch.tensor(adv_rows, dtype=D).unsqueeze(1)


def test_clip_cov_removes_the_gradient_of_one_in_band_token():
    # on-policy (ratio 1): nothing is PPO-clipped. Advantages +2 / -2, log-probs below.
    # mean A = 0, mean logp = -1 -> cov = A * (logp + 1):
    # row 0 (A=+2): [0.0, 1.0, 4.0], row 1 (A=-2): [2, -2, 0]
    logp, adv = _tokens([[-1.0, -0.5, 1.0], [-2.0, 0.0, -1.0]], [2.0, -2.0])
    m = torch.ones(2, 3, dtype=D)
    ratio = torch.exp(logp - logp.detach())
    # band (1, 5): eligible = {(0, 2): 4.0, (1, 0): 2.0}; clip_ratio 0.2 of 6 tokens -> max(int(1.2), 1) = 1
    cfg = ClipCovSurrogate(clip_ratio=0.2, cov_lb=1.0, cov_ub=5.0)
    torch.manual_seed(0)
    pg, st = surrogates.clip_cov(ratio, logp, adv, m, cfg)
    pg.sum().backward()
    zero = (logp.grad == 0).nonzero().tolist()
    assert len(zero) == 1 and tuple(zero[0]) in {(0, 2), (1, 0)}
    assert st["cov_eligible_frac"].item() == pytest.approx(2 / 6) and st[
        "cov_clip_frac"
    ].item() == pytest.approx(1 / 6)
    # every other token keeps the plain policy-gradient -A d(ratio)/d(logp) = -A
    expect = torch.tensor([[-2.0] * 3, [2.0] * 3], dtype=D)
    expect[tuple(zero[0])] = 0.0
    assert torch.equal(logp.grad, expect)


def test_clip_cov_draws_at_least_one_token_and_never_ppo_clipped_ones():
    logp, adv = _tokens([[-1.0, -0.5, 1.0], [-2.0, 0.0, -1.0]], [2.0, -2.0])
    old = logp.detach().clone()
    old[0, 2] -= 1.0  # ratio e at (0, 2): clipped by PPO (A > 0, ratio > 1.2), so never drawn
    ratio = torch.exp(logp - old)
    cfg = ClipCovSurrogate(clip_ratio=1e-6, cov_lb=1.0, cov_ub=5.0)
    for seed in range(5):
        torch.manual_seed(seed)
        pg, st = surrogates.clip_cov(ratio, logp, adv, torch.ones(2, 3, dtype=D), cfg)
        assert st["cov_clip_frac"].item() == pytest.approx(1 / 6)  # the only other eligible token: (1, 0)
        assert pg[1, 0].item() == 0.0


def test_kl_cov_penalises_the_top_covariance_tokens_by_hand():
    logp, adv = _tokens([[-1.0, -0.5, 1.0], [-2.0, 0.0, -1.0]], [2.0, -2.0])
    old = logp.detach() - 0.1  # ratio e^0.1 everywhere, |log ratio| = 0.1
    ratio = torch.exp(logp - old)
    cfg = KLCovSurrogate(
        kl_ratio=0.34, kl_coef=2.0
    )  # int(0.34 * 6) = 2 tokens: cov 4.0 at (0,2), 2.0 at (1,0)
    pg, st = surrogates.kl_cov(ratio, logp, adv, torch.ones(2, 3, dtype=D), cfg)
    r = math.exp(0.1)
    plain = torch.tensor([[-2 * r] * 3, [2 * r] * 3], dtype=D)
    plain[0, 2] += 2.0 * 0.1
    plain[1, 0] += 2.0 * 0.1
    torch.testing.assert_close(pg.detach(), plain, atol=1e-12, rtol=0)
    assert st["kl_cov_frac"].item() == pytest.approx(2 / 6)


def test_policy_loss_dispatches_on_the_spec_surrogate():
    logp, adv = _tokens([[-1.0, -0.5, 1.0], [-2.0, 0.0, -1.0]], [2.0, -2.0])
    x = losses.LossInputs(logp, logp.detach() - 0.1, adv.squeeze(1), torch.ones(2, 3, dtype=D))
    a, st_a = losses.policy_loss(x, LossConfig())
    b, st_b = losses.policy_loss(x, LossConfig(surrogate=KLCovSurrogate(kl_ratio=0.34, kl_coef=2.0)))
    assert "clip_frac_high" in st_a and "kl_cov_frac" in st_b
    # ratio e^0.1 is inside PPO's clip, so the two differ only by the penalty on 2 of 6 tokens (token mean)
    assert b.item() == pytest.approx(a.item() + 2 * 2.0 * 0.1 / 6, abs=1e-12)
