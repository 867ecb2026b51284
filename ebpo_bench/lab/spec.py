"""Spec of the estimator lab (``kind: simulation``): pydantic models and ``load_lab_spec`` (torch-free).

A lab spec names prompt-difficulty distributions, the estimators to compare (every registered one
with its default options, plus named variants such as ``ebpo_cumulative: {type: ebpo, prior_scope:
cumulative}``) and three sweeps: ``stats`` (baseline MSE, zero-signal share, ... over G and batch
order), ``penalty`` (failure penalty against the prior mean, Cor. 3.5) and ``policy`` (a softmax
bandit policy trained with each estimator's advantages). Every default is declared here, so the
resolved spec in ``lab.json`` shows every knob. Errors are ``SpecError`` messages of the form
``file: field.path: problem`` like the training specs'; named entries (distributions, variants)
are checked one by one first so their messages name the entry and suggest the closest field.

This module also reads the per-prompt pass rates a ``fitted`` distribution is built from, so a bad
file fails at load time, before anything imports torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, Field, StringConstraints, ValidationError, model_validator

from ebpo_bench.config.base import Cfg as _Cfg
from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS, AdvantageConfig
from ebpo_bench.config.load import SpecError, format_validation_error, read_yaml
from ebpo_bench.config.spec import OutputConfig
from ebpo_bench.registry import suggest

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Order = Literal["shuffled", "clustered"]


# ---------------------------------------------------------------- distributions of prompt difficulty
class BetaDistribution(_Cfg):
    """Success probabilities p ~ Beta(a, b); one topic, so a clustered order is skipped."""

    type: Literal["beta"] = "beta"
    a: float = Field(1.0, gt=0, description="First Beta parameter (mean a / (a + b)).")
    b: float = Field(1.0, gt=0, description="Second Beta parameter.")


class TopicConfig(_Cfg):
    """One topic of a mixture: p ~ Beta(mean * concentration, (1 - mean) * concentration)."""

    mean: float = Field(gt=0, lt=1, description="Mean success probability of the topic's prompts.")
    concentration: float = Field(10.0, gt=0, description="a + b of the topic's Beta (larger = tighter).")
    weight: float = Field(1.0, gt=0, description="Relative share of the pool drawn from this topic.")


class TopicMixtureDistribution(_Cfg):
    """Prompts from topics of different mean difficulty (Prop. 3.8's clusters)."""

    type: Literal["topic_mixture"] = "topic_mixture"
    topics: list[TopicConfig] = Field(min_length=1, description="The topics; each prompt belongs to one.")


class GaussianDistribution(_Cfg):
    """Thm 3.3's setting: theta ~ N(mu, tau^2), rewards ~ N(theta, sigma^2); reward_scale does not apply."""

    type: Literal["gaussian"] = "gaussian"
    mu: float = Field(0.5, description="Prior mean of the prompts' values.")
    tau: float = Field(0.15, ge=0, description="Prior std of the prompts' values (between-prompt spread).")
    sigma: float = Field(0.5, gt=0, description="Reward noise std within a prompt.")


class FittedDistribution(_Cfg):
    """Pass rates fitted to a results file: an eval.jsonl (or a run folder holding one) or a CSV.

    eval.jsonl rows need ``problem_id`` and ``score_correct`` (``benchmark`` becomes the topic); a CSV
    needs ``pass_rate`` and ``n`` columns, or ``correct`` and ``n`` (optional ``topic``).
    """

    type: Literal["fitted"] = "fitted"
    path: str = Field(description="File with per-prompt results (relative to the working directory).")
    fit: Literal["beta", "empirical"] = Field(
        "beta",
        description="'beta': method-of-moments Beta, binomial noise removed; 'empirical': resample rates.",
    )
    step: int | None = Field(None, description="eval.jsonl step to read (None = the last one).")

    @model_validator(mode="after")
    def _readable(self) -> FittedDistribution:
        read_pass_rates(self.path, self.step)  # raises ValueError with the reason
        return self


DISTRIBUTIONS: dict[str, type[_Cfg]] = {
    c.model_fields["type"].default: c
    for c in (BetaDistribution, TopicMixtureDistribution, GaussianDistribution, FittedDistribution)
}
Distribution = Annotated[
    BetaDistribution | TopicMixtureDistribution | GaussianDistribution | FittedDistribution,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------- what to run
def _pool_fits(cfg):
    """Batches are slices of permutations of the pool, so a batch cannot hold more prompts than the pool."""
    if cfg.pool_size < cfg.prompts_per_batch:
        raise ValueError(
            f"pool_size={cfg.pool_size} < prompts_per_batch={cfg.prompts_per_batch}; raise pool_size"
        )
    return cfg


class EstimatorsConfig(_Cfg):
    """Which estimators the lab compares."""

    registered: bool = Field(
        True, description="Every estimator in the registry, default options (new ones included)."
    )
    variants: dict[Name, AdvantageConfig] = Field(
        default_factory=dict,
        description="Extra named configurations, e.g. ebpo_cumulative: {type: ebpo, ...}.",
    )

    @model_validator(mode="after")
    def _names(self) -> EstimatorsConfig:
        clash = sorted(set(self.variants) & set(ESTIMATOR_CONFIGS))
        if clash:
            raise ValueError(
                f"variant name(s) {clash} shadow registered estimators; rename, e.g. '{clash[0]}_v2'"
            )
        if not self.registered and not self.variants:
            raise ValueError("no estimators: set registered: true or declare variants")
        return self


class StatsConfig(_Cfg):
    """Estimator statistics over G, distribution and batch order (a fresh estimator per seed)."""

    enabled: bool = True
    group_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        [2, 4, 8, 16, 32], min_length=1, description="G values."
    )
    prompts_per_batch: int = Field(64, ge=1, description="P: prompts per batch.")
    pool_size: int = Field(
        256, ge=1, description="Distinct prompts per seed; batches cycle through them in epochs."
    )
    batches: int = Field(20, ge=1, description="Batches per seed (stateful priors evolve over them).")
    seeds: int = Field(10, ge=1, description="Independent replicates (pool, order and rewards).")
    orders: list[Order] = Field(
        ["shuffled", "clustered"], min_length=1, description="Batch orders to compare."
    )

    @model_validator(mode="after")
    def _pool(self) -> StatsConfig:
        return _pool_fits(self)


class PenaltyConfig(_Cfg):
    """Failure penalty against the prior mean (Cor. 3.5): Beta(m c, (1 - m) c) pools, shuffled order."""

    enabled: bool = True
    means: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        min_length=2,
        description="Mean success rates m swept.",
    )
    concentration: float = Field(4.0, gt=0, description="c = a + b of each Beta.")
    group_size: int = Field(8, ge=1, description="G of the sweep.")
    prompts_per_batch: int = Field(64, ge=1, description="P.")
    batches: int = Field(5, ge=1, description="Batches per seed.")
    seeds: int = Field(10, ge=1, description="Replicates per mean.")


