"""Shared-prefix log-probs equal the plain path's (values and gradients); truncated IS weights the
surrogate."""

from __future__ import annotations

import pytest
import torch

from ebpo_bench.models import tiny as tinymodel
from ebpo_bench.rollout import SamplingParams, make_backend
from ebpo_bench.train import losses
from ebpo_bench.train.logprobs import response_logprobs


@pytest.fixture(scope="module")
def sampled():
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, layers=2, hidden=32, heads=2, intermediate=64, seed=3)
    # prompts of different lengths, so left padding and per-row positions matter
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("1+2=", "13+4+5+6=", "7=", "10+20=")]
    batch = make_backend("hf", model, tok).generate(prompts, SamplingParams(3, 1.0, 1.0, 10), seed=0)
    return model, batch


@pytest.mark.parametrize("rows", [list(range(12)), [3, 4, 5, 9, 10, 11]])
def test_grouped_logprobs_match_plain_values_and_gradients(sampled, rows):
    model, b = sampled
    idx = torch.tensor(rows)
    width = int(b.lengths[idx].max())
    mask = b.response_mask[idx][:, :width]
    out = {}
    for G in (1, 3):
        model.zero_grad()
        logp, ent = response_logprobs(model, b, idx, width, "cpu", 0.7, True, G)
        ((logp + 0.1 * ent) * mask).sum().backward()
        out[G] = (logp.detach(), ent.detach(), [p.grad.clone() for p in model.parameters()])
    (lp1, e1, g1), (lp3, e3, g3) = out[1], out[3]
    assert ((lp1 - lp3).abs() * mask).max() < 1e-5
    assert ((e1 - e3).abs() * mask).max() < 1e-5
    for a, c in zip(g1, g3):
        assert torch.allclose(a, c, atol=1e-5, rtol=1e-4)


def test_grouped_logprobs_equal_the_samplers(sampled):
    model, b = sampled
    idx = torch.arange(12)
    width = int(b.lengths.max())
    with torch.no_grad():
        logp, _ = response_logprobs(model, b, idx, width, "cpu", 1.0, False, 3)
    assert ((logp - b.old_logprobs[:, :width]).abs() * b.response_mask[:, :width]).max() < 1e-4


def test_is_weights_scale_the_surrogate_and_its_gradient():
    torch.manual_seed(0)
    logp = torch.randn(4, 5, requires_grad=True)
    old, adv, mask = logp.detach() + 0.05 * torch.randn(4, 5), torch.randn(4), torch.ones(4, 5)
    base, _ = losses.policy_loss(losses.LossInputs(logp, old, adv, mask))
    (g_base,) = torch.autograd.grad(base, logp)
    half, _ = losses.policy_loss(losses.LossInputs(logp, old, adv, mask, is_weights=torch.full((4, 5), 0.5)))
    (g_half,) = torch.autograd.grad(half, logp)
    assert torch.allclose(half, 0.5 * base) and torch.allclose(g_half, 0.5 * g_base)
    w = torch.ones(4, 5)
    w[0] = 0.0  # a zero weight removes that response's tokens from the gradient, not from the denominator
    masked, _ = losses.policy_loss(losses.LossInputs(logp, old, adv, mask, is_weights=w))
    (g_masked,) = torch.autograd.grad(masked, logp)
    assert torch.all(g_masked[0] == 0) and torch.allclose(g_masked[1:], g_base[1:])
