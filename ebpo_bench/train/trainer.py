"""One RL trainer for every arm: rollout -> reward -> advantage -> PPO update -> log -> checkpoint.

Arms differ only through the spec: the advantage estimator is built from ``spec.advantage`` and
called exactly once per step through the registry contract (the trainer never looks at its name);
group filtering (DAPO dynamic sampling), overlong shaping, clip-higher, dual clip, KL and entropy
terms are switches on the spec, so "EBPO vs DAPO" is a spec, not a code path.

Choices worth knowing:
- accelerate runs the same code on CPU, one GPU or many. Each rank samples a contiguous slice of
  the step's prompts; rewards, lengths and prompt ids are gathered so every rank calls the
  estimator on the identical full (P, G) batch and holds identical estimator state.
- The PPO ratio's denominator is the sampler's own log-prob (no second forward pass); the
  trainer's log-probs use the same temperature-scaled logits.
- Losses are aggregated per mini-batch and per rank ("local" token mean), then DDP averages the
  gradients across ranks. A mini-batch may be split into micro-batches under a token budget
  (``train.max_tokens_per_microbatch``) with the same gradient (``update.py``).
- Mini-batches hold whole groups, and each group's prompt is forwarded once (``logprobs.py``):
  the same log-probs as one forward per row at about half the update compute on short prompts.
- With a sampler that is not the trainer (vLLM), ``loss.tis`` recomputes the old log-probs and
  applies token-level truncated importance sampling; with HF sampling the two are the same model.
- Resume is exact: model, optimiser, scheduler, estimator state, data cursor and every RNG are
  checkpointed, and log rows past the checkpoint are dropped before training continues.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ebpo_bench import estimators
from ebpo_bench.config.spec import RunConfig
from ebpo_bench.data.orderings import prepass_file, read_pass_rates
from ebpo_bench.data.rewards import MathVerifier
from ebpo_bench.data.stream import PromptSource
from ebpo_bench.interrupt import Interrupted, StopRequest
from ebpo_bench.models.loading import load_policy
from ebpo_bench.progress import progress_bar
from ebpo_bench.results import RunPaths, append_jsonl
from ebpo_bench.rollout import (
    RolloutBatch,
    SamplingParams,
    concat,
    encode_prompt,
    encode_prompts,
    make_backend,
    take,
)
from ebpo_bench.train import tracking
from ebpo_bench.train.checkpoint import restore_checkpoint, save_checkpoint
from ebpo_bench.train.logprobs import sequence_logprobs  # noqa: F401  (public here)
from ebpo_bench.train.update import shared_prefix, update  # noqa: F401  (shared_prefix: public here)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class Trainer:
    """Everything one run needs; built once by ``setup``."""

    run: RunConfig
    paths: RunPaths
    acc: Any
    model: Any
    ref_model: Any
    tok: Any
    opt: Any
    sched: Any
    estimator: Any
    verifier: MathVerifier
    source: PromptSource
    backend: Any
    counters: dict = field(default_factory=lambda: {"reward_timeouts": 0})


@dataclass
class Collected:
    """One step's local rollouts plus the gathered (P, G) rewards the estimator sees."""

    batch: RolloutBatch  # local rows, prompt-major
    rewards: torch.Tensor  # (P, G) gathered over ranks
    correct: torch.Tensor  # (P, G) gathered, bool
    lengths: torch.Tensor  # (P, G) gathered
    prompt_ids: list[str]  # P gathered
    tries: int
    short: int  # groups that had to be filled in unfiltered
    examples: list[Any]  # local examples, one per local group


