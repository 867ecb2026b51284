"""Advantage estimators: rewards (P, G) -> advantages (P, G) plus metrics, one call signature for all.

``build(cfg)`` makes one from its spec config (``ebpo_bench/config/estimators.py``: the only place
options are declared and validated); ``make(name, **options)`` is the same from keyword options, for
tests and the lab. The trainer calls the estimator once per step on the full gathered batch and
checkpoints it through ``state_dict``; broadcasting to tokens happens in the loss.

Families, one module each: ``group`` (GRPO, GRPO-BN, RLOO, REINFORCE++-baseline, OPO), ``ebpo``,
``jspo``, ``spo``. Deliberate deviations (repeated in each class docstring): EBPO defaults to the
authors' code (prior reset every batch, population variances, mu_glob = mean of group means), the
paper's cumulative prior and an EMA prior are switches; REINFORCE++-baseline divides by (std + eps),
not verl's rsqrt(var + 1e-8); SPO has a fixed rho; JSPO's O(P^2) leave-one-question-out loop becomes
sums (same numbers). Adding an estimator: its config class, its class here (``class X(_Base,
name="x")``), one test.
"""

from __future__ import annotations

from typing import Any

from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS
from ebpo_bench.estimators import ebpo, group, jspo, spo  # noqa: F401  (each registers its estimators)
from ebpo_bench.estimators.base import ESTIMATORS, ZERO_ADV_TOL, Estimator, PromptIds

__all__ = ["ZERO_ADV_TOL", "Estimator", "PromptIds", "available", "build", "make"]


def build(cfg: Any) -> Estimator:
    """The estimator for a validated config object (``run.advantage``)."""
    return ESTIMATORS.get(cfg.type)(cfg)


def make(name: str, **options: Any) -> Estimator:
    """Build estimator ``name`` from keyword options: KeyError (with a suggestion) for an unknown name,
    a pydantic ``ValidationError`` (a ValueError) naming the option for an unknown or bad option."""
    cls = ESTIMATORS.get(name)  # the registry's "did you mean" error for a typo
    if name not in ESTIMATOR_CONFIGS:  # a test-only estimator registered without a spec config
        return cls(**options)
    return build(ESTIMATOR_CONFIGS[name](**options))


def available() -> list[str]:
    """Names of all registered estimators, sorted."""
    return ESTIMATORS.names()
