"""The spec's ``loss`` section (torch-free): the policy-gradient surrogate as a discriminated union on
``type``, and the terms shared by every surrogate (token aggregation, KL to the reference, entropy
bonus, truncated importance sampling).

Surrogates (formulas in ``ebpo_bench/train/surrogates.py``):
- ``ppo_clip``: PPO's clipped ratio with DAPO's clip-higher and verl's dual clip (the default).
- ``clip_cov``: Clip-Cov of the Entropy Mechanism paper (Cui et al. 2025, arXiv 2505.22617): PPO clip,
  plus a random ``clip_ratio`` share of the tokens whose centred advantage x log-prob covariance lies in
  (cov_lb, cov_ub) get no gradient.
- ``kl_cov``: KL-Cov of the same paper: the unclipped ratio surrogate, plus ``kl_coef`` x |log ratio| on
  the ``kl_ratio`` share of tokens with the largest covariance.
Defaults are verl's (``actor.policy_loss``); the EBPO authors' EntropyMech row uses Clip-Cov with
clip ratio 2e-4, bounds 1-5, PPO clip 1.0 / 1.0 (see ``specs/paper_table1.yaml``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from ebpo_bench.config.base import Cfg as _Cfg


class PPOClipSurrogate(_Cfg):
    """-min(ratio A, clip(ratio, 1 - clip_low, 1 + clip_high) A), capped at clip_c |A| for A < 0."""

    type: Literal["ppo_clip"] = "ppo_clip"
    clip_low: float = Field(0.2, ge=0, lt=1, description="Lower clip: ratio >= 1 - clip_low.")
    clip_high: float = Field(
        0.2, ge=0, description="Upper clip: ratio <= 1 + clip_high (DAPO clip-higher: 0.28)."
    )
    clip_c: float | None = Field(None, gt=1, description="Dual clip for negative advantages (verl: 3.0).")


class ClipCovSurrogate(_Cfg):
    """Clip-Cov (Entropy Mechanism): PPO clip, and a random share of high-covariance tokens detached."""

    type: Literal["clip_cov"] = "clip_cov"
    clip_low: float = Field(
        0.2, ge=0, le=1, description="PPO lower clip (the EBPO authors' EntropyMech: 1.0)."
    )
    clip_high: float = Field(0.2, ge=0, description="PPO upper clip (the EBPO authors' EntropyMech: 1.0).")
    clip_ratio: float = Field(
        2e-4, gt=0, le=1, description="Share of valid tokens whose gradient is removed (at least one token)."
    )
    cov_lb: float = Field(1.0, description="Tokens are eligible when cov_lb < covariance < cov_ub.")
    cov_ub: float = Field(5.0, description="Upper covariance bound of eligible tokens.")

    @model_validator(mode="after")
    def _bounds(self) -> ClipCovSurrogate:
        if not self.cov_lb < self.cov_ub:
            raise ValueError(f"cov_lb ({self.cov_lb}) must be below cov_ub ({self.cov_ub})")
        return self


class KLCovSurrogate(_Cfg):
    """KL-Cov (Entropy Mechanism): unclipped ratio surrogate plus an |log ratio| penalty on top-covariance
    tokens."""

    type: Literal["kl_cov"] = "kl_cov"
    kl_ratio: float = Field(2e-4, gt=0, le=1, description="Share of valid tokens that get the penalty.")
    kl_coef: float = Field(1.0, ge=0, description="Weight of |log pi - log pi_old| on those tokens.")


SurrogateConfig = Annotated[
    Union[PPOClipSurrogate, ClipCovSurrogate, KLCovSurrogate],  # noqa: UP007 (one line per member reads better)
    Field(discriminator="type"),
]
#: surrogate name -> its config class (for ``ls`` and the registry-consistency test)
SURROGATE_CONFIGS: dict[str, type[_Cfg]] = {
    c.model_fields["type"].default: c for c in (PPOClipSurrogate, ClipCovSurrogate, KLCovSurrogate)
}
AGGREGATIONS = ("token_mean", "seq_mean_token_mean", "seq_mean_token_sum_norm")
_MOVED = ("clip_low", "clip_high", "clip_c")


class TISConfig(_Cfg):
    """Token-level truncated importance sampling for a sampler that differs from the trainer (e.g. vLLM)."""

    enabled: bool = Field(
        False,
        description="Re-score old log-probs with the trainer; weight tokens by "
        "min(pi_trainer / pi_sampler, cap); logged as tis/*.",
    )
    cap: float = Field(
        2.0, gt=0, description="Upper truncation of the importance weight (verl/TRL default 2)."
    )


class LossConfig(_Cfg):
    """Surrogate, token aggregation, KL and entropy terms (ebpo_bench/train/losses.py)."""

    surrogate: SurrogateConfig = Field(
        default_factory=PPOClipSurrogate, description="Policy-gradient surrogate (`ebpo-bench ls losses`)."
    )
    aggregation: Literal[AGGREGATIONS] = "token_mean"
    constant_norm: int | None = Field(
        None, ge=1, description="Normaliser of seq_mean_token_sum_norm; resolved to rollout.max_new_tokens."
    )
    kl_coef: float = Field(
        0.0, ge=0, description="KL-to-reference coefficient in the loss (0 = no reference model)."
    )
    kl_estimator: Literal["k1", "k3"] = "k3"
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus coefficient.")
    tis: TISConfig = Field(default_factory=TISConfig)

    @model_validator(mode="before")
    @classmethod
    def _default_type_and_moved_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        # Specs written before the surrogate union had loss.clip_low / clip_high / clip_c: say where they
        # went instead of "unknown field".
        moved = [k for k in _MOVED if k in data]
        if moved:
            raise ValueError(
                f"{', '.join(moved)} moved into loss.surrogate: write "
                f"`surrogate: {{type: ppo_clip, {', '.join(f'{k}: {data[k]}' for k in moved)}}}`"
            )
        sur = data.get("surrogate")
        if isinstance(sur, dict) and "type" not in sur:  # the default surrogate, as when the block is absent
            data = {**data, "surrogate": {"type": "ppo_clip", **sur}}
        return data
