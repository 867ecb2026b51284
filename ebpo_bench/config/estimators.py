"""The spec union of advantage-estimator configs (torch-free).

One pydantic model per estimator, discriminated on ``type``; each holds only its own knobs, and
the field names equal the keyword options of ``ebpo_bench.estimators.make(type, **options)``.
A test checks that this union and the estimator registry list the same names and options.

Formulas live in the estimators' docstrings (``ebpo_bench/estimators/``); the fields here only
say what each knob switches.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Union

from pydantic import Field

from ebpo_bench.config.base import Cfg


class _Estimator(Cfg):
    #: smallest group size the estimator is defined for (checked against rollout.group_size)
    min_group_size: ClassVar[int] = 2
    #: smallest number of prompts per batch it is defined for (checked against train.prompts_per_step)
    min_prompts: ClassVar[int] = 1

    def options(self) -> dict:
        """Keyword options for ``estimators.make(self.type, **options)``."""
        return self.model_dump(exclude={"type"})


class EBPOAdvantage(_Estimator):
    """EBPO (arXiv 2602.05165): group mean shrunk toward a global prior, then standardised."""

    min_group_size: ClassVar[int] = 1
    type: Literal["ebpo"] = "ebpo"
    prior_scope: Literal["batch", "cumulative", "ema"] = Field(
        "batch",
        description="Lifetime of the prior statistics: 'batch' resets every step (authors' code), "
        "'cumulative' is Welford over all of training (paper Alg. 1), 'ema' decays with ema_decay.",
    )
    ema_decay: float = Field(0.9, ge=0.0, lt=1.0, description="Decay of the 'ema' prior; ignored otherwise.")
    sigma2: Literal["pooled_total", "mean_within"] = Field(
        "pooled_total",
        description="sigma^2 as the variance of all rewards (paper and code) or the mean within-group "
        "variance.",
    )
    var_ddof: Literal[0, 1] = Field(0, description="Degrees of freedom for sigma^2 and tau^2 (code: 0).")
    adv_norm: Literal["batch_std", "batch_mean", "none"] = Field(
        "batch_std", description="Final step: batch z-score, batch-mean centring only, or raw r - V."
    )
    eps: float = Field(
        1e-6, gt=0, description="Stabiliser of the z-score; S = 1 when sigma^2/G + tau^2 <= eps."
    )


class GRPOAdvantage(_Estimator):
    """GRPO: (r - group mean) / (group std + eps); Dr.GRPO's advantage with normalize_std false."""

    type: Literal["grpo"] = "grpo"
    normalize_std: bool = Field(True, description="Divide by the group std (false = Dr.GRPO advantage).")
    std_ddof: Literal[0, 1] = Field(1, description="Group std degrees of freedom (verl/TRL: 1).")
    eps: float = Field(1e-6, gt=0, description="Added to the group std.")


class GRPOBNAdvantage(_Estimator):
    """Group-mean baseline with a batch-level std (the control for EBPO's entropy argument)."""

    type: Literal["grpo_bn"] = "grpo_bn"
    std_of: Literal["residuals", "rewards"] = Field(
        "residuals", description="Batch std of r - group mean (= EBPO with S = 0) or of raw rewards (TRL)."
    )
    eps: float = Field(1e-6, gt=0, description="Added to the batch std.")


class RLOOAdvantage(_Estimator):
    """RLOO: r minus the mean of the other G - 1 samples of the same prompt."""

    type: Literal["rloo"] = "rloo"


class ReinforcePPBaselineAdvantage(_Estimator):
    """REINFORCE++-baseline: group-mean residual, then whitened over the batch."""

    type: Literal["reinforce_pp_baseline"] = "reinforce_pp_baseline"
    eps: float = Field(1e-6, gt=0, description="Added to the batch std.")
    token_weighted: bool = Field(
        True, description="Whiten with token-weighted statistics (verl) when lengths are known."
    )


class OPOAdvantage(_Estimator):
    """OPO: length-weighted group-mean baseline."""

    type: Literal["opo"] = "opo"


class JSPOAdvantage(_Estimator):
    """JSPO (arXiv 2511.03710): leave-one-question-out James-Stein mix of the RLOO and batch baselines."""

    min_prompts: ClassVar[int] = 2
    type: Literal["jspo"] = "jspo"
    eps: float = Field(1e-6, gt=0, description="Added to the shrinkage denominator.")


class SPOAdvantage(_Estimator):
    """SPO-style persistent per-prompt value tracker (Beta-EMA with fixed rho), batch-normalised.

    ``init="authors"`` (default) is the EBPO authors' tracker: an unseen prompt starts from a Beta(n0/2, n0/2)
    prior (baseline 0.5) and each visit adds one observation, the clamped group success rate. It works at
    G = 1, as SPO's single-stream setting intends. ``init="group_mean"`` is the earlier ebpo-bench rule (an
    unseen prompt's baseline is its own group mean, a visit adds G observations); it needs G >= 2, because at
    G = 1 every first visit would get advantage 0.
    """

    type: Literal["spo"] = "spo"
    init: Literal["authors", "group_mean"] = Field(
        "authors",
        description="Unseen prompts: the authors' Beta prior (baseline 0.5, one observation per visit) or "
        "the prompt's own group mean (G observations per visit; needs G >= 2).",
    )
    rho: float = Field(0.9, ge=0.0, lt=1.0, description="Decay of the per-prompt pseudo-counts.")
    prior_strength: float = Field(
        8.0,
        gt=0,
        description="authors init: n0 = alpha + beta of the prior (authors: 1 / (1 - 0.875) = 8, so "
        "alpha = beta = 4); ignored by group_mean.",
    )
    reward_scale: Literal["zero_one", "plus_minus_one"] = Field(
        "zero_one",
        description="authors init: how rewards map to the tracker's success rate p (zero_one: p = r; "
        "plus_minus_one: p = (r + 1) / 2); set it to reward.scale. Ignored by group_mean.",
    )
    adv_norm: Literal["batch_std", "none"] = Field("batch_std", description="Batch z-score or raw r - v.")
    eps: float = Field(1e-6, gt=0, description="Stabiliser of the z-score.")

    @property
    def min_group_size(self) -> int:  # type: ignore[override]  # depends on init, unlike the others
        return 2 if self.init == "group_mean" else 1


_ALL = (
    EBPOAdvantage,
    GRPOAdvantage,
    GRPOBNAdvantage,
    RLOOAdvantage,
    ReinforcePPBaselineAdvantage,
    OPOAdvantage,
    JSPOAdvantage,
    SPOAdvantage,
)

AdvantageConfig = Annotated[Union[_ALL], Field(discriminator="type")]  # noqa: UP007 (a tuple of classes)

#: estimator name -> its config class (for ``ls``, docs and the registry-consistency test)
ESTIMATOR_CONFIGS: dict[str, type[_Estimator]] = {cls.model_fields["type"].default: cls for cls in _ALL}
