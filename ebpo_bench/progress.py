"""A rich progress bar for long work (step, reward, ETA); a no-op when disabled (``--quiet``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(
    label: str, total: int, start: int = 0, *, disable: bool = False
) -> Iterator[Callable[..., None]]:
    """Yield ``update(done, **fields)``; fields are shown after the bar (floats to 3 digits)."""
    if disable:
        yield lambda done, **fields: None
        return
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
    ) as prog:
        task = prog.add_task(label, total=total, completed=start, info="")

        def update(done: int, **fields: float) -> None:
            info = " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in fields.items())
            prog.update(task, completed=done, info=info)

        yield update
