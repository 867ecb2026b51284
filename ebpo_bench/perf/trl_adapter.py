"""TRL's ``GRPOTrainer`` configured as close to one of our runs as its options allow.

Mapping (ours -> ``trl.GRPOConfig``), one RL step = one generation batch of P·G completions:

=====================================  =====================================================
``train.prompts_per_step`` P, ``G``     ``num_generations=G``, ``steps_per_generation=m``,
``train.mini_batches`` m                ``per_device_train_batch_size=P·G/m``,
                                        ``gradient_accumulation_steps=1``; TRL then takes m
                                        optimiser steps per generation, as we do
``train.ppo_epochs``                    ``num_iterations``
``rollout.max_new_tokens``, T, top-p    ``max_completion_length``, ``temperature``, ``top_p``,
                                        ``top_k=0``, ``min_p=None``, ``repetition_penalty=1``
AdamW lr / betas / weight decay         ``learning_rate``, ``adam_beta1/2``, ``weight_decay``,
                                        ``optim="adamw_torch"`` (TRL's default is the fused
                                        AdamW; ours is ``torch.optim.AdamW`` unfused)
constant schedule, warm-up steps        ``lr_scheduler_type="constant_with_warmup"``
``train.grad_clip``                     ``max_grad_norm``
``loss.surrogate.clip_low`` / ``clip_high`` ``epsilon`` / ``epsilon_high``
``loss.kl_coef``                        ``beta``
``loss.aggregation`` token_mean         ``loss_type="dapo"`` (token mean over the mini-batch's
                                        active tokens, = ours with one process and no
                                        accumulation); seq_mean_token_mean -> ``"grpo"``;
                                        seq_mean_token_sum_norm -> ``"dr_grpo"``
``model.mixed_precision``               ``bf16`` / ``fp16``; ``gradient_checkpointing`` copied
                                        (TRL defaults to True and bf16, we to False and fp32)
advantage ``grpo``                      ``scale_rewards="group"``; ``normalize_std: false``
                                        -> ``"none"``; ``grpo_bn`` (std_of rewards) -> ``"batch"``
reward                                  the same ``MathVerifier`` (format, scale, workers)
prompts                                 the same examples in the same order
                                        (``shuffle_dataset=False``)
logging                                 ``logging_steps=1`` (we log every step too),
                                        ``report_to="none"``, ``save_strategy="no"``
=====================================  =====================================================

Differences that remain: TRL adds ε = 1e-4 to its Bessel-corrected group std (ours: the
spec's ``eps``, 1e-6 by default); when m > 1 TRL recomputes the old log-probs with an extra no-grad forward
pass over the generation batch, where we reuse the sampler's log-probs; TRL keeps its own
bookkeeping (entropy, clip ratios, reward std gathers) every step. Estimators TRL does not have
(EBPO, RLOO-in-GRPO, JSPO, SPO, ...) cannot be benchmarked against it: ``bench`` compares GRPO.
"""

from __future__ import annotations

from typing import Any

from ebpo_bench.config.spec import RunConfig

LOSS_TYPES = {"token_mean": "dapo", "seq_mean_token_mean": "grpo", "seq_mean_token_sum_norm": "dr_grpo"}


def scale_rewards(run: RunConfig) -> str:
    """TRL's ``scale_rewards`` for our advantage config; a clear error when TRL has no equivalent."""
    adv = run.advantage
    if adv.type == "grpo":
        return "group" if adv.normalize_std else "none"
    if adv.type == "grpo_bn" and adv.std_of == "rewards":
        return "batch"
    raise ValueError(
        f"TRL's GRPOTrainer has no equivalent of advantage '{adv.type}'; "
        "benchmark an arm whose advantage is grpo (or grpo_bn with std_of: rewards), e.g. --arm grpo"
    )


def grpo_config(run: RunConfig, steps: int, output_dir: str) -> Any:
    """A ``trl.GRPOConfig`` for ``steps`` RL steps of ``run`` on one process."""
    from trl import GRPOConfig

    P, G, m = run.train.prompts_per_step, run.rollout.group_size, run.train.mini_batches
    if (P * G) % m:
        raise ValueError(f"P·G = {P * G} must be divisible by train.mini_batches = {m} for TRL's batching")
    if run.loss.surrogate.type != "ppo_clip":
        raise ValueError(
            f"TRL's GRPOTrainer has no '{run.loss.surrogate.type}' loss; benchmark an arm whose "
            "loss.surrogate.type is ppo_clip"
        )
    import torch

    mp = run.model.mixed_precision
    return GRPOConfig(
        output_dir=output_dir,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        seed=run.seed,
        data_seed=run.seed,
        shuffle_dataset=False,
        per_device_train_batch_size=P * G // m,
        gradient_accumulation_steps=1,
        steps_per_generation=m,
        num_generations=G,
        num_iterations=run.train.ppo_epochs,
        max_steps=steps * m * run.train.ppo_epochs,
        max_completion_length=run.rollout.max_new_tokens,
        temperature=run.rollout.temperature,
        top_p=run.rollout.top_p,
        top_k=0,
        min_p=None,
        repetition_penalty=1.0,
        learning_rate=run.train.lr,
        adam_beta1=run.train.betas[0],
        adam_beta2=run.train.betas[1],
        weight_decay=run.train.weight_decay,
        optim="adamw_torch",
        max_grad_norm=run.train.grad_clip,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=run.train.warmup_steps * m,
        epsilon=run.loss.surrogate.clip_low,
        epsilon_high=run.loss.surrogate.clip_high,
        beta=run.loss.kl_coef,
        loss_type=LOSS_TYPES[run.loss.aggregation],
        scale_rewards=scale_rewards(run),
        bf16=mp == "bf16",
        fp16=mp == "fp16",
        gradient_checkpointing=run.model.gradient_checkpointing,
    )


def reward_function(verifier: Any):
    """A TRL reward callable grading with our verifier; gold answers come from the dataset's column."""

    def accuracy(prompts: list, completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [r.score for r in verifier.score(list(completions), list(answer))]

    return accuracy
