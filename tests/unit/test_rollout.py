"""HF rollout backend: masks, lengths, sampler log-probs equal to the trainer's, neutral sampling flags."""

from __future__ import annotations

import torch

from ebpo_bench.models import tiny as tinymodel
from ebpo_bench.rollout import SamplingParams, concat, left_pad, make_backend, take
from ebpo_bench.rollout.hf import sampling_kwargs
from ebpo_bench.train.trainer import sequence_logprobs


def _setup():
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, layers=1, hidden=32, heads=2, intermediate=64, seed=0)
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in ("1+2=", "13+4+5=", "7=")]
    return tok, model, prompts


def test_batch_layout_masks_and_logprob_parity():
    tok, model, prompts = _setup()
    b = make_backend("hf", model, tok).generate(prompts, SamplingParams(3, 1.0, 1.0, 8), seed=0)
    assert b.response_ids.shape[0] == 9 and len(b.texts) == 9
    assert torch.equal(b.lengths, b.response_mask.sum(1).long())
    # rows are prompt-major and left-padded: the last prompt column is a real token everywhere
    assert bool(b.prompt_mask[:, -1].all())
    for i, r in enumerate(b.response_ids):
        n = int(b.lengths[i])
        assert (r[n:] == tok.pad_token_id).all()
        if not b.truncated[i]:
            assert r[n - 1] == tok.eos_token_id
    ids = torch.cat([b.prompt_ids, b.response_ids], 1)
    attn = torch.cat([b.prompt_mask, b.response_mask.long()], 1)
    with torch.no_grad():
        logp, ent = sequence_logprobs(model, ids, attn, b.prompt_ids.shape[1], 1.0, "detached")
    assert ((logp - b.old_logprobs).abs() * b.response_mask).max() < 1e-4
    assert ent.shape == logp.shape and bool((ent >= 0).all())


def test_take_and_concat_round_trip():
    tok, model, prompts = _setup()
    b = make_backend("hf", model, tok).generate(prompts, SamplingParams(2, 1.0, 1.0, 6), seed=1)
    parts = [take(b, [0, 1]), take(b, [2, 3, 4, 5])]
    c = concat(parts, tok.pad_token_id)
    assert c.texts == b.texts and torch.equal(c.lengths, b.lengths)
    assert torch.equal(c.response_ids[:, : b.response_ids.shape[1]], b.response_ids)


def test_sampling_ignores_generation_config_defaults():
    tok, model, _ = _setup()
    model.generation_config.top_k = 20
    model.generation_config.repetition_penalty = 1.3
    gc, _ = model._prepare_generation_config(None, **sampling_kwargs(SamplingParams(1, 0.7, 0.9, 4)))
    assert gc.top_k is None and gc.repetition_penalty == 1.0 and gc.temperature == 0.7 and gc.top_p == 0.9


def test_shared_prompt_prefill_changes_nothing_but_the_cost():
    tok, model, prompts = _setup()
    params = SamplingParams(3, 0.0, 1.0, 8)  # greedy: outputs must be identical
    a = make_backend("hf", model, tok, share_prompt=False).generate(prompts, params)
    b = make_backend("hf", model, tok, share_prompt=True).generate(prompts, params)
    assert torch.equal(a.response_ids, b.response_ids) and torch.equal(a.prompt_ids, b.prompt_ids)
    sampled = SamplingParams(3, 1.0, 1.0, 8)
    c = make_backend("hf", model, tok, share_prompt=False).generate(prompts, sampled, seed=5)
    d = make_backend("hf", model, tok, share_prompt=True).generate(prompts, sampled, seed=5)
    assert torch.equal(c.response_ids, d.response_ids)  # the same RNG stream and the same logits
    assert ((c.old_logprobs - d.old_logprobs).abs() * c.response_mask).max() < 1e-5
    # chunks hold whole prompts (max_batch 4, n = 3: one prompt per chunk); greedy output is unchanged
    e = make_backend("hf", model, tok, max_batch=4).generate(prompts, params)
    w = min(e.response_ids.shape[1], a.response_ids.shape[1])
    assert torch.equal(e.response_ids[:, :w], a.response_ids[:, :w]) and e.texts == a.texts


def test_sampling_under_gradient_checkpointing_keeps_the_kv_cache():
    tok, model, prompts = _setup()
    params = SamplingParams(2, 0.0, 1.0, 6)
    plain = make_backend("hf", model, tok).generate(prompts, params)
    widths = []
    hook = model.register_forward_pre_hook(
        lambda m, a, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True
    )
    model.gradient_checkpointing_enable()
    model.train()  # transformers would turn the KV cache off here; the sampler generates in eval mode
    try:
        ckpt = make_backend("hf", model, tok).generate(prompts, params)
        assert model.training  # the trainer's mode is restored
    finally:
        hook.remove()
        model.gradient_checkpointing_disable()
        model.eval()
    assert ckpt.texts == plain.texts
    # shared prefill (the prompt but its last token), then one token per step: the cache is in use
    assert widths[0] > 1 and set(widths[1:]) == {1}


def test_sampler_keeps_no_per_step_logits_and_draws_the_same_tokens():
    """Same seed -> the same tokens and log-probs as generate(output_logits=True), the old O(T x V) path."""
    tok, model, prompts = _setup()
    params = SamplingParams(3, 0.8, 1.0, 8)
    new = make_backend("hf", model, tok, share_prompt=False).generate(prompts, params, seed=7)
    ids, mask = left_pad(prompts, tok.pad_token_id)
    ids, mask = ids.repeat_interleave(3, 0), mask.repeat_interleave(3, 0)
    torch.manual_seed(7)
    with torch.no_grad():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=8,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            return_dict_in_generate=True,
            output_logits=True,
            **sampling_kwargs(params),
        )
    resp = out.sequences[:, ids.shape[1] :]
    m = new.response_mask.bool()
    assert torch.equal(new.response_ids[m], resp[:, : m.shape[1]][m])
    old = torch.log_softmax(torch.stack(out.logits, 1).float() / 0.8, -1).gather(-1, resp[..., None])[..., 0]
    assert ((new.old_logprobs - old[:, : m.shape[1]]).abs() * m).max() < 1e-6
