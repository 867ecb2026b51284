"""Launch configs (``configs/launch/*.yaml``): the resources of each run of a sweep on a cluster.

One file per cluster shape; ``--launch-set FIELD=VALUE`` on the command line overrides a field. Unknown
fields and bad values are refused in one line (``UserError``) before anything is submitted.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import Field, ValidationError

from ebpo_bench.config.base import Cfg
from ebpo_bench.errors import UserError


class LaunchConfig(Cfg):
    """Resources of one run (one SLURM array task) and how its process starts."""

    partition: str | None = Field(None, description="SLURM partition (sbatch --partition); None = default")
    account: str | None = Field(None, description="account charged (sbatch --account)")
    qos: str | None = Field(None, description="quality of service (sbatch --qos)")
    nodes: int = Field(1, ge=1, description="nodes per run; >1 runs accelerate over all of them")
    gpus_per_node: int = Field(0, ge=0, description="GPUs per node per run (0 = CPU run)")
    cpus_per_task: int = Field(1, ge=1, description="CPUs per node per run (one task per node)")
    mem_gb: float | None = Field(None, gt=0, description="memory per node in GB; None = the partition's")
    time_min: int = Field(60, ge=1, description="time limit of one job in minutes; longer runs requeue")
    max_concurrent: int | None = Field(None, ge=1, description="at most this many runs at once")
    signal_delay_s: int = Field(120, ge=10, description="USR1 this long before the time limit")
    max_requeues: int = Field(10, ge=0, description="time-limit requeues allowed per run")
    stop_grace_s: int = Field(90, ge=1, description="wait this long for the checkpoint after USR1")
    accelerate_config: Path | None = Field(None, description="accelerate config; None = one process")
    main_process_port: int = Field(29500, ge=1024, le=65000, description="rendezvous port (multi-node)")
    sbatch: dict[str, bool | int | str] = Field(default_factory=dict, description="extra sbatch flags")
    setup: list[str] = Field(default_factory=list, description="shell lines run before the job step")


FIELDS = tuple(LaunchConfig.model_fields)


def load_launch_config(path: Path | None, overrides: list[str] | None = None) -> LaunchConfig:
    """Read ``path`` (None: all defaults), apply ``FIELD=VALUE`` overrides (values parsed as YAML)."""
    data: dict = {}
    where = str(path) if path else "launch config"
    if path is not None:
        if not path.is_file():
            raise UserError(f"{path}: no such launch config; see configs/launch/ for examples")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: a launch config is a mapping of fields ({', '.join(FIELDS)})")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in FIELDS:
            raise UserError(
                f"--launch-set {item}: expected FIELD=VALUE with FIELD one of {', '.join(FIELDS)}"
            )
        data[key.strip()] = yaml.safe_load(value) if value.strip() else None
    try:
        cfg = LaunchConfig(**data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top)"
        hint = f" Valid fields: {', '.join(FIELDS)}" if err["type"] == "extra_forbidden" else ""
        raise UserError(f"{where}: {loc}: {err['msg']}.{hint}") from None
    if cfg.accelerate_config is not None and not cfg.accelerate_config.is_file():
        raise UserError(f"{where}: accelerate_config {cfg.accelerate_config}: no such file")
    return cfg


def describe(cfg: LaunchConfig) -> str:
    """One line of the resources each run gets."""
    parts = [
        f"partition={cfg.partition or '(default)'}",
        f"account={cfg.account or '(default)'}",
        f"nodes={cfg.nodes}",
        f"gpus/node={cfg.gpus_per_node}",
        f"cpus/node={cfg.cpus_per_task}",
        f"mem={f'{cfg.mem_gb:g}G' if cfg.mem_gb else '(default)'}",
        f"time={cfg.time_min} min",
        f"max concurrent={cfg.max_concurrent or 'all'}",
        f"accelerate={cfg.accelerate_config or 'none (one process)'}",
    ]
    if cfg.sbatch:
        parts.append(
            "sbatch " + " ".join(f"--{k}" + ("" if v is True else f"={v}") for k, v in cfg.sbatch.items())
        )
    return ", ".join(parts)
