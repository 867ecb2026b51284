"""The vLLM backend fills RolloutBatch exactly as the HF backend does: layout, dtypes, masks, padding, texts
(greedy: the very same batch), reproducible seeds, the caller's RNG untouched, one-line errors."""

from __future__ import annotations

import pytest
import torch

from ebpo_bench.rollout import SamplingParams, make_backend

pytestmark = pytest.mark.vllm  # skipped without vLLM: see conftest.py
FIELDS = (
    "prompt_ids",
    "prompt_mask",
    "response_ids",
    "response_mask",
    "old_logprobs",
    "lengths",
    "truncated",
)


def check_layout(b, tok, rows: int, max_new: int) -> None:
    """The RolloutBatch contract (rollout/__init__.py), as tests/unit/test_rollout.py checks it for HF."""
    assert b.response_ids.shape[0] == rows and len(b.texts) == rows
    assert b.response_ids.shape[1] == int(b.lengths.max()) <= max_new  # T = the longest response
    assert torch.equal(b.lengths, b.response_mask.sum(1).long())
    assert bool(b.prompt_mask[:, -1].all())  # left padding: the last prompt column is a real token
    assert bool((b.prompt_ids[b.prompt_mask == 0] == tok.pad_token_id).all())
    for i, r in enumerate(b.response_ids):
        n = int(b.lengths[i])
        assert (r[n:] == tok.pad_token_id).all() and bool(b.response_mask[i, :n].all())
        assert bool(b.truncated[i]) == (tok.eos_token_id not in r[:n].tolist())
        if not b.truncated[i]:
            assert r[n - 1] == tok.eos_token_id and n <= max_new
        else:
            assert n == max_new
    assert b.texts == tok.batch_decode(b.response_ids, skip_special_tokens=True)
    if b.old_logprobs is not None:
        assert bool((b.old_logprobs[b.response_mask == 0] == 0).all())
        assert bool((b.old_logprobs[b.response_mask == 1] < 0).all())


def test_sampled_batch_has_hf_layout_and_dtypes(tiny, engine):
    tok, model, prompts = tiny
    params = SamplingParams(3, 1.0, 1.0, 8)
    v = engine.generate(prompts, params, seed=0)
    h = make_backend("hf", model, tok).generate(prompts, params, seed=0)
    check_layout(v, tok, 9, 8)
    check_layout(h, tok, 9, 8)
    for f in FIELDS:
        a, b = getattr(v, f), getattr(h, f)
        assert a.dtype == b.dtype and a.dim() == b.dim(), f
    # prompts are laid out identically (rows prompt-major: row p * n + g)
    assert torch.equal(v.prompt_ids, h.prompt_ids) and torch.equal(v.prompt_mask, h.prompt_mask)


def test_greedy_batch_equals_hf(tiny, engine):
    """At temperature 0 both engines decode the same tokens (fp32 on CPU), so every field is equal."""
    tok, model, prompts = tiny
    params = SamplingParams(2, 0.0, 1.0, 10)  # n > 1 with greedy: vLLM refuses it, the backend sends rows
    v = engine.generate(prompts, params, seed=0)
    h = make_backend("hf", model, tok).generate(prompts, params, seed=0)
    assert v.old_logprobs is None and h.old_logprobs is None
    for f in FIELDS[:4] + FIELDS[5:]:
        assert torch.equal(getattr(v, f), getattr(h, f)), f
    assert v.texts == h.texts


def test_seeds_reproduce_and_caller_rng_is_untouched(tiny, engine):
    _, _, prompts = tiny
    params = SamplingParams(4, 1.0, 1.0, 8)
    a, b, c = (engine.generate(prompts, params, seed=s) for s in (7, 7, 8))
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.old_logprobs, b.old_logprobs)
    assert not torch.equal(a.response_ids, c.response_ids)
    rows = {tuple(r.tolist()) for r in a.response_ids}
    assert len(rows) > len(prompts)  # every row has its own seed: the samples of a prompt differ
    # seed=None: one draw from torch's global RNG, so a seeded caller (trainer, evaluation) reproduces ...
    torch.manual_seed(3)
    d = engine.generate(prompts, params)
    after = torch.rand(3)
    torch.manual_seed(3)
    e = engine.generate(prompts, params)
    assert torch.equal(d.response_ids, e.response_ids)
    # ... and that single draw is all it takes from the caller's stream (vLLM's own draws are forked off)
    torch.manual_seed(3)
    torch.randint(0, 2**31 - 1, ())
    assert torch.equal(torch.rand(3), after)


def test_prompt_longer_than_engine_is_a_clear_error(tiny, engine):
    tok, _, _ = tiny
    with pytest.raises(ValueError, match="max_model_len"):
        engine.generate([[5] * 600], SamplingParams(1, 1.0, 1.0, 4))


def test_sleep_on_cpu_is_refused(tiny):
    tok, model, _ = tiny
    with pytest.raises(ValueError, match="no sleep mode on CPU"):
        make_backend("vllm", model, tok, sleep="on")