class PolicyConfig(_Cfg):
    """Softmax bandit per prompt (outcome 0 correct, the rest wrong) trained by the policy gradient."""

    enabled: bool = True
    distribution: str | None = Field(
        None, description="Initial success rates (None = first non-Gaussian one)."
    )
    order: Order = Field("shuffled", description="Batch order through the prompt pool.")
    parameterisation: Literal["per_prompt", "skill"] = Field(
        "per_prompt",
        description="All K logits per prompt learned, or one shared skill added to the correct logit.",
    )
    outcomes: int = Field(4, ge=2, description="K answers per prompt, one correct.")
    wrong_spread: float = Field(1.0, ge=0, description="Std of the initial wrong-answer logits.")
    group_sizes: list[Annotated[int, Field(ge=1)]] = Field(
        [2, 4, 8, 16, 32], min_length=1, description="G values."
    )
    prompts_per_batch: int = Field(32, ge=1, description="P.")
    pool_size: int = Field(128, ge=1, description="Prompts in the pool.")
    steps: int = Field(100, ge=1, description="Policy-gradient steps.")
    lr: float = Field(
        10.0, gt=0, description="SGD step on the logits; with adam, Adam's step (about 0.05 fits)."
    )
    optimizer: Literal["sgd", "adam"] = Field(
        "sgd", description="SGD keeps each estimator's advantage scale."
    )
    seeds: int = Field(20, ge=1, description="Replicates (trained side by side, one estimator object each).")
    log_every: int = Field(5, ge=1, description="Steps between rows of learning.csv.")

    @model_validator(mode="after")
    def _pool(self) -> PolicyConfig:
        return _pool_fits(self)


