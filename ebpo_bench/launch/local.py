"""``--launcher local``: runs as parallel processes on one machine, ``max_parallel`` at a time, each
on its own ``gpus_per_run`` GPUs (``CUDA_VISIBLE_DEVICES``); on CPU, simply N processes at once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ebpo_bench.errors import UserError
from ebpo_bench.launch.child import Rendezvous, RunCommand, RunProcess, command_line, log_path, outcome


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g for g in env.split(",") if g.strip()]
    if not shutil.which("nvidia-smi"):
        return []
    p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return [str(i) for i, line in enumerate(p.stdout.splitlines()) if line.startswith("GPU")]


def gpu_slots(max_parallel: int, gpus_per_run: int) -> list[list[str]]:
    """The GPU ids of each parallel slot (empty lists on CPU)."""
    if gpus_per_run == 0:
        return [[] for _ in range(max_parallel)]
    gpus = visible_gpus()
    if len(gpus) < max_parallel * gpus_per_run:
        raise UserError(
            f"--max-parallel {max_parallel} x --gpus-per-run {gpus_per_run} needs "
            f"{max_parallel * gpus_per_run} GPUs, {len(gpus)} visible; lower one of them"
        )
    return [gpus[i * gpus_per_run : (i + 1) * gpus_per_run] for i in range(max_parallel)]


def run_local(
    cmds: list[RunCommand],
    experiment: str,
    *,
    max_parallel: int,
    gpus_per_run: int,
    accelerate_config: Path | None,
    log: Callable[[str], None],
) -> dict[str, str]:
    """Run every command, ``max_parallel`` at once; return run id -> completed | stopped | failed."""
    slots = gpu_slots(max_parallel, gpus_per_run)
    todo, active, done = list(cmds), {}, {}
    try:
        while todo or active:
            for i, gpus in enumerate(slots):
                if i in active or not todo:
                    continue
                cmd = todo.pop(0)
                procs = gpus_per_run if gpus_per_run > 1 else None
                rdv = Rendezvous(port=29500 + 17 * i, num_processes=procs)
                env = {"CUDA_VISIBLE_DEVICES": ",".join(gpus)} if gpus_per_run else {}
                argv = command_line(cmd, accelerate_config, rdv)
                active[i] = (cmd, RunProcess(argv, log_path(cmd, experiment, "local"), env))
                log(f"{cmd.run_id}: started" + (f" on GPUs {','.join(gpus)}" if gpus else ""))
            for i, (cmd, proc) in list(active.items()):
                if (code := proc.poll()) is not None:
                    done[cmd.run_id] = outcome(code)
                    log(f"{cmd.run_id}: {done[cmd.run_id]}" + (f" (see {proc.log})" if code else ""))
                    del active[i]
            time.sleep(0.5)
    finally:  # interrupted: every run still going checkpoints and stops, to resume with the same command
        for cmd, proc in active.values():
            done[cmd.run_id] = outcome(proc.stop(60) or 0)
    return done
