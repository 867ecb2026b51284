"""Submit runs to SLURM as one job array through submitit; each array task runs one run.

Inside a job, ``RunJob`` starts the run's process (``child.command_line``; on several nodes, SLURM's
node list gives accelerate the main node's address and this node's machine rank) and waits for it.
On SLURM's pre-timeout signal or a preemption (USR1, sent ``signal_delay_s`` before the limit, or by
``scancel --signal=USR1``), submitit calls ``RunJob.checkpoint``: the run saves a checkpoint at its next
safe point and exits, and submitit requeues the array task, which resumes from that checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path

import submitit
from submitit.helpers import Checkpointable, DelayedSubmission

from ebpo_bench.launch.child import Rendezvous, RunCommand, RunProcess, command_line, log_path, outcome
from ebpo_bench.launch.config import LaunchConfig


class RunJob(Checkpointable):
    """The callable submitit pickles for one array task."""

    def __init__(self, cmd: RunCommand, experiment: str, cfg: LaunchConfig) -> None:
        self.cmd, self.experiment, self.cfg = cmd, experiment, cfg
        self._proc: RunProcess | None = None

    def __call__(self) -> str:
        env = submitit.JobEnvironment()
        cfg = self.cfg
        rdv = Rendezvous(
            num_machines=cfg.nodes,
            machine_rank=env.node,
            main_ip=env.hostnames[0] if cfg.nodes > 1 else None,
            port=cfg.main_process_port,
        )
        name = f"slurm-{env.job_id}" + (f"-node{env.node}" if env.node else "")
        log = log_path(self.cmd, self.experiment, name)
        self._proc = RunProcess(command_line(self.cmd, cfg.accelerate_config, rdv), log, self.cmd.extra_env)
        while (code := self._proc.poll()) is None:  # polling, not wait(): checkpoint() may interrupt it
            time.sleep(0.5)
        result = outcome(code)
        if result == "failed":
            raise RuntimeError(f"{self.cmd.run_id}: the run exited with status {code}; see {log}")
        if result == "stopped":  # SIGTERM without a USR1 (scancel, preemption without requeue)
            raise RuntimeError(
                f"{self.cmd.run_id}: stopped at a checkpoint without a requeue; "
                "`ebpo-bench run SPEC --launcher slurm` submits it again and it resumes"
            )
        return result

    def checkpoint(self, *args, **kwargs) -> DelayedSubmission:
        """Called by submitit on USR1: let the run checkpoint and exit, then requeue a fresh job object."""
        if self._proc is not None:
            self._proc.stop(self.cfg.stop_grace_s)
        return DelayedSubmission(RunJob(self.cmd, self.experiment, self.cfg))


def executor(folder: Path, cfg: LaunchConfig, experiment: str, n: int) -> submitit.SlurmExecutor:
    """A submitit executor with the launch config's resources (one task per node)."""
    ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=cfg.max_requeues)
    params: dict = {
        "job_name": f"ebpo-{experiment}",
        "time": cfg.time_min,
        "nodes": cfg.nodes,
        "ntasks_per_node": 1,
        "cpus_per_task": cfg.cpus_per_task,
        "array_parallelism": cfg.max_concurrent or n,
        "stderr_to_stdout": True,
    }
    optional = {"partition": cfg.partition, "account": cfg.account, "qos": cfg.qos}
    params.update({k: v for k, v in optional.items() if v})
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.mem_gb:
        params["mem"] = f"{int(cfg.mem_gb * 1024)}MB"
    # USR1 is the pre-timeout / preemption signal (submitit's default is USR2): the sbatch header asks
    # for it and the job's submitit handler listens for it
    params["additional_parameters"] = {"signal": f"USR1@{cfg.signal_delay_s}", **cfg.sbatch}
    params["setup"] = ["export SUBMITIT_PREEMPT_SIGNAL=USR1", *cfg.setup]
    ex.update_parameters(**params)
    return ex


def submit(cmds: list[RunCommand], experiment: str, cfg: LaunchConfig, folder: Path) -> list[str]:
    """Submit one job array, one task per command; return the job ids (``ARRAYID_TASK``) in order."""
    ex = executor(folder, cfg, experiment, len(cmds))
    with ex.batch():
        jobs = [ex.submit(RunJob(c, experiment, cfg)) for c in cmds]
    return [j.job_id for j in jobs]
