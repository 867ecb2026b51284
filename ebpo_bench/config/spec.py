"""Experiment specs: pydantic v2 models for everything that can change a number in a report.

A spec file describes a whole comparison: a base configuration, ``arms`` (partial overrides
deep-merged onto the base, each validated as a complete run) and a ``grid`` (dotted field paths
with value lists, expanded as a cross product) times ``seeds``. Every model forbids unknown keys,
and every default is declared here so that it appears in ``spec.resolved.yaml``; nothing fills in
a default elsewhere. This module never imports torch: ``validate`` and ``--help`` stay fast.

Loading, merging, expansion and error messages are in ``ebpo_bench/config/load.py``; the model, task and
data-order blocks in ``model.py``, ``tasks.py`` and ``data.py`` beside it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ebpo_bench.config.base import Cfg as _Cfg
from ebpo_bench.config.data import DataConfig, DifficultyOrderConfig, TopicOrderConfig  # noqa: F401
from ebpo_bench.config.estimators import AdvantageConfig, EBPOAdvantage
from ebpo_bench.config.evaluation import EvalConfig, OutputConfig, ReportConfig  # noqa: F401
from ebpo_bench.config.losses import LossConfig, TISConfig  # noqa: F401  (TISConfig: part of the spec API)
from ebpo_bench.config.model import ModelConfig, TinyModelConfig, WarmStartConfig  # noqa: F401
from ebpo_bench.config.rollout import RolloutConfig, engine_config
from ebpo_bench.config.tasks import FileTaskConfig, HFTaskConfig, SyntheticTaskConfig, TaskConfig  # noqa: F401
from ebpo_bench.config.tracking import LogConfig


class RewardConfig(_Cfg):
    """Verifiable math reward through math-verify (same path for training and evaluation)."""

    type: Literal["math_verify"] = "math_verify"
    format: Literal["auto", "boxed", "answer_line"] = Field(
        "auto", description="Where the answer is: last \\boxed{}, a DAPO 'Answer:' line, or either."
    )
    scale: Literal["zero_one", "plus_minus_one"] = Field(
        "zero_one", description="1/0 or +1/-1 (verl math_dapo)."
    )
    timeout_s: float = Field(5.0, gt=0, description="Hard deadline per check; a timeout scores as wrong.")
    workers: int = Field(1, ge=1, description="Verifier worker processes.")


class FilterGroupsConfig(_Cfg):
    """DAPO dynamic sampling: drop groups whose rewards are all equal, resample until the batch is full."""

    enabled: bool = False
    max_tries: int = Field(
        10, ge=1, description="Generation rounds per step before training on what there is."
    )


class OverlongConfig(_Cfg):
    """DAPO soft overlong punishment, added to the reward of responses near the length cap."""

    enabled: bool = False
    buffer: int = Field(4, ge=1, description="Tokens before max_new_tokens where the penalty ramps in.")
    penalty: float = Field(1.0, ge=0, description="Penalty at the cap (linear ramp over the buffer).")


class TrainConfig(_Cfg):
    """Optimisation of the policy."""

    steps: int = Field(50, ge=1, description="RL steps (one rollout batch each).")
    prompts_per_step: int = Field(16, ge=1, description="P: prompts per rollout batch.")
    mini_batches: int = Field(
        1, ge=1, description="Optimiser updates per rollout batch (split of the P*G responses)."
    )
    ppo_epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: Literal["constant", "cosine"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0, description="Max gradient norm.")
    checkpoint_every: int = Field(10, ge=1, description="Steps between checkpoints (and at the end).")
    samples_per_step: int = Field(2, ge=0, description="Rollouts written to samples.jsonl per step.")
    max_tokens_per_microbatch: int | None = Field(
        None,
        ge=1,
        description="Token budget (rows x padded prompt+response width) of one forward/backward; each "
        "rank's mini-batch is split into micro-batches of whole groups under it, with gradient "
        "accumulation (same gradient as one pass). None = the whole mini-batch at once.",
    )
    logprob_chunk_tokens: int = Field(
        1024, ge=1, description="LM-head positions per chunk for log-probs (~2 x chunk x vocab x 4 B)."
    )
    keep_checkpoints: int = Field(1, ge=1, description="Checkpoints kept: the last k (the final one always).")
    shared_prefix: bool = Field(
        True,
        description="Mini-batches hold whole groups; each prompt is forwarded once per "
        "group (same log-probs, less compute); off under gradient checkpointing.",
    )
    filter_groups: FilterGroupsConfig = Field(default_factory=FilterGroupsConfig)
    overlong: OverlongConfig = Field(default_factory=OverlongConfig)


class _Body(_Cfg):
    """Fields shared by the experiment spec and each expanded run."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Experiment name (folder name).")
    version: int = Field(1, ge=1, description="Bump when the meaning of the spec changes.")
    description: str = Field("", description="The question this experiment asks.")
    kind: Literal["train"] = "train"
    paper_table: Literal["table1", "table2", "table3"] | None = Field(
        None, description="EBPO paper table this spec reproduces (reports put the reported rows beside ours)."
    )
    model: ModelConfig = Field(default_factory=ModelConfig)
    task: TaskConfig = Field(default_factory=SyntheticTaskConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    advantage: AdvantageConfig = Field(default_factory=EBPOAdvantage)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)

    @model_validator(mode="after")
    def _cross_field(self) -> _Body:
        g, p = self.rollout.group_size, self.train.prompts_per_step
        if g < self.advantage.min_group_size:
            raise ValueError(
                f"rollout.group_size={g} but advantage '{self.advantage.type}' needs at least "
                f"{self.advantage.min_group_size} samples per prompt; raise rollout.group_size"
            )
        if p < self.advantage.min_prompts:
            raise ValueError(
                f"train.prompts_per_step={p} but advantage '{self.advantage.type}' needs at least "
                f"{self.advantage.min_prompts} prompts per batch; raise train.prompts_per_step"
            )
        scale = getattr(self.advantage, "reward_scale", self.reward.scale)
        if scale != self.reward.scale:
            raise ValueError(
                f"advantage.reward_scale={scale} but reward.scale={self.reward.scale}; set "
                f"advantage.reward_scale: {self.reward.scale} so the tracker reads rewards on their own scale"
            )
        if (p * g) % self.train.mini_batches:
            raise ValueError(
                f"train.mini_batches={self.train.mini_batches} must divide prompts_per_step x group_size "
                f"= {p * g}; choose a divisor"
            )
        if self.model.warm_start is not None and (self.model.path != "tiny" or self.task.type != "synthetic"):
            raise ValueError(
                "model.warm_start needs model.path 'tiny' and task.type 'synthetic'; remove warm_start"
            )
        if self.loss.aggregation == "seq_mean_token_sum_norm" and self.loss.constant_norm is None:
            # declared, not silent: the resolved spec shows the value used
            object.__setattr__(
                self, "loss", self.loss.model_copy(update={"constant_norm": self.rollout.max_new_tokens})
            )
        if self.eval.max_new_tokens is None:
            object.__setattr__(
                self, "eval", self.eval.model_copy(update={"max_new_tokens": self.rollout.max_new_tokens})
            )
        return self

    def eval_engine(self) -> Any:
        """The engine config of held-out evaluation: rollout.backend's when eval.backend names the same
        engine, else that engine's defaults."""
        return engine_config(self.eval.backend, self.rollout.backend)


class ExperimentSpec(_Body):
    """A spec file: the base run, its arms, its grid and its seeds."""

    seeds: list[int] = Field(
        [0], min_length=1, description="Training seeds; each arm x grid point runs once per seed."
    )
    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Arm name -> partial override deep-merged onto the base."
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="Dotted field path -> values, expanded as a cross product."
    )


class RunConfig(_Body):
    """One expanded run: a complete spec with a single seed and its id."""

    seed: int
    arm: str
    run_id: str
    axes: dict[str, Any] = Field(default_factory=dict, description="Grid values of this run.")