def setup(run: RunConfig, paths: RunPaths, acc: Any, log: Callable[[str], None]) -> Trainer:
    model, tok = load_policy(run.model, run.task, log=log)
    ref = None
    if run.loss.kl_coef > 0:
        # inference only: under bf16 mixed precision a bf16 copy (the compute dtype) is enough
        bf16 = {"dtype": "bfloat16", "allow_bf16_master_weights": True}
        ref_cfg = run.model.model_copy(update=bf16) if run.model.mixed_precision == "bf16" else run.model
        ref, _ = load_policy(ref_cfg, run.task, log=log)
        ref.requires_grad_(False).eval()
    opt = torch.optim.AdamW(
        model.parameters(), lr=run.train.lr, betas=run.train.betas, weight_decay=run.train.weight_decay
    )
    # the scheduler stays unprepared: accelerate would step it once per process
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(run))
    model, opt = acc.prepare(model, opt)
    if ref is not None:  # under FSDP sharded like the policy (a full copy per rank would not fit at 14B)
        ref = acc.prepare_model(ref) if acc.distributed_type == "FSDP" else ref.to(acc.device)
    est = estimators.build(run.advantage)
    ver = MathVerifier(
        fmt=run.reward.format,
        scale=run.reward.scale,
        timeout_s=run.reward.timeout_s,
        workers=run.reward.workers,
    )
    source = prompt_source(run, tok, paths.dir.parents[run.run_id.count("/")])  # the experiment folder
    backend = make_backend(run.rollout.backend, acc.unwrap_model(model), tok)
    return Trainer(run, paths, acc, model, ref, tok, opt, sched, est, ver, source, backend)


def prompt_source(run: RunConfig, tok: Any, exp_dir: Path | None = None) -> PromptSource:
    """The run's training prompts in order, without those longer than ``rollout.max_prompt_tokens``;
    a difficulty order reads its pass rates from the pre-pass file under ``exp_dir``."""
    limit = run.rollout.max_prompt_tokens
    keep = lambda e: len(encode_prompt(tok, e.prompt, run.model.chat_template)) <= limit  # noqa: E731
    rates = None
    if run.data.order == "difficulty" and run.data.difficulty.estimator == "prepass" and exp_dir is not None:
        rates = read_pass_rates(prepass_file(exp_dir, run))  # written by `ebpo-bench run` before training
    return PromptSource(run.task, run.data, run.seed, filter_fn=keep, pass_rates=rates)


def lr_lambda(run: RunConfig) -> Callable[[int], float]:
    """Linear warmup, then constant or cosine decay to 0 over the run."""
    warm, total, cosine = run.train.warmup_steps, run.train.steps, run.train.lr_schedule == "cosine"

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        if not cosine:
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    return f


