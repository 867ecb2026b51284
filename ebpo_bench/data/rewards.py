"""Verifiable math reward: ``MathVerifier``, the batch scorer shared by training and evaluation.

Extraction, gold normalisation and the fast path come from ``ebpo_bench.data.answers``; what they cannot
decide goes to math-verify in worker processes. math-verify times out with ``signal.alarm`` (main thread
only), so ``MathVerifier`` turns that off and runs checks in spawned workers with a hard deadline of
``timeout_s`` per check: a worker-side timer at 0.8 x ``timeout_s`` interrupts slow pure-Python sympy work
and keeps the worker; a check still running at ``timeout_s`` (stuck in C) gets its worker killed and
replaced. Timed-out and crashed checks score the failure value; the batch's other checks still complete.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import time
import weakref
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ebpo_bench.data.answers import (
    ANSWER_FORMATS,
    MAX_CHARS,
    canonical_gold,
    extract_with_status,
    fast_path,
    verify_answer,
)

_SCALES = {"zero_one": (1.0, 0.0), "plus_minus_one": (1.0, -1.0)}
_STARTUP_S = 120.0  # a worker that cannot import math-verify in this long means a broken install


@dataclass(frozen=True)
class RewardResult:
    """One completion's outcome; ``reason``: correct | wrong | no_answer | too_long | timeout | error."""

    score: float
    correct: bool
    extracted: str | None
    timed_out: bool
    reason: str


class _SoftTimeout(BaseException):
    """A BaseException, so math-verify's ``except Exception`` blocks do not swallow it."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise _SoftTimeout()


def _check(gold: str, pred: str, soft_s: float | None) -> str:
    try:
        try:
            if soft_s:
                signal.setitimer(signal.ITIMER_REAL, soft_s)
            return "correct" if verify_answer(gold, pred, timeout=None) else "wrong"
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:  # also when the timer fires inside the finally
        return "timeout"
    except Exception:
        return "error"


def _worker_main(conn: Connection) -> None:
    """``("batch", soft_s, [(idx, gold, pred), ...])`` -> ``("done", idx, outcome)`` each; start-up errors
    exit."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    verify_answer("\\frac{1}{2}", "0.5", timeout=None)  # warm up: no check should pay for lazy imports
    signal.signal(signal.SIGALRM, _on_alarm)
    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "stop":
            return
        for idx, gold, pred in msg[2]:
            conn.send(("done", idx, _check(gold, pred, msg[1])))


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Connection
    started_at: float  # when it was spawned; once ready, when the head of the queue started
    ready: bool = False
    queue: deque = field(default_factory=deque)  # task indices in order; the head is the running one


def _stop_workers(workers: list[_Worker], owner_pid: int) -> None:
    """Stop and reap workers (a forked child leaves its parent's workers alone)."""
    if os.getpid() != owner_pid:
        return
    for w in workers:
        with contextlib.suppress(OSError, ValueError):
            w.conn.send(("stop",))
    for w in workers:
        w.proc.join(timeout=1.0)
        w.proc.kill()  # a no-op once it has exited
        w.proc.join(timeout=1.0)
        w.conn.close()
    workers.clear()


