"""A "stop requested" flag set by a signal handler, polled by the trainer at its safe points.

The runner creates one per ``ebpo-bench run`` and passes it down (no module state): SIGUSR1 (SLURM's
pre-timeout signal, what submitit's ``--signal=USR1@delay`` and ``scancel --signal=USR1`` send) and,
inside a SLURM job, SIGTERM (what preemption sends first) set it; the trainer then saves a checkpoint
at the end of the current step and stops, and the requeued job resumes from that checkpoint.
"""

from __future__ import annotations

import os
import signal
from types import FrameType


class StopFlag:
    """Callable: True once one of ``signals`` arrived. Use as a context manager to (un)install handlers."""

    def __init__(self, signals: tuple[int, ...] | None = None) -> None:
        if signals is None:
            signals = (
                (signal.SIGUSR1, signal.SIGTERM) if os.environ.get("SLURM_JOB_ID") else (signal.SIGUSR1,)
            )
        self.signals = signals
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __call__(self) -> bool:
        return self.received is not None

    def set(self, signum: int = signal.SIGUSR1, frame: FrameType | None = None) -> None:
        self.received = signum

    def __enter__(self) -> StopFlag:
        for s in self.signals:
            try:
                self._previous[s] = signal.signal(s, self.set)
            except ValueError:  # not the main thread: nothing can be installed, the flag stays unset
                break
        return self

    def __exit__(self, *exc: object) -> None:
        for s, prev in self._previous.items():
            signal.signal(s, prev)  # type: ignore[arg-type]
        self._previous.clear()
