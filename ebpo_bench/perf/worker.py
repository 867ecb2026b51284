"""One benchmark measurement in its own process: ``python -m ebpo_bench.perf.worker KIND CONFIG OUT``.

KIND is ``ours`` (our trainer), ``trl`` (TRL's GRPOTrainer), ``floor`` (the same generate and
forward/backward/optimiser calls with no trainer around them) or ``estimators`` (every registered
estimator alone at P = 512). Each process measures one thing so its peak RSS is its own. The
result (per-step rows, peak RSS, versions) is written atomically to OUT as JSON.
"""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ebpo_bench.config.load import load_experiment
from ebpo_bench.config.spec import RunConfig
from ebpo_bench.perf.probe import PhaseProbe, step_rows
from ebpo_bench.results import atomic_write_json


def load_run(cfg: dict) -> RunConfig:
    """The benchmarked run: the spec's arm and seed, with ``warmup + steps`` RL steps."""
    total = cfg["warmup"] + cfg["steps"]
    exp = load_experiment(
        cfg["spec"], overrides={"train": {"steps": total}, "eval": {"every": 0}}, profile=cfg.get("profile")
    )
    runs = [r for r in exp.runs if r.arm == cfg["arm"] and r.seed == cfg["seed"]]
    if not runs:
        arms = sorted({r.arm for r in exp.runs})
        raise SystemExit(
            f"bench: no run with arm '{cfg['arm']}' and seed {cfg['seed']} in {cfg['spec']} (arms: {arms})"
        )
    return runs[0]


def prompts_in_order(run: RunConfig, tok: Any, n: int) -> list[Any]:
    """The first n training examples exactly as our trainer draws them (same source, seed and filter)."""
    from ebpo_bench.train.trainer import prompt_source

    return prompt_source(run, tok).next(n)


def measure_ours(run: RunConfig, cfg: dict, probe: PhaseProbe) -> list[tuple[float, dict]]:
    from accelerate import Accelerator

    from ebpo_bench.results import append_jsonl, run_paths
    from ebpo_bench.train import trainer

    acc = Accelerator(cpu=not _cuda(), mixed_precision=run.model.mixed_precision)
    with tempfile.TemporaryDirectory() as tmp:
        paths = run_paths(tmp, run.name, run.run_id)
        paths.dir.mkdir(parents=True)
        t = trainer.setup(run, paths, acc, log=lambda m: None)
        _install(probe, acc.unwrap_model(t.model), t.tok)
        probe.wrap(t, "estimator", "advantage")
        marks = [(time.perf_counter(), probe.snapshot())]
        try:
            for step in range(run.train.steps):
                row = trainer.train_step(t, step)  # the real loop body, as trainer.train runs it
                append_jsonl(paths.metrics, [row])
                marks.append((time.perf_counter(), probe.snapshot()))
                _tick(cfg, step)
        finally:
            t.verifier.close()
    return marks