def train(
    run: RunConfig,
    paths: RunPaths,
    *,
    quiet: bool = False,
    log: Callable[[str], None] = print,
    on_eval: Callable[[int, Any, Any], None] | None = None,
    stop: StopRequest | None = None,
) -> dict:
    """Train (or resume) one run to ``run.train.steps``; return the last metrics row.

    ``stop`` (``interrupt.StopRequest``) is checked after every step: when set, a checkpoint is
    written and ``Interrupted`` raised, naming the step and the checkpoint to resume from.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    stop = stop or StopRequest()
    acc = Accelerator(
        cpu=not torch.cuda.is_available(),
        mixed_precision=run.model.mixed_precision,
        **tracking.accelerator_kwargs(run, paths),
    )
    set_seed(run.seed + acc.process_index)
    t = setup(run, paths, acc, log)
    tracking.start(acc, run)
    if acc.is_main_process and acc.distributed_type != "NO":
        log(f"{run.run_id}: {acc.distributed_type} over {acc.num_processes} process(es) on {acc.device}")
    if on_eval and run.eval.every and acc.distributed_type == "FSDP":
        # rank 0 alone cannot run a model whose layers are sharded over every rank
        if acc.is_main_process:
            log(
                f"{run.run_id}: eval.every={run.eval.every} skipped under FSDP; "
                "the final evaluation reads the checkpoint"
            )
        on_eval = None
    try:
        start = restore_checkpoint(t)
        if start and acc.is_main_process:
            log(f"{run.run_id}: resuming from step {start}")
        row: dict = {}
        bar_off = quiet or not acc.is_main_process
        with (
            progress_bar(run.run_id, run.train.steps, start, disable=bar_off, every=run.log.every) as bar,
            stop.deferred(),
        ):
            for step in range(start, run.train.steps):
                row = train_step(t, step)
                if acc.is_main_process:
                    append_jsonl(paths.metrics, [row])
                    acc.log(row, step=step)
                bar(step + 1, **tracking.progress_fields(row))
                last = step + 1 == run.train.steps
                halt = stop.agreed(acc) and not last  # a safe point: the step is whole
                if (step + 1) % run.train.checkpoint_every == 0 or last or halt:
                    save_checkpoint(t, step + 1)
                if halt:
                    raise Interrupted(stop.signum or 15, f"interrupted at step {step + 1}")
                if on_eval and run.eval.every and (step + 1) % run.eval.every == 0 and not last:
                    if acc.is_main_process:
                        on_eval(step + 1, acc.unwrap_model(t.model), t.tok)
                        t.model.train()
                    acc.wait_for_everyone()
        return row
    finally:
        t.verifier.close()
        tracking.finish(acc)


def train_step(t: Trainer, step: int) -> dict:
    """One step: collect rollouts, estimate advantages once, update, return the metrics row."""
    t0 = time.perf_counter()
    col, timing = collect(t, step)
    t1 = time.perf_counter()
    adv, adv_metrics = t.estimator(col.rewards, prompt_ids=col.prompt_ids, lengths=col.lengths)
    t2 = time.perf_counter()
    local = local_slice(t, adv).reshape(-1)
    upd = update(t, col.batch, local, step)
    t3 = time.perf_counter()
    if not all(math.isfinite(v) for v in upd.values()):
        raise TrainingDiverged(
            f"step {step}: non-finite loss statistics {upd}; lower train.lr or check the rewards"
        )
    t.backend.sync_weights(t.acc.unwrap_model(t.model))
    timing.update({"time/advantage": t2 - t1, "time/update": t3 - t2, "time/step": t3 - t0})
    row = metrics_row(t, step, col, adv, adv_metrics, upd, timing)
    if t.acc.is_main_process and t.run.train.samples_per_step:
        write_samples(t, step, col)
    return row


def collect(t: Trainer, step: int) -> tuple[Collected, dict]:
    """Sample G responses for this rank's prompts and score them; refill filtered groups (DAPO)."""
    run, acc = t.run, t.acc
    P, G, world = run.train.prompts_per_step, run.rollout.group_size, acc.num_processes
    if P % world:
        raise ValueError(f"train.prompts_per_step={P} must be divisible by the number of processes ({world})")
    lp, rank = P // world, acc.process_index
    params = SamplingParams(G, run.rollout.temperature, run.rollout.top_p, run.rollout.max_new_tokens)
    filtering, rounds, t_roll, t_rew, n_kept = run.train.filter_groups.enabled, [], 0.0, 0.0, 0
    while True:
        mine = t.source.next(P)[rank * lp : (rank + 1) * lp]  # every rank draws, each keeps its slice
        a = time.perf_counter()
        batch = t.backend.generate(
            encode_prompts(t.tok, [e.prompt for e in mine], run.model.chat_template), params
        )
        b = time.perf_counter()
        rew, cor = score(t, batch, mine)
        t_roll, t_rew = t_roll + b - a, t_rew + time.perf_counter() - b
        rounds.append((batch, rew, cor, mine))
        if not filtering:
            break
        n_kept += int((rew != rew[:, :1]).any(1).sum())
        done = torch.tensor([float(n_kept >= lp)], device=acc.device)
        if len(rounds) >= run.train.filter_groups.max_tries or bool(acc.gather(done).min() > 0):
            break
    batch, rew, cor, examples, short = rounds[0] + (0,) if not filtering else select_groups(t, rounds, lp)
    rewards, correct, lengths, ids = gather_groups(
        acc, rew, cor, batch.lengths.reshape(lp, G), [e.id for e in examples]
    )
    short_all = int(acc.gather(torch.tensor([short], device=acc.device)).sum())
    col = Collected(batch, rewards, correct, lengths, ids, len(rounds), short_all, examples)
    return col, {"time/rollout": t_roll, "time/reward": t_rew}


