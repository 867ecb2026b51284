"""Phase timing that treats every trainer the same: patches on shared primitives, not on trainers.

A step's wall time is split into phases by timing the calls both trainers make anyway:

- ``generation``: ``<model class>.generate`` (the forwards inside it count here, not as compute)
  and our HF backend's shared prompt prefill (``rollout.hf.shared_prefill``);
- ``reward``: ``MathVerifier.score`` (both trainers grade through the same verifier);
- ``advantage``: the estimator call (ours only; TRL computes its advantage inline, so for TRL
  that time lands in overhead);
- ``compute``: the model's (or its backbone's) ``forward`` outside generation, ``backward``
  (through accelerate or the tensor), gradient-norm clipping and ``AdamW.step``.

Overhead is the rest of the step: wall − generation − reward − advantage − compute. Loss
arithmetic on the logits (log-softmax, gather, clipping) happens outside ``forward`` in both
trainers and therefore counts as overhead for both; with the tiny model's 260-token vocabulary it
is small. Only the outermost probe counts, so nested calls are never double counted. On CUDA each
probe synchronises before reading the clock, so kernels are charged to the phase that launched them.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

PHASES = ("generation", "reward", "advantage", "compute")


class PhaseProbe:
    """Accumulates seconds per phase and generated tokens; ``snapshot`` reads the running totals."""

    def __init__(self, eos_id: int | None = None) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.tokens = 0
        self.eos_id = eos_id
        self._active: str | None = None
        self._undo: list[Callable[[], None]] = []
        self._sync = _cuda_sync()

    def snapshot(self) -> dict[str, float]:
        out = {p: self.totals[p] for p in PHASES}
        out["tokens"] = float(self.tokens)
        return out

    def wrap(
        self, owner: Any, attr: str, phase: str, after: Callable[[Any, tuple, dict], None] | None = None
    ) -> None:
        """Time ``owner.attr`` (a class or an instance attribute) as ``phase``."""
        orig = getattr(owner, attr)
        probe = self

        @functools.wraps(orig)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if probe._active is not None:
                return orig(*args, **kwargs)
            probe._active = phase
            probe._sync()
            t0 = time.perf_counter()
            try:
                out = orig(*args, **kwargs)
                probe._sync()
                return out
            finally:
                probe.totals[phase] += time.perf_counter() - t0
                probe._active = None
                if after is not None and "out" in locals():
                    after(out, args, kwargs)

        own = vars(owner)  # restore exactly what was there: an own attribute, or nothing (inherited)
        had, raw = attr in own, own.get(attr)
        setattr(owner, attr, timed)
        self._undo.append(lambda: setattr(owner, attr, raw) if had else delattr(owner, attr))

    def install(self, model: Any) -> None:
        """Patch the primitives shared by every trainer (see the module docstring).

        The backbone's forward is timed too: TRL replaces the model's own forward on the instance
        by a fused backbone + LM-head log-prob kernel, which never calls the class's forward.
        """
        import torch
        from accelerate import Accelerator

        from ebpo_bench.data.rewards import MathVerifier
        from ebpo_bench.rollout import hf

        self.wrap(type(model), "generate", "generation", after=self._count_tokens)
        self.wrap(
            hf, "shared_prefill", "generation"
        )  # our prompt prefill, done once per group before generate
        self.wrap(type(model), "forward", "compute")
        backbone = type(getattr(model, "base_model", model))
        if backbone is not type(model):
            self.wrap(backbone, "forward", "compute")
        self.wrap(Accelerator, "backward", "compute")
        self.wrap(torch.Tensor, "backward", "compute")
        self.wrap(Accelerator, "clip_grad_norm_", "compute")
        self.wrap(torch.nn.utils, "clip_grad_norm_", "compute")
        self.wrap(torch.optim.AdamW, "step", "compute")
        self.wrap(MathVerifier, "score", "reward")

    def uninstall(self) -> None:
        while self._undo:
            self._undo.pop()()

    def _count_tokens(self, out: Any, args: tuple, kwargs: dict) -> None:
        """Generated tokens up to and including the first EOS of each row."""
        seq = getattr(out, "sequences", out)
        prompt = kwargs.get("input_ids")
        width = prompt.shape[1] if prompt is not None else 0
        new = seq[:, width:]
        if self.eos_id is None:
            self.tokens += int(new.numel())
            return
        is_eos = new == self.eos_id
        first = is_eos.float().argmax(1)
        lengths = first.where(is_eos.any(1), first.new_full(first.shape, new.shape[1] - 1)) + 1
        self.tokens += int(lengths.sum())


def _cuda_sync() -> Callable[[], None]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.synchronize
    return lambda: None


def step_rows(boundaries: list[tuple[float, dict[str, float]]]) -> list[dict[str, float]]:
    """Per-step rows from (time, probe snapshot) pairs taken at consecutive step ends.

    Row k covers the interval between boundary k and k + 1: ``wall``, each phase, ``tokens`` and
    ``overhead`` = wall − Σ phases.
    """
    rows = []
    for (t0, a), (t1, b) in zip(boundaries, boundaries[1:]):
        row = {"wall": t1 - t0}
        row.update({p: b[p] - a[p] for p in PHASES})
        row["tokens"] = b["tokens"] - a["tokens"]
        row["overhead"] = row["wall"] - sum(row[p] for p in PHASES)
        rows.append(row)
    return rows
