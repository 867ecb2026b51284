"""GPU tier (marker ``gpu``; skipped without CUDA): sampler/trainer log-prob parity and an update on CUDA."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.gpu


def _batch(dtype):
    from ebpo_bench.models import tiny as tinymodel
    from ebpo_bench.rollout import SamplingParams, make_backend

    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, seed=0).to("cuda", dtype)
    prompts = [tok(f"{i}+{i % 5}=", add_special_tokens=False)["input_ids"] for i in range(8)]
    batch = make_backend("hf", model, tok).generate(prompts, SamplingParams(4, 1.0, 1.0, 16), seed=0)
    return model, batch


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-3), (torch.bfloat16, 0.1)])
def test_sampler_logprobs_match_trainer_logprobs(dtype, tol):
    from ebpo_bench.train.trainer import sequence_logprobs

    model, b = _batch(dtype)
    ids = torch.cat([b.prompt_ids, b.response_ids], 1).cuda()
    attn = torch.cat([b.prompt_mask, b.response_mask.long()], 1).cuda()
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, ids, attn, b.prompt_ids.shape[1], 1.0, False)
    diff = ((logp.float().cpu() - b.old_logprobs).abs() * b.response_mask).max().item()
    assert diff < tol, diff


def test_one_update_on_cuda_changes_the_policy():
    from ebpo_bench.train import losses
    from ebpo_bench.train.trainer import sequence_logprobs

    model, b = _batch(torch.float32)
    before = [p.detach().clone() for p in model.parameters()]
    ids = torch.cat([b.prompt_ids, b.response_ids], 1).cuda()
    attn = torch.cat([b.prompt_mask, b.response_mask.long()], 1).cuda()
    logp, _ = sequence_logprobs(model, ids, attn, b.prompt_ids.shape[1], 1.0, False)
    adv = torch.linspace(-1, 1, ids.shape[0], device="cuda")
    loss, _ = losses.policy_loss(losses.LossInputs(logp, b.old_logprobs.cuda(), adv, b.response_mask.cuda()))
    loss.backward()
    torch.optim.AdamW(model.parameters(), lr=1e-3).step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, p.detach()) for a, p in zip(before, model.parameters()))


def test_shared_prefill_and_grouped_update_match_the_per_row_paths_on_cuda():
    from ebpo_bench.models import tiny as tinymodel
    from ebpo_bench.rollout import SamplingParams, make_backend
    from ebpo_bench.train.logprobs import response_logprobs

    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, seed=0).to("cuda")
    prompts = [tok(f"{i}+{i % 5}=", add_special_tokens=False)["input_ids"] for i in range(1, 9)]
    greedy = SamplingParams(4, 0.0, 1.0, 12)
    a = make_backend("hf", model, tok, share_prompt=False).generate(prompts, greedy)
    b = make_backend("hf", model, tok, share_prompt=True).generate(prompts, greedy)
    assert torch.equal(a.response_ids, b.response_ids)
    s = make_backend("hf", model, tok).generate(prompts, SamplingParams(4, 1.0, 1.0, 12), seed=0)
    idx, width = torch.arange(32), int(s.lengths.max())
    with torch.no_grad():
        plain, _ = response_logprobs(model, s, idx, width, "cuda", 1.0, False, 1)
        grouped, _ = response_logprobs(model, s, idx, width, "cuda", 1.0, False, 4)
    mask = s.response_mask[:, :width].cuda()
    assert ((plain - grouped).abs() * mask).max().item() < 1e-4
    assert (
        (grouped.cpu() - s.old_logprobs[:, :width]).abs() * s.response_mask[:, :width]
    ).max().item() < 1e-3
