"""Progress of long work: a rich bar in a terminal, plain lines without one, nothing when disabled.

Both show the same fields (reward, accuracy, loss, KL, entropy for training), seconds per step and
the ETA. Without a terminal (SLURM log, nohup, CI) a bar would only leave its final state in the
log, so a plain line is written every ``every`` steps (and for the first and last step) instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO


def fmt_fields(fields: dict) -> str:
    return " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())


def fmt_duration(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Rate:
    """Seconds per step and ETA since the first update."""

    def __init__(self, start: int, total: int) -> None:
        self.t0, self.start, self.total = time.perf_counter(), start, total

    def __call__(self, done: int) -> tuple[float, float]:
        per = (time.perf_counter() - self.t0) / max(1, done - self.start)
        return per, per * (self.total - done)


def plain_line(label: str, done: int, total: int, fields: dict, per: float, eta: float) -> str:
    info = fmt_fields(fields)
    return f"{label}: {done}/{total} {info}{' ' if info else ''}{per:.3f} s/step eta {fmt_duration(eta)}"


@contextmanager
def progress_bar(
    label: str,
    total: int,
    start: int = 0,
    *,
    disable: bool = False,
    every: int = 10,
    stream: TextIO | None = None,
) -> Iterator[Callable[..., None]]:
    """Yield ``update(done, **fields)``; fields are shown after the bar (floats to 3 digits)."""
    if disable:
        yield lambda done, **fields: None
        return
    stream = stream or sys.stderr
    rate = Rate(start, total)
    if not stream.isatty():

        def line(done: int, **fields: float) -> None:
            if done == start + 1 or done == total or (done - start) % every == 0:
                print(plain_line(label, done, total, fields, *rate(done)), file=stream, flush=True)

        yield line
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        transient=False,
        console=Console(file=stream),
    ) as prog:
        task = prog.add_task(label, total=total, completed=start, info="")

        def update(done: int, **fields: float) -> None:
            per, _ = rate(done)
            prog.update(task, completed=done, info=f"{fmt_fields(fields)} {per:.3f} s/step".strip())

        yield update
