"""Micro-batches under a token budget: the mini-batch gradient does not depend on the split."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import pytest
import torch

from ebpo_bench.config.load import build_experiment
from ebpo_bench.models import tiny as tinymodel
from ebpo_bench.rollout import SamplingParams, make_backend
from ebpo_bench.train.update import accumulate, micro_batches


class _Acc:
    device = "cpu"

    def backward(self, loss):
        loss.backward()

    def no_sync(self, model):
        return contextlib.nullcontext()


@pytest.fixture(scope="module")
def sampled():
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, layers=2, hidden=32, heads=2, intermediate=64, seed=5)
    texts = ("1+2=", "13+4+5+6=", "7=", "10+20=")
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    batch = make_backend("hf", model, tok).generate(prompts, SamplingParams(3, 1.0, 1.0, 12), seed=1)
    batch.response_mask[5] = 0  # one empty response: seq_mean must not count it
    batch.lengths[5] = 0
    return model, batch


def _run(aggregation: str, budget: int | None, **extra):
    raw = {
        "name": "mb",
        "rollout": {"group_size": 3, "max_new_tokens": 12},
        "train": {"prompts_per_step": 4, "max_tokens_per_microbatch": budget},
        "loss": {"aggregation": aggregation, **extra},
    }
    return build_experiment(raw).runs[0]


@pytest.mark.parametrize("aggregation", ["token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm"])
@pytest.mark.parametrize("unit", [1, 3])
def test_gradient_is_the_same_for_one_or_many_micro_batches(sampled, aggregation, unit):
    model, batch = sampled
    torch.manual_seed(0)
    adv = torch.randn(12)
    old = batch.old_logprobs + 0.05 * torch.randn_like(batch.old_logprobs) * batch.response_mask
    idx = torch.arange(12)
    grads, stats = {}, {}
    for budget in (None, 60, 1):
        run = _run(aggregation, budget, entropy_coef=0.01, kl_coef=0.01)
        t = SimpleNamespace(run=run, acc=_Acc(), model=model, ref_model=model)
        if budget is not None:
            assert len(micro_batches(batch, idx, unit, budget)) > 1
        model.zero_grad()
        stats[budget] = accumulate(t, batch, adv, idx, old, None, unit)
        grads[budget] = [p.grad.clone() for p in model.parameters()]
    for budget in (60, 1):
        for a, b in zip(grads[None], grads[budget]):
            assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()
        assert abs(stats[None]["loss/total"] - stats[budget]["loss/total"]) < 1e-5
        assert abs(stats[None]["loss/approx_kl_old"] - stats[budget]["loss/approx_kl_old"]) < 1e-5


def test_micro_batches_hold_whole_groups_within_the_budget(sampled):
    _, batch = sampled
    idx = torch.tensor([6, 7, 8, 0, 1, 2, 9, 10, 11])
    parts = micro_batches(batch, idx, 3, 70)
    assert sorted(torch.cat(parts).tolist()) == sorted(idx.tolist())
    for p in parts:
        assert p.numel() % 3 == 0 and all(
            int(p[i]) // 3 == int(p[i + 2]) // 3 for i in range(0, p.numel(), 3)
        )
        width = int((batch.prompt_mask.sum(1) + batch.lengths)[p].max())
        assert p.numel() * width <= 70 or p.numel() == 3  # one group over the budget goes alone
