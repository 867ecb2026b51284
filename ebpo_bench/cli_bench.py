"""The ``ebpo-bench bench`` command (registered on the app in ``cli.py``); torch-free until it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ebpo_bench.cli_support import _fail, select_runs
from ebpo_bench.config.load import load_experiment


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
