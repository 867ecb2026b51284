"""Unit tests for ebpo_bench/train/losses.py: every expected number below was derived by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ebpo_bench.config.losses import LossConfig, PPOClipSurrogate
from ebpo_bench.train import losses

D = torch.float64
LN2 = math.log(2.0)


def t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=D)


def close(actual, expected, tol=1e-9) -> None:
    torch.testing.assert_close(
        torch.as_tensor(actual, dtype=D), torch.as_tensor(expected, dtype=D), atol=tol, rtol=0
    )


def pl(logp, old, adv, mask, *, ref_logp=None, entropy=None, is_weights=None, **kw):
    """``policy_loss`` with a ppo_clip surrogate; ``clip_*`` keywords go to the surrogate, the rest to
    the loss section (validated by the spec's own models)."""
    sur = {k: kw.pop(k) for k in ("clip_low", "clip_high", "clip_c") if k in kw}
    cfg = LossConfig(surrogate=PPOClipSurrogate(**sur), **kw)
    x = losses.LossInputs(logp, old, adv, mask, ref_logp=ref_logp, entropy=entropy, is_weights=is_weights)
    return losses.policy_loss(x, cfg)


def tokens_with_ratio(ratios):
    """(B, 1) logp (requires grad) and old_logp with exp(logp - old_logp) = ratios."""
    logp = torch.log(t(ratios)).unsqueeze(1).requires_grad_(True)
    return logp, torch.zeros_like(logp, requires_grad=False)


# ---------------------------------------------------------------- aggregation

VALUES = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
RAGGED = [[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_token_mean_ragged():
    # (1 + 2 + 4) / 3
    close(losses.aggregate(t(VALUES), t(RAGGED), "token_mean"), 7.0 / 3.0)


def test_seq_mean_token_mean_ragged():
    # ((1 + 2) / 2 + 4 / 1) / 2 = (1.5 + 4) / 2
    close(losses.aggregate(t(VALUES), t(RAGGED), "seq_mean_token_mean"), 2.75)


def test_seq_mean_token_sum_norm_ragged():
    # (1 + 2 + 4) / (B * C) = 7 / (2 * 4)
    close(losses.aggregate(t(VALUES), t(RAGGED), "seq_mean_token_sum_norm", constant_norm=4), 0.875)


def test_bool_mask_equals_float_mask():
    for mode in losses.AGGREGATIONS:
        a = losses.aggregate(t(VALUES), t(RAGGED).bool(), mode, constant_norm=4)
        b = losses.aggregate(t(VALUES), t(RAGGED), mode, constant_norm=4)
        close(a, b)


def test_empty_sequence_is_not_counted_in_seq_mean():
    mask = t([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    close(losses.aggregate(t(VALUES), mask, "seq_mean_token_mean"), 2.0)  # only row 0: (1+2+3)/3
    close(losses.aggregate(t(VALUES), mask, "token_mean"), 2.0)
    # the constant normaliser still counts the empty row: 6 / (2 * 3)
    close(losses.aggregate(t(VALUES), mask, "seq_mean_token_sum_norm", constant_norm=3), 1.0)


def test_all_empty_mask_gives_zero_loss_and_zero_grad():
    v = t(VALUES).requires_grad_(True)
    for mode in losses.AGGREGATIONS:
        out = losses.aggregate(v, torch.zeros(2, 3, dtype=D), mode, constant_norm=4)
        close(out, 0.0)
        (g,) = torch.autograd.grad(out, v)
        close(g, torch.zeros(2, 3))


def test_padding_does_not_leak_into_loss_or_grad():
    v = t([[1.0, 2.0, 1e6], [4.0, -1e6, 7e5]]).requires_grad_(True)
    out = losses.aggregate(v, t(RAGGED), "token_mean")
    close(out, 7.0 / 3.0)
    (g,) = torch.autograd.grad(out, v)
    close(g, t(RAGGED) / 3.0)


def test_aggregate_errors():
    with pytest.raises(ValueError, match="token_mean.*seq_mean_token_mean.*seq_mean_token_sum_norm"):
        losses.aggregate(t(VALUES), t(RAGGED), "token-mean")
    with pytest.raises(ValueError, match="constant_norm"):
        losses.aggregate(t(VALUES), t(RAGGED), "seq_mean_token_sum_norm")
    with pytest.raises(ValueError, match="constant_norm"):
        losses.aggregate(t(VALUES), t(RAGGED), "seq_mean_token_sum_norm", constant_norm=0)
    with pytest.raises(ValueError, match="shape|\\(B, T\\)"):
        losses.aggregate(t(VALUES), t(RAGGED)[:, :2], "token_mean")


# ---------------------------------------------------------------- clipped surrogate


def test_four_clip_regimes_values_and_grads():
    # rows: (A>0, r=1.5) clipped at 1.2; (A>0, r=0.5) unclipped; (A<0, r=0.5) clipped at 0.8;
    # (A<0, r=1.5) unclipped
    logp, old = tokens_with_ratio([1.5, 0.5, 0.5, 1.5])
    adv = t([1.0, 1.0, -1.0, -1.0])
    mask = torch.ones(4, 1, dtype=D)
    loss, st = pl(logp, old, adv, mask)
    # per token: -1.2, -0.5, +0.8, +1.5 -> mean 0.6 / 4
    close(loss, 0.15)
    close(st["pg_loss"], 0.15)
    (g,) = torch.autograd.grad(loss, logp)
    # d/dlogp of -r*A is -r*A; divided by the 4 tokens; clipped tokens have exactly zero grad
    close(g.squeeze(1), [0.0, -0.5 / 4, 0.0, 1.5 / 4])
    assert g[0, 0].item() == 0.0 and g[2, 0].item() == 0.0
    close(st["clip_frac_high"], 0.25)
    close(st["clip_frac_low"], 0.25)
    close(st["dual_clip_frac"], 0.0)
    close(st["ratio_mean"], 1.0)
    close(st["ratio_max"], 1.5)


def test_inside_the_trust_region_gradient_is_ratio_times_advantage():
    logp, old = tokens_with_ratio([1.1, 0.9])
    loss, st = pl(logp, old, t([2.0, -3.0]), torch.ones(2, 1, dtype=D))
    close(loss, (-1.1 * 2.0 + 0.9 * 3.0) / 2)  # 0.25
    (g,) = torch.autograd.grad(loss, logp)
    close(g.squeeze(1), [-1.1 * 2.0 / 2, 0.9 * 3.0 / 2])
    close(st["clip_frac_low"], 0.0)
    close(st["clip_frac_high"], 0.0)


def test_clip_higher_is_asymmetric():
    # A>0, r=1.25: clipped by a symmetric 0.2 (-> -1.2) but not by clip_high=0.28 (-> -1.25, live grad)
    logp, old = tokens_with_ratio([1.25, 1.5, 0.75])
    adv = t([1.0, 1.0, -1.0])
    mask = torch.ones(3, 1, dtype=D)
    loss, st = pl(logp, old, adv, mask, clip_low=0.2, clip_high=0.28)
    # per token: -1.25 (unclipped), -1.28 (clipped high), +0.8 (clipped low at 1 - 0.2)
    close(loss, (-1.25 - 1.28 + 0.8) / 3)
    (g,) = torch.autograd.grad(loss, logp)
    close(g.squeeze(1), [-1.25 / 3, 0.0, 0.0])
    close(st["clip_frac_high"], 1.0 / 3)
    close(st["clip_frac_low"], 1.0 / 3)
    sym, st_sym = pl(*tokens_with_ratio([1.25, 1.5, 0.75]), adv, mask)
    close(sym, (-1.2 - 1.2 + 0.8) / 3)
    close(st_sym["clip_frac_high"], 2.0 / 3)


def test_dual_clip_caps_negative_advantages():
    # (A=-2, r=4): plain PPO loss 8, capped at 3*2 = 6; (A=-2, r=2): 4 < 6 untouched; (A=+1, r=4): -1.2
    logp, old = tokens_with_ratio([4.0, 2.0, 4.0])
    adv = t([-2.0, -2.0, 1.0])
    mask = torch.ones(3, 1, dtype=D)
    loss, st = pl(logp, old, adv, mask, clip_c=3.0)
    close(loss, (6.0 + 4.0 - 1.2) / 3)
    (g,) = torch.autograd.grad(loss, logp)
    close(g.squeeze(1), [0.0, 4.0 / 3, 0.0])
    close(st["dual_clip_frac"], 1.0 / 3)
    close(st["clip_frac_high"], 1.0 / 3)
    plain, st_plain = pl(*tokens_with_ratio([4.0, 2.0, 4.0]), adv, mask)
    close(plain, (8.0 + 4.0 - 1.2) / 3)
    close(st_plain["dual_clip_frac"], 0.0)


@pytest.mark.parametrize("clip_c", [1.0, 0.5, -3.0])
def test_dual_clip_needs_c_above_one(clip_c):
    logp, old = tokens_with_ratio([1.0])
    with pytest.raises(ValueError, match="clip_c"):
        pl(logp, old, t([1.0]), torch.ones(1, 1, dtype=D), clip_c=clip_c)


def test_on_policy_ratio_is_one_and_pg_is_minus_token_mean_advantage():
    logp = t([[-0.3, -1.2, -5.0], [-0.7, -2.0, -9.0]]).requires_grad_(True)
    adv = t([2.0, -1.0])
    mask = t(RAGGED)
    loss, st = pl(logp, logp.detach().clone(), adv, mask)
    close(loss, -(2.0 + 2.0 - 1.0) / 3)  # -1
    close(st["ratio_mean"], 1.0)
    close(st["ratio_max"], 1.0)
    close(st["approx_kl_old"], 0.0)
    for k in ("clip_frac_low", "clip_frac_high", "dual_clip_frac", "kl"):
        close(st[k], 0.0)
    (g,) = torch.autograd.grad(loss, logp)
    close(g, [[-2.0 / 3, -2.0 / 3, 0.0], [1.0 / 3, 0.0, 0.0]])
    seq, _ = pl(logp, logp.detach().clone(), adv, mask, aggregation="seq_mean_token_mean")
    close(seq, -(2.0 - 1.0) / 2)
    drgrpo, _ = pl(
        logp, logp.detach().clone(), adv, mask, aggregation="seq_mean_token_sum_norm", constant_norm=3
    )
    close(drgrpo, -(2.0 + 2.0 - 1.0) / (2 * 3))


def test_approx_kl_old_is_k3_of_old_vs_new():
    # r = 2: 2 - 1 - ln2; r = 1/2: 0.5 - 1 + ln2; their mean is exactly 0.25
    logp, old = tokens_with_ratio([2.0, 0.5])
    _, st = pl(logp, old, t([0.0, 0.0]), torch.ones(2, 1, dtype=D))
    close(st["approx_kl_old"], 0.25)


def test_extreme_log_ratio_is_clamped_and_finite():
    logp = t([[100.0, -100.0]]).requires_grad_(True)
    loss, st = pl(logp, torch.zeros(1, 2, dtype=D), t([-1.0]), torch.ones(1, 2, dtype=D))
    assert torch.isfinite(loss)
    close(st["ratio_max"], math.exp(20.0), tol=1e-3)
    # A<0: token 0 loss = e^20 (unclipped, ratio clamped), token 1 clipped at 0.8
    close(loss, (math.exp(20.0) + 0.8) / 2, tol=1e-3)


def test_stats_are_detached_scalars():
    logp, old = tokens_with_ratio([1.3, 0.7])
    ent = t([[0.4], [0.6]])
    _, st = pl(logp, old, t([1.0, -1.0]), torch.ones(2, 1, dtype=D), entropy=ent)
    expected = {
        "pg_loss",
        "kl",
        "entropy",
        "clip_frac_low",
        "clip_frac_high",
        "dual_clip_frac",
        "approx_kl_old",
        "ratio_mean",
        "ratio_max",
    }
    assert set(st) == expected
    for v in st.values():
        assert v.dim() == 0 and not v.requires_grad
    _, st_no_ent = pl(logp, old, t([1.0, -1.0]), torch.ones(2, 1, dtype=D))
    assert "entropy" not in st_no_ent


# ---------------------------------------------------------------- KL and entropy


def test_k1_and_k3_known_values():
    x = t([0.0, 1.0, -1.0, LN2])
    ref = torch.zeros(4, dtype=D)
    close(losses.kl_penalty(x, ref, "k1"), [0.0, 1.0, -1.0, LN2])
    # exp(-x) + x - 1: 0, e^-1, e - 2, 1/2 + ln2 - 1
    close(losses.kl_penalty(x, ref, "k3"), [0.0, 0.36787944117144233, 0.7182818284590451, 0.1931471805599453])


def test_k3_non_negative_zero_at_equality_and_clamped():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 7, generator=g, dtype=D) * 5, torch.randn(50, 7, generator=g, dtype=D) * 5
    assert (losses.kl_penalty(a, b, "k3") >= 0).all()
    close(losses.kl_penalty(a, a, "k3"), torch.zeros(50, 7))
    # x clamped to +-20: e^-20 + 19 and e^20 - 21
    close(losses.kl_penalty(t([100.0]), t([0.0]), "k3"), [19.000000002061153])
    close(losses.kl_penalty(t([-100.0]), t([0.0]), "k3"), [485165174.40979028], tol=1e-4)


def test_kl_penalty_unknown_estimator():
    with pytest.raises(ValueError, match="k1.*k3"):
        losses.kl_penalty(t([0.0]), t([0.0]), "k2")


# a (2, 3) batch with the ragged mask; padded entries hold junk that must not matter
KL_X = [[1.0, -1.0, 9.0], [LN2, 9.0, 9.0]]  # logp - ref_logp
ENT = [[0.5, 1.5, 100.0], [2.0, 100.0, 100.0]]


def _on_policy_batch():
    logp = t([[-0.5, -1.0, -2.0], [-0.25, -3.0, -4.0]]).requires_grad_(True)
    return logp, logp.detach().clone(), t([1.0, -2.0]), t(RAGGED)


def test_kl_term_adds_exactly_coef_times_token_mean_kl():
    logp, old, adv, mask = _on_policy_batch()
    ref = logp.detach() - t(KL_X)
    base, _ = pl(logp, old, adv, mask)
    k3_mean = (0.36787944117144233 + 0.7182818284590451 + 0.1931471805599453) / 3  # 0.42643615...
    with_k3, st = pl(logp, old, adv, mask, ref_logp=ref, kl_coef=0.1)
    close(with_k3 - base, 0.1 * k3_mean)
    close(st["kl"], k3_mean)
    close(st["pg_loss"], base)
    with_k1, st1 = pl(logp, old, adv, mask, ref_logp=ref, kl_coef=0.1, kl_estimator="k1")
    close(with_k1 - base, 0.1 * (1.0 - 1.0 + LN2) / 3)
    close(st1["kl"], LN2 / 3)
    # ref given but kl_coef = 0: loss unchanged, the KL is still reported
    logged, st0 = pl(logp, old, adv, mask, ref_logp=ref)
    close(logged, base)
    close(st0["kl"], k3_mean)


def test_entropy_bonus_subtracts_exactly_coef_times_mean_entropy():
    logp, old, adv, mask = _on_policy_batch()
    base, _ = pl(logp, old, adv, mask)
    out, st = pl(logp, old, adv, mask, entropy=t(ENT), entropy_coef=0.01)
    close(out - base, -0.01 * (0.5 + 1.5 + 2.0) / 3)
    close(st["entropy"], 4.0 / 3)
    # the bonus follows the loss aggregation: per-sequence means 1.0 and 2.0
    seq_base, _ = pl(logp, old, adv, mask, aggregation="seq_mean_token_mean")
    seq, _ = pl(logp, old, adv, mask, aggregation="seq_mean_token_mean", entropy=t(ENT), entropy_coef=0.01)
    close(seq - seq_base, -0.01 * 1.5)
    # entropy given but coef 0: loss unchanged
    same, _ = pl(logp, old, adv, mask, entropy=t(ENT))
    close(same, base)


def test_policy_loss_argument_errors():
    logp, old, adv, mask = _on_policy_batch()
    with pytest.raises(ValueError, match="ref_logp"):
        pl(logp, old, adv, mask, kl_coef=0.1)
    with pytest.raises(ValueError, match="entropy"):
        pl(logp, old, adv, mask, entropy_coef=0.1)
    with pytest.raises(ValueError, match="aggregation"):  # the spec model refuses it
        pl(logp, old, adv, mask, aggregation="sum")
    with pytest.raises(ValueError, match="constant_norm"):
        pl(logp, old, adv, mask, aggregation="seq_mean_token_sum_norm")
    with pytest.raises(ValueError, match="kl_estimator"):
        pl(logp, old, adv, mask, ref_logp=old, kl_coef=0.1, kl_estimator="k2")
    with pytest.raises(ValueError, match="advantages"):
        pl(logp, old, t([1.0, 2.0, 3.0]), mask)
    with pytest.raises(ValueError, match="\\(B, T\\)"):
        pl(logp, old[:, :2], adv, mask)


# ---------------------------------------------------------------- logits helpers


def test_entropy_of_uniform_logits_is_log_v():
    logits = torch.full((2, 3, 7), 4.2, dtype=D)
    close(losses.entropy_from_logits(logits), torch.full((2, 3), math.log(7.0), dtype=D))


def test_entropy_known_distribution_and_stability():
    # p = (1/2, 1/4, 1/4): H = 1/2 ln2 + 2 * 1/4 ln4 = 1.5 ln2
    close(losses.entropy_from_logits(torch.log(t([0.5, 0.25, 0.25]))), 1.5 * LN2)
    # float32 logits of size 1000: no cancellation error
    close(losses.entropy_from_logits(torch.tensor([1000.0, 1000.0])).double(), LN2, tol=1e-6)
    close(losses.entropy_from_logits(t([0.0, -1e4])), 0.0)


def test_token_logprobs_matches_naive_reference():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, 5, generator=g, dtype=D)
    tokens = torch.tensor([[0, 4, 2], [3, 3, 1]])
    got = losses.token_logprobs(logits, tokens)
    probs = torch.softmax(logits, dim=-1)
    naive = torch.stack(
        [torch.stack([torch.log(probs[b, s, tokens[b, s]]) for s in range(3)]) for b in range(2)]
    )
    close(got, naive, tol=1e-12)
    # logits (0, ln3): p(token 1) = 3/4
    close(losses.token_logprobs(torch.log(t([[[1.0, 3.0]]])), torch.tensor([[1]])), [[math.log(0.75)]])


def test_token_logprobs_gradient_and_shape_check():
    logits = torch.zeros(1, 2, 4, dtype=D, requires_grad=True)
    out = losses.token_logprobs(logits, torch.tensor([[1, 3]]))
    close(out, [[-math.log(4.0)] * 2])
    (g,) = torch.autograd.grad(out.sum(), logits)
    # d log_softmax_k / d z_j = 1[j = k] - 1/4
    close(g[0, 0], [-0.25, 0.75, -0.25, -0.25])
    with pytest.raises(ValueError):
        losses.token_logprobs(torch.zeros(1, 2, 4), torch.tensor([[1, 2, 3]]))