def measure_trl(run: RunConfig, cfg: dict, probe: PhaseProbe) -> list[tuple[float, dict]]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    from ebpo_bench.data.rewards import MathVerifier
    from ebpo_bench.models.loading import load_policy
    from ebpo_bench.perf.trl_adapter import grpo_config, reward_function

    model, tok = load_policy(run.model, run.task, log=lambda m: None)
    _install(probe, model, tok)
    examples = prompts_in_order(run, tok, run.train.steps * run.train.prompts_per_step)
    data = Dataset.from_dict({"prompt": [e.prompt for e in examples], "answer": [e.answer for e in examples]})
    per_step = run.train.mini_batches * run.train.ppo_epochs
    marks: list[tuple[float, dict]] = []

    class Marks(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            marks.append((time.perf_counter(), probe.snapshot()))

        def on_step_end(self, args, state, control, **kw):
            if state.global_step % per_step == 0:
                marks.append((time.perf_counter(), probe.snapshot()))
                _tick(cfg, state.global_step // per_step - 1)

    ver = MathVerifier(
        fmt=run.reward.format,
        scale=run.reward.scale,
        timeout_s=run.reward.timeout_s,
        workers=run.reward.workers,
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            trl = GRPOTrainer(
                model=model,
                reward_funcs=reward_function(ver),
                args=grpo_config(run, run.train.steps, tmp),
                train_dataset=data,
                processing_class=tok,
                callbacks=[Marks()],
            )
            trl.train()
    finally:
        ver.close()
    return marks


def measure_floor(run: RunConfig, cfg: dict, probe: PhaseProbe) -> list[tuple[float, dict]]:
    """Our trainer's model calls and nothing else: the shared prompt prefill and generate, then per
    mini-batch of whole groups the same log-prob forward (prompt once per group when
    ``train.shared_prefix``), backward, clip, AdamW."""
    import torch

    from ebpo_bench.models.loading import load_policy
    from ebpo_bench.rollout import SamplingParams, encode_prompts, hf, left_pad
    from ebpo_bench.rollout.hf import sampling_kwargs
    from ebpo_bench.train.logprobs import grouped_logprobs, sequence_logprobs
    from ebpo_bench.train.trainer import shared_prefix

    model, tok = load_policy(run.model, run.task, log=lambda m: None)
    dev = "cuda" if _cuda() else "cpu"
    model.to(dev).train()
    _install(probe, model, tok)
    opt = torch.optim.AdamW(model.parameters(), lr=run.train.lr)
    P, G, m, T = (
        run.train.prompts_per_step,
        run.rollout.group_size,
        run.train.mini_batches,
        run.rollout.temperature,
    )
    shared = shared_prefix(run, P)
    params = SamplingParams(G, T, run.rollout.top_p, run.rollout.max_new_tokens)
    examples = prompts_in_order(run, tok, run.train.steps * P)
    marks = [(time.perf_counter(), probe.snapshot())]
    for step in range(run.train.steps):
        texts = [e.prompt for e in examples[step * P : (step + 1) * P]]
        ids, pm = (
            x.to(dev) for x in left_pad(encode_prompts(tok, texts, run.model.chat_template), tok.pad_token_id)
        )
        with torch.no_grad():
            cache = hf.shared_prefill(model, ids, pm, G) if G > 1 and ids.shape[1] > 1 else None
            seq = model.generate(
                input_ids=ids.repeat_interleave(G, 0),
                attention_mask=pm.repeat_interleave(G, 0),
                past_key_values=cache,
                max_new_tokens=params.max_new_tokens,
                eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id,
                **sampling_kwargs(params),
            )
        resp = seq[:, ids.shape[1] :]
        rmask = (resp != tok.pad_token_id).long()
        for k in range(m):
            g = slice(k * P // m, (k + 1) * P // m)
            r = slice(g.start * G, g.stop * G)
            if shared:
                logp, _ = grouped_logprobs(model, ids[g], pm[g], resp[r], rmask[r], G, T, False)
            else:
                full = torch.cat([pm[g].repeat_interleave(G, 0), rmask[r]], 1)
                logp, _ = sequence_logprobs(model, seq[r], full, ids.shape[1], T, False)
            loss = -(logp * rmask[r]).sum() / rmask[r].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), run.train.grad_clip)
            opt.step()
        marks.append((time.perf_counter(), probe.snapshot()))
        _tick(cfg, step)
    return marks


def measure_estimators(cfg: dict) -> list[dict]:
    """Median seconds per call of every registered estimator at P = 512 for each G in cfg['group_sizes']."""
    import torch

    from ebpo_bench import estimators as advantages
    from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS

    P, reps, out = cfg.get("estimator_prompts", 512), cfg.get("estimator_reps", 30), []
    gen = torch.Generator().manual_seed(0)
    for name in advantages.available():
        for G in cfg.get("group_sizes", [4, 32]):
            est = advantages.make(name, **ESTIMATOR_CONFIGS[name]().options())
            times = []
            for i in range(reps + 3):
                r = (torch.rand(P, G, generator=gen) < 0.4).float()
                ids = [f"q{(i * P + j) % 4096}" for j in range(P)]
                lengths = torch.randint(1, 256, (P, G), generator=gen)
                t0 = time.perf_counter()
                est(r, prompt_ids=ids, lengths=lengths)
                if i >= 3:  # the first calls warm caches and allocators
                    times.append(time.perf_counter() - t0)
            times.sort()
            out.append(
                {"estimator": name, "P": P, "G": G, "median_s": times[len(times) // 2], "max_s": times[-1]}
            )
    return out


def _install(probe: PhaseProbe, model: Any, tok: Any) -> None:
    probe.eos_id = tok.eos_token_id
    probe.install(model)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _tick(cfg: dict, step: int) -> None:
    total = cfg["warmup"] + cfg["steps"]
    print(f"  {cfg['kind']}: step {step + 1}/{total}", file=sys.stderr, flush=True)


MEASURE: dict[str, Callable[[RunConfig, dict, PhaseProbe], list]] = {
    "ours": measure_ours,
    "trl": measure_trl,
    "floor": measure_floor,
}


def main(argv: list[str]) -> None:
    kind, cfg_path, out_path = argv
    cfg = json.loads(Path(cfg_path).read_text())
    cfg["kind"] = kind
    import torch

    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    from ebpo_bench.models.loading import quiet_transformers

    quiet_transformers()
    result: dict[str, Any] = {
        "kind": kind,
        "threads": torch.get_num_threads(),
        "device": "cuda" if _cuda() else "cpu",
    }
    if kind == "estimators":
        result["estimators"] = measure_estimators(cfg)
    else:
        run = load_run(cfg)
        probe = PhaseProbe()
        result["rows"] = step_rows(MEASURE[kind](run, cfg, probe))
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if _cuda():
        result["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    atomic_write_json(Path(out_path), result)


if __name__ == "__main__":
    main(sys.argv[1:])
