"""The sweep commands of the CLI: ``run --launcher slurm|local`` (``launch``), ``status`` and ``cancel``.

Part of the CLI layer (``cli.py`` registers ``status`` and ``cancel`` on its app); torch-free: the
launchers start ``ebpo-bench run SPEC --run-id ID`` processes and read result folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ebpo_bench.config.load import load_experiment, spec_hash
from ebpo_bench.errors import UserError
from ebpo_bench.results import RunPaths, read_record

LAUNCHERS = ("inprocess", "slurm", "local")


def todo_runs(runs: list, exp_dir: Path, force: bool) -> list:
    """The runs not already completed with the same spec; a changed spec is refused unless ``force``."""
    out = []
    for run in runs:
        rec = read_record(RunPaths(exp_dir / run.run_id))
        if rec is not None and rec.get("spec_hash") != spec_hash(run) and not force:
            raise UserError(
                f"{exp_dir / run.run_id} holds a run of a different spec; rename the experiment, "
                "or pass --force to delete it and start over"
            )
        if rec is None or rec.get("status") != "completed" or force:
            out.append(run)
    return out


def launch(
    exp,
    runs: list,
    spec: Path,
    *,
    launcher: str,
    launch_config: Path | None,
    sets: list[str] | None,
    max_parallel: int,
    gpus_per_run: int,
    results: Path | None,
    profile: str | None,
    force: bool,
    dry_run: bool,
) -> None:
    """Submit (slurm) or start (local) one job per run that is not complete; ``dry_run`` only prints."""
    from ebpo_bench.launch.child import RunCommand
    from ebpo_bench.launch.config import describe, load_launch_config
    from ebpo_bench.launch.sweep import record_jobs

    if launcher not in LAUNCHERS:
        raise UserError(f"--launcher {launcher}: unknown; choose one of {', '.join(LAUNCHERS)}")
    cfg = load_launch_config(launch_config, sets)
    root = Path(results or exp.spec.output.root).resolve()
    exp_dir = root / exp.name
    todo = todo_runs(runs, exp_dir, force)
    cmds = [RunCommand(str(spec.resolve()), r.run_id, str(root), profile, force) for r in todo]
    typer.echo(f"experiment {exp.name}: {len(todo)} of {len(runs)} runs to launch ({launcher})")
    if launcher == "slurm":
        typer.echo(f"  each run: {describe(cfg)}")
    else:
        typer.echo(f"  {max_parallel} at once, {gpus_per_run} GPU(s) each")
    for c in cmds:
        typer.echo(f"  {c.run_id}: ebpo-bench {' '.join(c.argv()[2:])}")
    if dry_run or not cmds:
        return
    expected = [r.run_id for r in runs]
    if launcher == "slurm":
        import shutil

        if not shutil.which("sbatch"):
            raise UserError("sbatch not found: --launcher slurm must run on a SLURM login node")
        from ebpo_bench.launch.slurm import submit

        ids = submit(cmds, exp.name, cfg, exp_dir / ".submitit")
        record_jobs(exp_dir, "slurm", expected, dict(zip([c.run_id for c in cmds], ids)), spec=str(spec))
        typer.echo(f"submitted job array {ids[0].split('_')[0]} ({len(ids)} runs)")
        typer.echo(
            f"watch: ebpo-bench status {spec}{_opts(profile, results)}; cancel: ebpo-bench cancel {spec}"
        )
        return
    from ebpo_bench.launch.local import run_local
    from ebpo_bench.runner import build_report, comparison_table, log

    record_jobs(exp_dir, "local", expected, {}, spec=str(spec))
    done = run_local(
        cmds,
        exp.name,
        max_parallel=max_parallel,
        gpus_per_run=gpus_per_run,
        accelerate_config=cfg.accelerate_config if launch_config else None,
        log=log,
    )
    log(f"{exp.name}: " + ", ".join(f"{k}={v}" for k, v in sorted(done.items())))
    typer.echo(comparison_table(exp_dir, runs))
    build_report(root, exp.name)
    if any(v != "completed" for v in done.values()):
        raise typer.Exit(1)


def _opts(profile: str | None, results: Path | None) -> str:
    return (f" --profile {profile}" if profile else "") + (f" --results {results}" if results else "")


SpecArg = Annotated[Path, typer.Argument(help="Spec file of the sweep.")]
ProfileOpt = Annotated[str | None, typer.Option(help="The scale profile the sweep was run with.")]
ResultsOpt = Annotated[Path | None, typer.Option(help="Results root (default: the spec's output.root).")]


def _sweep(spec: Path, profile: str | None, results: Path | None):
    exp = load_experiment(spec, profile=profile)
    exp_dir = Path(results or exp.spec.output.root).resolve() / exp.name
    from ebpo_bench.launch.sweep import read_sweep

    return exp, exp_dir, read_sweep(exp_dir)


def status(spec: SpecArg, profile: ProfileOpt = None, results: ResultsOpt = None) -> None:
    """One line per run: state, step / total, job id, last log line or error (never imports torch)."""
    from collections import Counter

    from ebpo_bench.launch.sweep import queue_states, run_states

    exp, exp_dir, sweep = _sweep(spec, profile, results)
    jobs = [v["job_id"] for v in sweep.get("runs", {}).values() if v.get("job_id")]
    queue = queue_states(jobs) if jobs else None
    states = run_states(exp_dir, exp.runs, sweep, queue)
    width = max(len(s.run_id) for s in states)
    typer.echo(f"{'run':<{width}}  {'state':<11} {'step/total':>13} {'job':<12} last log line / error")
    for s in states:
        typer.echo(s.line(width))
    counts = Counter(s.state for s in states)
    typer.echo(f"{exp.name}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
    if jobs and queue is None:
        typer.echo("(squeue not available: states come from the results folder only)")
    if counts["completed"] == len(states):
        typer.echo(f"all runs completed; report: ebpo-bench report {exp_dir}")


def cancel(spec: SpecArg, profile: ProfileOpt = None, results: ResultsOpt = None) -> None:
    """Cancel the sweep's SLURM jobs that are still queued or running (finished runs stay)."""
    from ebpo_bench.launch.sweep import cancel_jobs

    exp, exp_dir, sweep = _sweep(spec, profile, results)
    jobs = [v["job_id"] for v in sweep.get("runs", {}).values() if v.get("launcher") == "slurm"]
    if not jobs:
        raise UserError(f"{spec}: no SLURM jobs recorded for experiment {exp.name}; nothing to cancel")
    live = cancel_jobs(exp_dir, jobs)
    typer.echo(
        f"cancelled {len(live)} job(s): {' '.join(live)}" if live else "no job of this sweep is queued"
    )
