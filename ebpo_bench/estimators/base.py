"""The shared call path of every advantage estimator and the batch statistics they are built from.

``Estimator`` is what the trainer relies on; ``_Base`` turns a subclass's ``_advantages`` into that
contract (input checks, the group-size and prompt-count limits declared by the estimator's config
class, the common metrics). Subclasses register themselves under their config's ``type``.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor

from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS
from ebpo_bench.registry import Registry

ZERO_ADV_TOL = 1e-8  # |A| below this counts as "no learning signal" in zero_adv_frac
ESTIMATORS: Registry[type] = Registry("advantage estimator")
PromptIds = Sequence[Hashable] | Tensor | None


class Estimator(Protocol):
    """What the trainer relies on: ``__call__(rewards (P, G), *, prompt_ids=None (P,), lengths=None (P, G))``.

    Returns advantages (P, G) in the rewards' dtype (float32 for integer/bool rewards) and python floats
    keyed ``<name>/...``, always with ``all_fail_frac``, ``all_success_frac`` and ``zero_adv_frac``. State
    is updated exactly once per call; ``state_dict()`` gives plain python containers (JSON- and
    torch.save-able) that ``load_state_dict`` restores. Stateless estimators return ``{}`` and accept only
    ``{}``.
    """

    name: str

    def __call__(
        self, rewards: Tensor, *, prompt_ids: PromptIds = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


def var(x: Tensor, dim: int | None, ddof: int) -> Tensor:
    """Variance with ``ddof`` over ``dim`` (None: all); 0 where the count is <= ddof instead of NaN."""
    n = x.numel() if dim is None else x.shape[dim]
    if n <= ddof:
        return x.new_zeros(()) if dim is None else x.new_zeros(x.shape[:dim] + x.shape[dim + 1 :])
    return x.var(correction=ddof) if dim is None else x.var(dim=dim, correction=ddof)


def whiten(x: Tensor, eps: float, weights: Tensor | None = None) -> Tensor:
    """(x - mean) / (std + eps) over the whole batch; unbiased std, optionally weighted by token counts."""
    w = torch.ones_like(x) if weights is None else weights
    total = w.sum()
    mean = (w * x).sum() / total.clamp_min(1e-12)
    variance = (w * (x - mean) ** 2).sum() / (total - 1).clamp_min(1e-12)
    std = torch.where(total > 1, variance.sqrt(), torch.zeros_like(variance))  # one entry has no spread
    return (x - mean) / (std + eps)


def common_metrics(name: str, r: Tensor, adv: Tensor) -> dict[str, float]:
    """Group regimes (all equal and <= 0 / > 0, valid for 0/1 and -1/+1 rewards) and the zero-advantage
    share."""
    lo, hi = r.aminmax(dim=1)
    same = lo == hi
    vals = torch.stack(
        [
            (same & (hi <= 0)).double().mean(),
            (same & (hi > 0)).double().mean(),
            (adv.abs() < ZERO_ADV_TOL).double().mean(),
        ]
    ).tolist()
    return {
        f"{name}/all_fail_frac": vals[0],
        f"{name}/all_success_frac": vals[1],
        f"{name}/zero_adv_frac": vals[2],
    }


class _Base:
    """Shared call path: input checks, the subclass's ``_advantages(r, keys, L)``, then the common metrics.

    A subclass is declared as ``class X(_Base, name="x")``; its options are the fields of the config class
    ``ESTIMATOR_CONFIGS["x"]`` (validated there, once) and reach it as ``self.cfg``.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, *, name: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if name not in ESTIMATOR_CONFIGS:
            raise TypeError(f"estimator '{name}' has no config class in ebpo_bench/config/estimators.py")
        cls.name = name  # the registry name doubles as the metric prefix
        ESTIMATORS.register(name)(cls)

    def __init__(self, cfg: Any) -> None:
        if getattr(cfg, "type", None) != self.name:
            raise TypeError(f"{type(self).__name__} needs a '{self.name}' config, got {cfg!r}")
        self.cfg = cfg

    def __call__(
        self, rewards: Tensor, *, prompt_ids: PromptIds = None, lengths: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        r = torch.as_tensor(rewards)
        if r.dim() != 2 or r.numel() == 0:
            raise ValueError(f"rewards must be a non-empty (P, G) tensor, got shape {tuple(r.shape)}")
        self._check_size(*r.shape)
        r = r if r.is_floating_point() else r.float()
        L = None if lengths is None else torch.as_tensor(lengths, device=r.device).to(r.dtype)
        if L is not None and (L.shape != r.shape or bool((L < 0).any())):
            raise ValueError(f"lengths must be a non-negative (P, G) tensor like rewards {tuple(r.shape)}")
        ids = prompt_ids.tolist() if isinstance(prompt_ids, Tensor) else prompt_ids
        keys = None if ids is None else [str(i) for i in ids]  # str keys so that per-prompt state serialises
        if keys is not None and len(keys) != r.shape[0]:
            raise ValueError(f"prompt_ids has {len(keys)} entries but rewards has P={r.shape[0]} rows")
        adv, own = self._advantages(r, keys, L)
        metrics = {f"{self.name}/{k}": float(v) for k, v in own.items()}
        return adv, {**metrics, **common_metrics(self.name, r, adv)}

    def _check_size(self, P: int, G: int) -> None:
        """The same limits the spec checks (the config class's ``min_group_size`` / ``min_prompts``)."""
        if self.cfg.min_group_size > G:
            raise ValueError(
                f"{self.name} is group-relative and needs G >= {self.cfg.min_group_size} samples per "
                f"prompt, got G={G}; raise rollout.group_size or pick an estimator defined for G = 1 "
                "(ebpo, spo)"
            )
        if self.cfg.min_prompts > P:
            raise ValueError(
                f"{self.name} needs P >= {self.cfg.min_prompts} prompts per batch, got P={P}; "
                "raise train.prompts_per_step"
            )

    def _advantages(self, r: Tensor, keys: list[str] | None, L: Tensor | None) -> tuple[Tensor, dict]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        if state:
            raise ValueError(
                f"advantage estimator '{self.name}' is stateless but got state keys {sorted(state)}"
            )
