"""The ``ebpo-bench`` command line: a thin typer layer over the spec loader, runner and report.

Heavy modules (torch, transformers, accelerate) are imported inside the commands that need them,
so ``--help``, ``validate``, ``ls`` and ``report`` start fast and never import torch.
Spec and input errors print one message (no traceback) and exit with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ebpo_bench import __version__
from ebpo_bench.cli_bench import bench
from ebpo_bench.cli_eval import eval_cmd, export
from ebpo_bench.cli_support import SetOption, print_dry_run, require_backends, select_runs
from ebpo_bench.config.load import SpecError, load_experiment, resolved_yaml
from ebpo_bench.config.overrides import parse_sets
from ebpo_bench.errors import UserError
from ebpo_bench.interrupt import Interrupted
from ebpo_bench.sweep_cli import cancel, launch, status

EXAMPLES = """
Examples:

  ebpo-bench validate specs/*.yaml

  ebpo-bench ls estimators

  ebpo-bench run specs/quickstart.yaml --dry-run

  ebpo-bench run specs/quickstart.yaml --arm ebpo --seed 1

  ebpo-bench run specs/quickstart.yaml --set train.lr=5e-5 --set seeds=[1]

  ebpo-bench eval --model tiny --benchmarks aime24,math500 --n 4 --temperature 0.6 --limit 20

  ebpo-bench eval results/quickstart/ebpo/seed1 --benchmarks math500 --preset qwen_eval

  ebpo-bench run specs/quickstart.yaml --launcher slurm --launch-config configs/launch/slurm_cpu.yaml

  ebpo-bench status specs/quickstart.yaml

  ebpo-bench report results/quickstart

  ebpo-bench bench specs/quickstart.yaml --steps 20
"""

app = typer.Typer(
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Declarative benchmark suite for RL with verifiable rewards (EBPO, GRPO and other estimators).",
    epilog=EXAMPLES,
)


def _fail(msg: str) -> None:
    raise UserError(msg)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ebpo-bench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """Declarative benchmark suite for RL with verifiable rewards (EBPO, GRPO and other estimators)."""


def _simulation(path: Path):
    """The lab spec if ``path`` declares ``kind: simulation`` (estimator lab), else None."""
    from ebpo_bench.config.load import read_yaml

    if read_yaml(path).get("kind") != "simulation":
        return None
    from ebpo_bench.lab.spec import load_lab_spec

    return load_lab_spec(path, source=str(path))


@app.command(epilog="Example: ebpo-bench validate specs/*.yaml")
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to check.")],
    set_: SetOption = None,
    profile: Annotated[str | None, typer.Option(help="Also report the runs of this profile.")] = None,
) -> None:
    """Validate spec files (every arm, grid point, seed and profile) and report every error found."""
    sets, failed = parse_sets(set_), []
    for path in specs:
        try:
            if (lab := _simulation(path)) is not None:
                typer.echo(f"ok: {path}: simulation '{lab.name}'")
                continue
            exp = load_experiment(path, profile=profile, sets=sets)
        except SpecError as e:
            failed.append(str(e))
            continue
        arms = ", ".join(exp.arms())
        typer.echo(f"ok: {path}: {len(exp.runs)} runs (arms: {arms}; seeds: {exp.spec.seeds})")
    if failed:
        raise SpecError("\n".join(failed))


@app.command(name="ls", epilog="Examples: ebpo-bench ls; ebpo-bench ls estimators")
def ls_cmd(
    what: Annotated[
        str | None,
        typer.Argument(
            help="estimators | losses | tasks | backends | rewards | benchmarks | specs (default: all)"
        ),
    ] = None,
) -> None:
    """List everything a spec may name."""
    from ebpo_bench import catalog

    sections = catalog.sections()
    if what is not None and what not in sections:
        from ebpo_bench.registry import suggest

        _fail(f"unknown list '{what}'.{suggest(what, sections)} Choose one of: {', '.join(sections)}")
    for name, lines in sections.items():
        if what in (None, name):
            typer.echo(f"{name}:")
            for line in lines():
                typer.echo(f"  {line}")


@app.command(
    epilog="Examples: ebpo-bench run specs/quickstart.yaml --dry-run; "
    "ebpo-bench run specs/quickstart.yaml --arm ebpo"
)
def run(
    spec: Annotated[Path, typer.Argument(help="Spec file.")],
    arm: Annotated[list[str] | None, typer.Option(help="Run only this arm (repeatable).")] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Run only this seed (repeatable).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the expanded runs and resolved specs; run nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Restart runs whose spec changed (deletes their results).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
    results: Annotated[
        Path | None, typer.Option(help="Results root (default: the spec's output.root).")
    ] = None,
    eval_only: Annotated[
        bool,
        typer.Option(
            "--eval-only",
            help="Train nothing: re-evaluate completed runs with the spec's eval.* settings "
            "(which are outside the spec hash).",
        ),
    ] = False,
    set_: SetOption = None,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Apply the spec's scale profile (e.g. 'tiny': same grid, tiny model, synthetic task, CPU); "
            "results go to <name>-<profile>."
        ),
    ] = None,
    launcher: Annotated[
        str,
        typer.Option(help="inprocess (one after another, here) | slurm (a job array) | local (N at once)."),
    ] = "inprocess",
    launch_config: Annotated[
        Path | None,
        typer.Option(help="Resources per run (configs/launch/*.yaml) for --launcher slurm/local."),
    ] = None,
    launch_set: Annotated[
        list[str] | None,
        typer.Option("--launch-set", help="Override a launch-config field: FIELD=VALUE (repeatable)."),
    ] = None,
    max_parallel: Annotated[int, typer.Option(min=1, help="--launcher local: runs at once.")] = 1,
    gpus_per_run: Annotated[int, typer.Option(min=0, help="--launcher local: GPUs per run.")] = 0,
    run_id: Annotated[
        list[str] | None, typer.Option(hidden=True, help="Only these run ids (launchers).")
    ] = None,
    gpu_mem: Annotated[
        str, typer.Option("--gpu-mem", help="Memory of one GPU for the memory plan and the fit check.")
    ] = "80GB",
    accelerate_config: Annotated[
        Path | None,
        typer.Option(
            help="Plan memory for this accelerate launch config (else the launch's own environment)."
        ),
    ] = None,
) -> None:
    """Train (or resume) every run of a spec, evaluate it, and print a comparison table.

    Ctrl-C (SIGINT) or SIGTERM stops at the end of the current step, writes a checkpoint and marks the run
    interrupted in run.json; rerunning the same command resumes it.
    """
    if (lab := _simulation(spec)) is not None:  # the estimator lab: a simulation, no model
        if dry_run:
            typer.echo(resolved_yaml(lab))
            return
        from ebpo_bench.lab.report import build_lab_report
        from ebpo_bench.lab.runlab import run_lab

        exp_dir = run_lab(lab, Path(results or lab.output.root), quiet=quiet)
        typer.echo(f"report: {build_lab_report(exp_dir, Path('reports'))}")
        return
    from ebpo_bench.config.memory import check_runs, memory_lines
    from ebpo_bench.config.profiles import estimate_lines

    exp = load_experiment(spec, profile=profile, sets=parse_sets(set_))
    runs = select_runs(exp, arm, seed, run_id)
    if launcher != "inprocess" or launch_config or launch_set:
        opts = dict(
            launch_config=launch_config, sets=launch_set, max_parallel=max_parallel, gpus_per_run=gpus_per_run
        )
        opts.update(results=results, profile=profile, force=force, dry_run=dry_run)
        return launch(exp, runs, spec, launcher=launcher, **opts)
    if dry_run:
        print_dry_run(exp, runs)
        for line in estimate_lines(runs) + memory_lines(runs, gpu_mem, accelerate_config):
            typer.echo(line)
        return
    check_runs(runs, gpu_mem, accelerate_config)  # one line naming the field to change
    require_backends({r.rollout.backend.type for r in runs} | {r.eval.backend for r in runs})
    from ebpo_bench import runner  # imports torch lazily inside
    from ebpo_bench.eval.prepass import prepare_orderings
    from ebpo_bench.interrupt import catch_signals

    try:
        state, root = runner.process_state(), Path(results or exp.spec.output.root)
        summaries = prepare_orderings(runs, root, log=runner.log) if state.is_main_process else []
        state.wait_for_everyone()  # the pre-pass is on disk now; every rank's trainer reads it there
        with catch_signals() as stop:
            opts = dict(force=force, quiet=quiet, results_root=results, eval_only=eval_only)
            runner.run_experiment(exp, runs, stop=stop, report=not run_id, **opts)
        for md in summaries:  # beside the report (reports/<experiment>/), as build_report writes it
            dest = Path("reports") / exp.name / f"difficulty_prepass_{md.name.split('.')[0]}.md"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(md.read_text())
            runner.log(f"difficulty pre-pass summary: {dest}")
    finally:
        runner.shutdown()


app.command(epilog="Example: ebpo-bench export results/quickstart/ebpo/seed1 exported/ebpo-seed1")(export)
app.command(epilog="Example: ebpo-bench status specs/quickstart.yaml")(status)
app.command(epilog="Example: ebpo-bench cancel specs/quickstart.yaml")(cancel)


app.command(
    name="eval",
    epilog="Examples: ebpo-bench eval --model tiny --benchmarks aime24,amc23 --n 4 --limit 10; "
    "ebpo-bench eval --model results/quickstart/ebpo/seed1 --benchmarks all --preset paper; "
    "ebpo-bench eval --model PATH --benchmarks math500 --harness lm-eval --limit 20",
)(eval_cmd)


@app.command(
    epilog="Examples: ebpo-bench report; ebpo-bench report results/quickstart --reference grpo; "
    "ebpo-bench report results/quickstart results/quickstart-tiny (side by side)"
)
def report(
    experiment: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Experiment folder(s); several are also compared side by side "
            "(default: every experiment under --results, one report each)."
        ),
    ] = None,
    results: Annotated[Path, typer.Option(help="Results root.")] = Path("results"),
    out: Annotated[Path, typer.Option(help="Reports folder.")] = Path("reports"),
    reference: Annotated[
        str | None, typer.Option(help="Baseline arm (default: the spec's report.reference, else grpo).")
    ] = None,
    latex: Annotated[bool, typer.Option("--latex", help="Also write LaTeX tables.")] = False,
) -> None:
    """Build comparison reports (tables, figures, statistics) from result folders; never imports torch."""
    from ebpo_bench.lab.report import build_lab_report, is_lab_dir
    from ebpo_bench.report import build_reports

    given = list(experiment or [])
    if bad := [d for d in given if not d.is_dir()]:
        _fail(f"{bad[0]}: no such experiment folder; run `ebpo-bench run SPEC` first or check the path")
    if not given and not results.is_dir():
        _fail(f"{results}: no results folder; run `ebpo-bench run SPEC` first or pass --results")
    labs = [d for d in given or sorted(results.iterdir()) if d.is_dir() and is_lab_dir(d)]
    for d in labs:
        typer.echo(f"wrote {build_lab_report(d, out)}")
    exps = [d for d in given if d not in labs]
    if given and not exps:
        return
    target = None if not exps else (exps[0] if len(exps) == 1 else exps)
    try:
        paths = build_reports(results, target, out, reference=reference, latex=latex)
    except FileNotFoundError as e:
        _fail(str(e))
    for p in paths:
        typer.echo(f"wrote {p}")


app.command(
    epilog="Examples: ebpo-bench bench; ebpo-bench bench specs/quickstart.yaml --steps 20 --repeats 2; "
    "ebpo-bench bench --only ours,floor,estimators"
)(bench)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns input errors into one line and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except (SpecError, UserError) as e:
        for line in str(e).splitlines():
            typer.echo(f"error: {line}", err=True)
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Interrupted as e:  # SIGINT / SIGTERM: the runner recorded it; say where it stopped
        typer.echo(str(e), err=True)
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # click usage errors (typer vendors click)
            e.show()
            sys.exit(2)
        raise
    if isinstance(rv, int) and rv:
        sys.exit(rv)