def select_groups(t: Trainer, rounds: list, lp: int) -> tuple:
    """DAPO dynamic sampling: keep groups whose rewards differ, in sampling order, up to lp.

    A batch still short after the last round is filled with uninformative groups (so every rank
    keeps the same static shapes) and the number filled in is logged as ``filter/short_groups``.
    """
    G = t.run.rollout.group_size
    kept, dropped = [], []
    for batch, rew, cor, examples in rounds:
        for p, ex in enumerate(examples):
            group = (take(batch, list(range(p * G, (p + 1) * G))), rew[p], cor[p], ex)
            (kept if bool((rew[p] != rew[p][0]).any()) else dropped).append(group)
    short = max(0, lp - len(kept))
    groups = (kept + dropped[:short])[:lp]
    batch = concat([g[0] for g in groups], t.tok.pad_token_id)
    return (
        batch,
        torch.stack([g[1] for g in groups]),
        torch.stack([g[2] for g in groups]),
        [g[3] for g in groups],
        short,
    )


def gather_groups(
    acc: Any, rewards: torch.Tensor, correct: torch.Tensor, lengths: torch.Tensor, ids: list[str]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Concatenate every rank's (P_local, G) group statistics in rank order into the full (P, G) batch.

    All ranks get the same tensors, so the estimator computes identical advantages and state on
    each of them.
    """
    from accelerate.utils import gather_object

    dev = acc.device
    full = [acc.gather(x.to(dev)).cpu() for x in (rewards, correct.long(), lengths)]
    return full[0], full[1].bool(), full[2], (gather_object(ids) if acc.num_processes > 1 else list(ids))


def score(t: Trainer, batch: RolloutBatch, examples: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards (P_local, G) from math-verify, plus DAPO overlong shaping when enabled."""
    G = t.run.rollout.group_size
    golds = [e.answer for e in examples for _ in range(G)]
    results = t.verifier.score(batch.texts, golds)
    t.counters["reward_timeouts"] += sum(r.timed_out for r in results)
    rew = torch.tensor([r.score for r in results], dtype=torch.float32)
    cor = torch.tensor([r.correct for r in results])
    ol = t.run.train.overlong
    if ol.enabled:
        limit = t.run.rollout.max_new_tokens - ol.buffer
        over = (batch.lengths.float() - limit).clamp(min=0)
        rew = rew - ol.penalty * over / ol.buffer
    return rew.reshape(-1, G), cor.reshape(-1, G)


def local_slice(t: Trainer, adv: torch.Tensor) -> torch.Tensor:
    lp = adv.shape[0] // t.acc.num_processes
    return adv[t.acc.process_index * lp : (t.acc.process_index + 1) * lp]


def metrics_row(t: Trainer, step: int, col: Collected, adv, adv_metrics, upd, timing) -> dict:
    """The step's JSON row: rewards, group regimes, advantages, estimator metrics, update stats, timings."""
    r, c = col.rewards, col.correct.float()
    toks = float(col.lengths.sum())
    row = {
        "step": step,
        "train/reward_mean": float(r.mean()),
        "train/reward_std": float(r.std()) if r.numel() > 1 else 0.0,
        "train/accuracy": float(c.mean()),
        "train/response_length": float(col.lengths.float().mean()),
        "train/truncated_frac": float(col.batch.truncated.float().mean()),
        "groups/all_fail_frac": float((c.sum(1) == 0).float().mean()),
        "groups/all_success_frac": float((c.sum(1) == c.shape[1]).float().mean()),
        "adv/mean": float(adv.mean()),
        "adv/std": float(adv.std()) if adv.numel() > 1 else 0.0,
        "adv/zero_frac": float((adv.abs() < 1e-8).float().mean()),
        "reward/timeouts": t.counters["reward_timeouts"],
        "filter/tries": col.tries,
        "filter/short_groups": col.short,
        "throughput/tokens_per_s": toks / max(timing["time/rollout"], 1e-9),
    }
    row.update(adv_metrics)
    row.update(upd)
    row.update(timing)
    return row


def write_samples(t: Trainer, step: int, col: Collected) -> None:
    G, k = t.run.rollout.group_size, t.run.train.samples_per_step
    rows = []
    for i in range(min(k, len(col.batch.texts))):
        ex = col.examples[i // G]
        rows.append(
            {
                "step": step,
                "prompt_id": ex.id,
                "prompt": ex.prompt,
                "answer": ex.answer,
                "response": col.batch.texts[i],
                "reward": float(col.rewards.reshape(-1)[i]),
            }
        )
    append_jsonl(t.paths.samples, rows)
