"""Stop requests: SIGINT / SIGTERM / SIGUSR1 end a run at a safe point instead of killing it mid-write.

``catch_signals()`` installs handlers for the duration of a command and yields a ``StopRequest``.
Code with safe points (the trainer's step loop) wraps them in ``stop.deferred()``: a signal that
arrives there only sets the request, and the loop checks ``stop.requested`` after each step, writes a
checkpoint and raises ``Interrupted``. A signal outside a deferred region (model loading,
evaluation) raises ``Interrupted`` at once; a second signal always does. Either way the runner
records ``"status": "interrupted"`` in run.json and the CLI prints one line and exits 130 (SIGINT)
or 143 (SIGTERM). SIGUSR1 (SLURM's pre-timeout signal, what ``--signal=USR1@delay`` and ``scancel
--signal=USR1`` send) and SIGTERM inside a SLURM job (what preemption sends first) ask for a requeue
instead: ``"status": "requeued"`` and exit status ``STOP_EXIT_CODE``, which the launchers requeue.

The request is an object passed down as an argument (no module state), so other launchers (e.g. a
SLURM preemption handler) can share it: call ``stop.request(signum)`` to ask for the same stop.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ebpo_bench.errors import STOP_EXIT_CODE

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)


class Interrupted(BaseException):
    """The run was asked to stop (SIGINT / SIGTERM). A BaseException, like KeyboardInterrupt."""

    def __init__(self, signum: int, message: str = "") -> None:
        super().__init__(message or f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def requeue(self) -> bool:
        """A scheduler's stop (resume in a requeued job) rather than a user's."""
        slurm = bool(os.environ.get("SLURM_JOB_ID"))
        return self.signum == signal.SIGUSR1 or (self.signum == signal.SIGTERM and slurm)

    @property
    def exit_code(self) -> int:
        return STOP_EXIT_CODE if self.requeue else 128 + int(self.signum)


class StopRequest:
    """A stop asked for by a signal (or by code); honoured at the next safe point."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._deferring = 0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def request(self, signum: int = signal.SIGTERM) -> None:
        """Ask for a stop; raises ``Interrupted`` now unless inside ``deferred()`` (or on a repeat)."""
        repeat = self.signum is not None
        self.signum = signum
        if repeat or not self._deferring:
            raise Interrupted(signum)

    @contextmanager
    def deferred(self) -> Iterator[StopRequest]:
        """Inside this block a first signal only sets the request (the caller checks ``requested``)."""
        self._deferring += 1
        try:
            yield self
        finally:
            self._deferring -= 1

    def agreed(self, acc: object) -> bool:
        """Whether any rank of ``acc`` (an accelerate ``Accelerator``) was asked to stop; every rank
        gets the same answer, so all stop at the same step."""
        if getattr(acc, "num_processes", 1) == 1:
            return self.requested
        import torch

        flag = torch.tensor([float(self.requested)], device=acc.device)
        return bool(acc.gather(flag).max() > 0)

    def _handler(self, signum: int, frame: object) -> None:
        self.request(signum)


@contextmanager
def catch_signals(stop: StopRequest | None = None) -> Iterator[StopRequest]:
    """Route SIGINT, SIGTERM and SIGUSR1 to ``stop`` (a new ``StopRequest`` by default) while the block runs.

    Outside the main thread (where Python cannot install handlers) it yields the request unchanged.
    """
    stop = stop or StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    old = {s: signal.signal(s, stop._handler) for s in SIGNALS}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)