class MathVerifier:
    """Batch scorer: extraction and fast path in-process, math-verify in spawned workers (started lazily,
    kept between calls, stopped by ``close()``, garbage collection or exit). A batch goes round-robin to the
    workers, one message each; identical (gold, answer) pairs are checked once. ``stats`` counts cumulatively:
    ``checks`` (completions scored), ``fast_path``, ``no_answer`` (too-long answers included), ``timeouts``,
    ``errors``.

    Args:
        fmt: Answer format, see ``extract_answer``.
        scale: ``"zero_one"`` (1 / 0) or ``"plus_minus_one"`` (+1 / -1, verl ``math_dapo``).
        timeout_s: Hard per-check deadline in seconds; a check past it scores the failure value.
        workers: Number of worker processes.
    """

    name = "math_verify"  # recorded in eval rows as "grader"

    def __init__(self, fmt: str = "auto", scale: str = "zero_one", timeout_s: float = 5.0, workers: int = 1):
        if fmt not in ANSWER_FORMATS or scale not in _SCALES or not timeout_s > 0 or workers < 1:
            raise ValueError(
                f"bad MathVerifier arguments: fmt={fmt!r} (one of {ANSWER_FORMATS}), scale={scale!r} (one "
                f"of {tuple(_SCALES)}), timeout_s={timeout_s} (> 0), workers={workers} (>= 1)"
            )
        self.fmt, self.scale, self.timeout_s, self.workers = fmt, scale, float(timeout_s), int(workers)
        self._ctx = mp.get_context("spawn")  # forking a process that holds torch/CUDA state is unsafe
        self._workers: list[_Worker] = []
        self._owner_pid = os.getpid()
        # the in-worker timer as a fraction of timeout_s; None leaves only the hard kill (tests use it)
        self._soft_fraction: float | None = 0.8
        self._stats = dict.fromkeys(("checks", "fast_path", "no_answer", "timeouts", "errors"), 0)
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers, self._owner_pid)

    @property
    def stats(self) -> dict[str, int]:
        """Cumulative counters (a copy)."""
        return dict(self._stats)

    def score(self, completions: list[str], golds: list[str]) -> list[RewardResult]:
        """Score completions (B,) against gold answers (B,); returns (B,) results in input order."""
        if len(completions) != len(golds):
            raise ValueError(f"{len(completions)} completions but {len(golds)} gold answers")
        results: list[RewardResult] = [None] * len(completions)  # type: ignore[list-item]
        pending: dict[tuple[str, str], list[int]] = {}  # (gold, pred) -> rows that need math-verify
        for i, (completion, gold) in enumerate(zip(completions, golds)):
            self._stats["checks"] += 1
            pred, status = extract_with_status(completion, self.fmt, MAX_CHARS)
            gold = canonical_gold(gold)
            if pred is None:
                self._stats["no_answer"] += 1
                results[i] = self._result(status, None)
            elif (decided := fast_path(pred, gold)) is None:
                pending.setdefault((gold, pred), []).append(i)
            else:
                self._stats["fast_path"] += 1
                results[i] = self._result("correct" if decided else "wrong", pred)
        tasks = list(pending)
        outcomes = self._run_checks(tasks) if tasks else []
        for (_, pred), outcome, rows in zip(tasks, outcomes, pending.values()):
            self._stats["timeouts"] += len(rows) * (outcome == "timeout")
            self._stats["errors"] += len(rows) * (outcome == "error")
            for i in rows:
                results[i] = self._result(outcome, pred)
        return results

    def _result(self, outcome: str, pred: str | None) -> RewardResult:
        correct = outcome == "correct"
        return RewardResult(
            _SCALES[self.scale][0 if correct else 1], correct, pred, outcome == "timeout", outcome
        )

    def close(self) -> None:
        """Stop the worker processes (they restart lazily if the verifier is used again)."""
        self._finalizer()

    def __enter__(self) -> MathVerifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run_checks(self, tasks: list[tuple[str, str]]) -> list[str]:
        """Outcome per (gold, pred) task: correct | wrong | timeout | error."""
        self._ensure_workers()
        outcomes = [""] * len(tasks)
        try:
            for k, w in enumerate(self._workers):
                self._assign(w, range(k, len(tasks), len(self._workers)), tasks)
            left = len(tasks)
            while left:
                busy = [w for w in self._workers if w.queue]
                due = min(w.started_at + (self.timeout_s if w.ready else _STARTUP_S) for w in busy)
                handles = [h for w in busy for h in (w.conn, w.proc.sentinel)]
                wait(handles, timeout=max(0.0, due - time.monotonic()) + 0.01)
                left -= sum(self._service(w, tasks, outcomes) for w in busy)
        except BaseException:  # e.g. Ctrl-C: workers may hold half a batch, so start afresh next time
            self.close()
            raise
        return outcomes

    def _service(self, w: _Worker, tasks: list[tuple[str, str]], outcomes: list[str]) -> int:
        """Read a worker's replies and enforce its deadlines; returns how many tasks finished."""
        done, dead = 0, False
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if msg[0] == "ready":
                    w.ready = True
                    self._send(w, tasks)
                else:  # ("done", idx, outcome): the next queued task starts now
                    outcomes[w.queue.popleft()] = msg[2]
                    w.started_at = time.monotonic()
                    done += 1
        except (EOFError, OSError):
            dead = True
        if not w.queue:  # idle (a dead idle worker is dropped by _ensure_workers)
            return done
        if dead or not w.proc.is_alive():
            return done + self._replace(w, "error", tasks, outcomes)
        if w.ready and time.monotonic() - w.started_at > self.timeout_s:
            return done + self._replace(w, "timeout", tasks, outcomes)
        if not w.ready and time.monotonic() - w.started_at > _STARTUP_S:
            raise RuntimeError(f"math-verify worker did not start within {_STARTUP_S:.0f} s")
        return done

    def _replace(self, w: _Worker, outcome: str, tasks: list[tuple[str, str]], outcomes: list[str]) -> int:
        """Kill ``w``, give its running task ``outcome``, hand the rest to a fresh worker."""
        if not w.ready:
            raise RuntimeError(
                "math-verify worker died during start-up (see its traceback above; a script that "
                "scores at import time needs an `if __name__ == '__main__':` guard)"
            )
        outcomes[w.queue.popleft()] = outcome
        w.proc.kill()
        w.proc.join(timeout=5.0)
        w.conn.close()
        self._workers[self._workers.index(w)] = fresh = self._spawn()
        self._assign(fresh, w.queue, tasks)
        return 1

    def _ensure_workers(self) -> None:
        if os.getpid() != self._owner_pid:  # a forked copy: the workers belong to the parent
            self._finalizer.detach()
            self._workers, self._owner_pid = [], os.getpid()
        self._workers[:] = [w for w in self._workers if w.proc.is_alive()]  # in place: the finalizer holds it
        if not self._finalizer.alive:
            self._finalizer = weakref.finalize(self, _stop_workers, self._workers, self._owner_pid)
        self._workers.extend(self._spawn() for _ in range(self.workers - len(self._workers)))

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(child,), daemon=True, name="ebpo-math-verify")
        proc.start()
        child.close()
        return _Worker(proc=proc, conn=parent, started_at=time.monotonic())

    def _assign(self, w: _Worker, idxs: Iterable[int], tasks: list[tuple[str, str]]) -> None:
        w.queue.extend(idxs)  # only ever on an idle worker: sent now, or when it reports ready
        if w.ready:
            self._send(w, tasks)

    def _send(self, w: _Worker, tasks: list[tuple[str, str]]) -> None:
        soft = self.timeout_s * self._soft_fraction if self._soft_fraction else None
        w.started_at = time.monotonic()
        # a dead worker is noticed (EOF / sentinel) and replaced by the loop
        with contextlib.suppress(OSError):
            w.conn.send(("batch", soft, [(i, *tasks[i]) for i in w.queue]))
