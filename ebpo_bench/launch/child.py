"""One run's process, as a launcher starts it: ``ebpo-bench run SPEC --run-id ID`` (under
``accelerate launch`` when the launch config names an accelerate config), its output in
``<run dir>/logs/``, stopped gracefully by SIGUSR1 (the run saves a checkpoint and exits with
``STOP_EXIT_CODE``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ebpo_bench.errors import STOP_EXIT_CODE


@dataclass(frozen=True)
class RunCommand:
    """What ``ebpo-bench run`` is told for one run (paths absolute: jobs may start elsewhere)."""

    spec: str
    run_id: str
    results: str
    profile: str | None = None
    force: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)

    def argv(self) -> list[str]:
        out = ["-m", "ebpo_bench", "run", self.spec, "--run-id", self.run_id, "--results", self.results]
        out += ["--quiet"] + (["--profile", self.profile] if self.profile else [])
        return out + (["--force"] if self.force else [])


@dataclass(frozen=True)
class Rendezvous:
    """Where a multi-process run meets: machine count and rank, the main node's address and port."""

    num_machines: int = 1
    machine_rank: int = 0
    main_ip: str | None = None
    port: int = 29500
    num_processes: int | None = None


def command_line(
    cmd: RunCommand, accelerate_config: Path | str | None, rdv: Rendezvous, python: str | None = None
) -> list[str]:
    """The full command of one run's process on this node."""
    py = python or sys.executable
    if accelerate_config is None and rdv.num_processes in (None, 1):
        return [py, *cmd.argv()]
    launch = [py, "-m", "accelerate.commands.launch"]
    if accelerate_config is not None:
        launch += ["--config_file", str(accelerate_config)]
    elif rdv.num_processes:  # local packing: K GPUs, no config file
        launch += ["--multi_gpu", "--num_machines", "1"]
    if rdv.num_processes:
        launch += ["--num_processes", str(rdv.num_processes)]
    if rdv.num_machines > 1:
        launch += ["--num_machines", str(rdv.num_machines), "--machine_rank", str(rdv.machine_rank)]
        launch += ["--main_process_ip", str(rdv.main_ip)]
    launch += ["--main_process_port", str(rdv.port)]
    return launch + cmd.argv()


def log_path(cmd: RunCommand, experiment: str, name: str) -> Path:
    """``<results>/<experiment>/<run id>/logs/<name>.log``."""
    return Path(cmd.results) / experiment / cmd.run_id / "logs" / f"{name}.log"


def _ignore_usr1() -> None:  # pragma: no cover - runs in the child between fork and exec
    # inherited by `accelerate launch` (whose default action on USR1 would be to die); the ranks
    # install their own handler (interrupt.catch_signals), so only they react to it
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)


class RunProcess:
    """A started run process (in its own session) writing to ``log``."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with open(log, "a") as out:
            out.write(f"$ {' '.join(argv)}\n")
            out.flush()
            self.proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=_ignore_usr1,
            )

    def poll(self) -> int | None:
        return self.proc.poll()

    def wait(self) -> int:
        return self.proc.wait()

    def stop(self, grace_s: float) -> int | None:
        """SIGUSR1 to the run (it checkpoints and exits); SIGKILL after ``grace_s``. Return its exit code.

        Safe inside a signal handler that interrupted ``poll()``: it reaps with ``os.waitpid`` itself."""
        if self.proc.poll() is None:
            self._signal(signal.SIGUSR1)
            deadline = time.monotonic() + grace_s
            while self._reap() is None:
                if time.monotonic() > deadline:  # resumes from its last periodic checkpoint instead
                    self._signal(signal.SIGKILL)
                    deadline = float("inf")
                time.sleep(0.2)
        return self.proc.returncode

    def _reap(self) -> int | None:
        if self.proc.returncode is not None:
            return self.proc.returncode
        try:
            pid, status = os.waitpid(self.proc.pid, os.WNOHANG)
        except ChildProcessError:  # reaped by Popen meanwhile
            return self.proc.returncode if self.proc.returncode is not None else -1
        if pid == 0:
            return None
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass


def outcome(code: int) -> str:
    """completed | stopped (checkpoint saved, resumable) | failed, from the run's exit code."""
    return "completed" if code == 0 else "stopped" if code == STOP_EXIT_CODE else "failed"