class LabSpec(_Cfg):
    """A simulation experiment: estimators x distributions x sweeps, no model or data needed."""

    name: Name = Field(description="Experiment name (results/<name>/).")
    version: int = Field(1, ge=1, description="Bump when the meaning of the spec changes.")
    description: str = Field("", description="The question this experiment asks.")
    kind: Literal["simulation"] = "simulation"
    seed: int = Field(0, description="Base seed of every random stream.")
    reward_scale: Literal["zero_one", "plus_minus_one"] = Field(
        "zero_one", description="Bernoulli rewards 1/0 or +1/-1."
    )
    estimators: EstimatorsConfig = Field(default_factory=EstimatorsConfig)
    distributions: dict[Name, Distribution] = Field(
        default_factory=lambda: {"uniform": BetaDistribution()},
        min_length=1,
        description="Named difficulty laws.",
    )
    stats: StatsConfig = Field(default_factory=StatsConfig)
    penalty: PenaltyConfig = Field(default_factory=PenaltyConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _policy_distribution(self) -> LabSpec:
        bern = [k for k, d in self.distributions.items() if d.type != "gaussian"]
        name = self.policy.distribution
        if self.policy.enabled and name is None and not bern:
            raise ValueError(
                "policy needs a Bernoulli distribution (not gaussian); add one or set policy.enabled: false"
            )
        if name is not None and name not in self.distributions:
            raise ValueError(
                f"policy.distribution '{name}' is not a distribution.{suggest(name, self.distributions)} "
                f"Defined: {', '.join(self.distributions)}"
            )
        if name is not None and name not in bern:
            raise ValueError(
                f"policy.distribution '{name}' is gaussian; the policy needs correct/incorrect outcomes"
            )
        return self

    def policy_distribution(self) -> str:
        """Name of the distribution the policy sweep starts from."""
        return self.policy.distribution or next(
            k for k, d in self.distributions.items() if d.type != "gaussian"
        )


# ---------------------------------------------------------------- loading
def load_lab_spec(path_or_dict: str | Path | dict, source: str = "<spec>") -> LabSpec:
    """Validate a lab spec given as a YAML path or a mapping.

    Args:
        path_or_dict: spec file, or the already-parsed mapping.
        source: name used in messages when a mapping is given (a path names itself).

    Returns:
        The validated ``LabSpec``.

    Raises:
        SpecError: one message naming the file, the field path, the problem and what to set.
    """
    if isinstance(path_or_dict, (str, Path)):
        source = str(path_or_dict)
        raw = read_yaml(Path(path_or_dict))
    elif isinstance(path_or_dict, dict):
        raw = path_or_dict
    else:
        raise SpecError(
            f"{source}: a lab spec must be a mapping or a YAML path, got {type(path_or_dict).__name__}"
        )
    est = raw.get("estimators")
    _check_named(raw.get("distributions"), DISTRIBUTIONS, "distributions", source)
    _check_named(
        est.get("variants") if isinstance(est, dict) else None,
        ESTIMATOR_CONFIGS,
        "estimators.variants",
        source,
    )
    try:
        return LabSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, source, LabSpec)) from None


def _check_named(entries: Any, classes: dict[str, type[BaseModel]], where: str, source: str) -> None:
    """Validate each ``name: {type: ..., ...}`` entry with its own class, for messages that name the entry."""
    if not isinstance(entries, dict):
        return  # the model validation reports the wrong type
    for key, entry in entries.items():
        path = f"{where}.{key}"
        if not isinstance(entry, dict):
            raise SpecError(
                f"{source}: {path}: expected a mapping with a 'type' (one of {', '.join(classes)})"
            )
        kind = entry.get("type")
        if kind not in classes:
            what = (
                "'type' is missing"
                if kind is None
                else f"unknown type '{kind}'.{suggest(str(kind), classes)}"
            )
            raise SpecError(f"{source}: {path}.type: {what} Available: {', '.join(classes)}")
        try:
            classes[kind].model_validate(entry)
        except ValidationError as e:
            raise SpecError(format_validation_error(e, source, classes[kind], prefix=path)) from None


def read_pass_rates(path: str | Path, step: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-prompt pass rates from an eval.jsonl (or a run folder holding one) or a CSV.

    Returns:
        (rates (N,), samples per prompt n (N,), topic labels (N,) as strings).

    Raises:
        ValueError: missing file, unknown format, missing columns or no rows.
    """
    import pandas as pd

    p = Path(path)
    p = p / "eval.jsonl" if p.is_dir() else p
    if not p.is_file():
        raise ValueError(f"fitted distribution: no file {p}; give an eval.jsonl, a run folder or a CSV")
    if p.suffix == ".csv":
        df = pd.read_csv(p)
        if "n" not in df or not ({"pass_rate", "correct"} & set(df.columns)):
            raise ValueError(f"{p}: a CSV needs columns n and pass_rate (or correct); has {list(df.columns)}")
        rate = df["pass_rate"] if "pass_rate" in df else df["correct"] / df["n"]
        topic = df["topic"].astype(str) if "topic" in df else pd.Series(["all"] * len(df))
        return _finish(p, rate.to_numpy(float), df["n"].to_numpy(float), topic.to_numpy())
    rows = [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
    df = pd.DataFrame(rows)
    if df.empty or not {"problem_id", "score_correct"} <= set(df.columns):
        raise ValueError(f"{p}: eval rows need problem_id and score_correct")
    if "step" in df:
        df = df[df["step"] == (df["step"].max() if step is None else step)]
    df = df.assign(
        benchmark=df["benchmark"].astype(str) if "benchmark" in df else "all",
        score=df["score_correct"].astype(float),
    )
    g = df.groupby(["benchmark", "problem_id"])["score"]
    stats = pd.DataFrame({"rate": g.mean(), "n": g.size()}).reset_index()
    return _finish(
        p, stats["rate"].to_numpy(float), stats["n"].to_numpy(float), stats["benchmark"].to_numpy()
    )


def _finish(
    p: Path, rate: np.ndarray, n: np.ndarray, topic: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ok = np.isfinite(rate) & (n >= 1) & (rate >= 0) & (rate <= 1)
    if not ok.any():
        raise ValueError(f"{p}: no prompt with a pass rate in [0, 1] (for the chosen step)")
    return rate[ok], n[ok], topic[ok].astype(str)
