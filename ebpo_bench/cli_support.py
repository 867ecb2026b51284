"""Helpers of the command line (``cli.py``): run selection, dry-run printing, backend checks, options.

Torch-free: every heavy import is inside the function that needs it.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ebpo_bench.config.load import resolved_yaml
from ebpo_bench.errors import UserError

#: the repeatable ``--set key.path=value`` option of validate / run / bench
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="KEY.PATH=VALUE",
        help="Override a spec field (repeatable), typed by the spec's schema: --set train.lr=1e-5 "
        "--set eval.benchmarks=[math500]; applied after --profile, recorded in the resolved spec.",
    ),
]


def _fail(msg: str) -> None:
    raise UserError(msg)


def require_backends(names: set[str]) -> None:
    """Fail in one line, before any work, when a requested rollout backend's engine does not import."""
    if names <= {"hf"}:
        return  # keeps the default path free of the rollout package (and torch) until it is needed
    from ebpo_bench.rollout import BackendUnavailable, require_backend

    for name in sorted(names):
        try:
            require_backend(name)
        except BackendUnavailable as e:
            _fail(str(e))


def select_runs(exp, arms: list[str] | None, seeds: list[int] | None, run_ids: list[str] | None = None):
    from ebpo_bench.registry import suggest

    if bad := sorted(set(run_ids or []) - {r.run_id for r in exp.runs}):
        raise UserError(
            f"{exp.path}: no run '{bad[0]}' in this spec; `ebpo-bench run {exp.path} --dry-run` lists them"
        )

    for a in arms or []:
        if a not in exp.arms():
            raise UserError(
                f"{exp.path}: no arm '{a}'.{suggest(a, exp.arms())} Arms: {', '.join(exp.arms())}"
            )
    for s in seeds or []:
        if s not in exp.spec.seeds:
            raise UserError(f"{exp.path}: seed {s} is not in the spec's seeds {exp.spec.seeds}")
    keep = lambda r: (not arms or r.arm in arms) and (not seeds or r.seed in seeds)  # noqa: E731
    return [r for r in exp.runs if keep(r) and (not run_ids or r.run_id in run_ids)]


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
