"""The chunked LM head (train/headlogp.py) gives the plain log-softmax path's values and gradients."""

from __future__ import annotations

import pytest
import torch

from ebpo_bench.models import tiny as tinymodel
from ebpo_bench.rollout import SamplingParams, make_backend
from ebpo_bench.train import losses
from ebpo_bench.train.headlogp import head_logprobs
from ebpo_bench.train.logprobs import _from_logits, response_logprobs


@pytest.mark.parametrize("chunk", [1, 7, 10_000])
@pytest.mark.parametrize("with_entropy", [False, True, "detached"])
def test_chunked_head_matches_plain_log_softmax(chunk, with_entropy):
    torch.manual_seed(0)
    B, T, H, V = 3, 5, 8, 50
    h = torch.randn(B, T, H, dtype=torch.float64, requires_grad=True)
    w = torch.randn(V, H, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, V, (B, T))
    gl, ge = torch.randn(B, T, dtype=torch.float64), torch.randn(B, T, dtype=torch.float64)
    out = {}
    for name in ("plain", "chunked"):
        if name == "plain":
            lp, ent = _from_logits(h @ w.T, y, 0.7, with_entropy)
        else:
            lp, ent = head_logprobs(h, w, y, 0.7, with_entropy, chunk)
        loss = (lp * gl).sum() + ((ent * ge).sum() if with_entropy is True else 0.0)
        gh, gw = torch.autograd.grad(loss, (h, w))
        out[name] = (lp.detach(), None if ent is None else ent.detach(), gh, gw)
    for a, b in zip(out["plain"], out["chunked"]):
        if a is None:
            assert b is None
        else:
            assert torch.allclose(a.double(), b.double(), atol=1e-5), (a - b).abs().max()


@pytest.mark.parametrize("G", [1, 3])
def test_model_logprobs_chunked_equal_full_logits(G):
    """Through the real model (both the plain and the shared-prefix forward), fp32, tolerance 1e-5."""
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, layers=2, hidden=32, heads=2, intermediate=64, seed=3)
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("1+2=", "13+4+5+6=", "7=", "10+2=")]
    b = make_backend("hf", model, tok).generate(prompts, SamplingParams(3, 1.0, 1.0, 10), seed=0)
    idx, width = torch.arange(12), int(b.lengths.max())
    mask = b.response_mask[:, :width]
    res = {}
    for chunk in (5, 10**6):
        model.zero_grad()
        lp, ent = response_logprobs(model, b, idx, width, "cpu", 0.7, True, G, chunk=chunk)
        ((lp + 0.1 * ent) * mask).sum().backward()
        res[chunk] = (lp.detach(), ent.detach(), [p.grad.clone() for p in model.parameters()])
    # reference: the full (B, T, V) logits of a plain forward
    ids = torch.cat([b.prompt_ids, b.response_ids[:, :width]], 1)
    attn = torch.cat([b.prompt_mask, b.response_mask[:, :width].long()], 1)
    pos = (attn.cumsum(1) - 1).clamp(min=0)
    model.zero_grad()
    logits = model(input_ids=ids, attention_mask=attn, position_ids=pos).logits[
        :, b.prompt_ids.shape[1] - 1 : -1
    ]
    logp_all = torch.log_softmax(logits.float() / 0.7, -1)
    ref_lp = logp_all.gather(-1, ids[:, b.prompt_ids.shape[1] :, None]).squeeze(-1)
    ref_ent = losses.entropy_from_logp(logp_all)
    ((ref_lp + 0.1 * ref_ent) * mask).sum().backward()
    ref_g = [p.grad.clone() for p in model.parameters()]
    for lp, ent, grads in res.values():
        assert ((lp - ref_lp.detach()).abs() * mask).max() < 1e-5
        assert ((ent - ref_ent.detach()).abs() * mask).max() < 1e-5
        for a, c in zip(grads, ref_g):
            assert torch.allclose(a, c, atol=1e-5, rtol=1e-4)
