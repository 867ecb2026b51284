"""Run an experiment: for each expanded run, train (or skip / resume), evaluate, record provenance.

Idempotent: a completed run with the same spec hash is skipped; an interrupted one resumes from
its last checkpoint; a run directory whose training spec changed is refused, naming the changed
fields, unless ``--force`` (which deletes it and starts over). The hash covers training only:
``eval.*`` and ``log.*`` changes keep a finished run, and ``--eval-only`` re-evaluates it. SIGINT /
SIGTERM stop training at a step boundary (``interrupt.py``) and mark the run interrupted. A run
whose loss diverges is marked failed in run.json with the message, its last good checkpoint kept,
and the experiment continues with the next run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from ebpo_bench.config.diff import eval_field, read_resolved, spec_diff
from ebpo_bench.config.load import Experiment, eval_hash, resolved_yaml, spec_hash
from ebpo_bench.config.spec import RunConfig
from ebpo_bench.interrupt import Interrupted, StopRequest
from ebpo_bench.results import (
    RunPaths,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    now,
    provenance,
    read_jsonl,
    read_record,
    rewrite_jsonl,
    run_paths,
    update_record,
)


class RunRefused(Exception):
    """A run directory exists with a different spec and --force was not given."""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_experiment(
    exp: Experiment,
    runs: list[RunConfig],
    *,
    force: bool = False,
    quiet: bool = False,
    results_root: Path | None = None,
    eval_only: bool = False,
    stop: StopRequest | None = None,
    report: bool = True,
) -> dict[str, str]:
    """Run the selected runs in order; return run id -> final status; print the comparison table.

    ``eval_only`` re-evaluates completed runs (only ``eval.*`` may differ) and trains nothing;
    ``stop`` (``interrupt.StopRequest``) ends training at the next step boundary when set.
    ``report=False`` (one run of a launched sweep): no comparison table and no report, which
    ``ebpo-bench report`` builds later.
    """
    from ebpo_bench.errors import UserError

    root = Path(results_root or exp.spec.output.root)
    status: dict[str, str] = {}
    t0 = time.time()
    stop = stop or StopRequest()
    for run in runs:
        try:
            status[run.run_id] = run_one(run, root, force=force, quiet=quiet, eval_only=eval_only, stop=stop)
        except RunRefused as e:
            raise UserError(str(e)) from None
    if _is_main() and report:
        log(
            f"{exp.name}: {len(runs)} runs in {time.time() - t0:.0f} s: "
            + ", ".join(f"{k}={v}" for k, v in sorted(status.items()))
        )
        print(comparison_table(root / exp.name, runs))
        build_report(root, exp.name)
    return status


def build_report(root: Path, name: str) -> None:
    """Build the experiment's report; a report problem never fails the finished runs."""
    from ebpo_bench.report import build_reports

    try:
        for p in build_reports(root, root / name, Path("reports")):
            log(f"report: {p}")
    except Exception as e:  # noqa: BLE001 - the runs are done; say what went wrong and move on
        log(
            f"report for {name} could not be built ({type(e).__name__}: {e}); "
            f"run `ebpo-bench report {root / name}`"
        )


def shutdown() -> None:
    """Stop a vLLM engine, then leave the process group cleanly under ``accelerate launch``."""
    from ebpo_bench.rollout import shutdown_engines

    shutdown_engines()  # first: a vLLM engine's shutdown tears down the process groups it created
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def process_state():
    """The process-wide accelerate state, created CPU-aware so torchrun-style launches without a
    GPU join a gloo group (a first ``PartialState()`` with cpu=False would run each rank alone)."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def _is_main() -> bool:
    return process_state().is_main_process


def run_one(
    run: RunConfig, root: Path, *, force: bool, quiet: bool, eval_only: bool, stop: StopRequest
) -> str:
    """Train, skip, resume, re-evaluate (``eval_only``) or refuse one run; return its status."""
    paths = run_paths(root, run.name, run.run_id)
    h = spec_hash(run)
    rec = read_record(paths)
    old = read_resolved(paths) if rec is not None else {}
    changed = spec_diff(old, run) if old else []
    trained = [c for c in changed if not eval_field(c)] or not old  # no resolved spec: trust the hash
    if rec is not None and rec.get("spec_hash") != h and trained:
        if not force:
            shown = "; ".join(changed[:8]) + (f"; and {len(changed) - 8} more" if len(changed) > 8 else "")
            shown = shown or f"hash {rec.get('spec_hash')}, now {h}"
            raise RunRefused(
                f"{paths.dir} holds a run of a different spec (changed: {shown}); "
                "rename the experiment, or pass --force to delete it and start over"
            )
        if _is_main():
            shutil.rmtree(paths.dir)
        rec, changed = None, []
    done = rec is not None and rec.get("status") == "completed"
    if eval_only and not done:
        state = rec.get("status") if rec else "not started"
        log(f"{run.run_id}: not finished ({state}); run without --eval-only to train it")
        return state
    if done and eval_only:
        return reevaluate(run, paths, h, [c for c in changed if eval_field(c)], quiet=quiet)
    if done:
        ev = [c for c in changed if eval_field(c) and c.startswith("eval.")]
        note = (
            f"; its evaluation settings differ ({'; '.join(ev)}): --eval-only re-evaluates it" if ev else ""
        )
        log(f"{run.run_id}: completed earlier, skipped{note}")
        return "completed"
    return execute(run, paths, h, quiet=quiet, stop=stop)


def reevaluate(run: RunConfig, paths: RunPaths, h: str, changed: list[str], *, quiet: bool) -> str:
    """``run --eval-only``: evaluate a finished run's final weights with the spec's current eval settings."""
    if _is_main():
        what = "; ".join(changed) if changed else "settings unchanged"
        log(f"{run.run_id}: re-evaluating step {run.train.steps} ({what})")
        atomic_write_text(paths.spec, resolved_yaml(run))
        summary = final_evaluation(run, paths, quiet=quiet)
        update_record(paths, spec_hash=h, eval_hash=eval_hash(run), eval=summary, reevaluated=now())
    process_state().wait_for_everyone()
    return "re-evaluated"


def interrupted(run: RunConfig, paths: RunPaths, signum: int, main: bool) -> Interrupted:
    """Record an interrupted run in run.json; return the exception whose text is the CLI's one line."""
    from ebpo_bench.train.checkpoint import latest_checkpoint

    rows, _ = read_jsonl(paths.metrics)
    at = max((int(r["step"]) + 1 for r in rows), default=0)
    ck = latest_checkpoint(paths.checkpoints)
    last = int(ck.name.rsplit("_", 1)[-1]) if ck is not None else 0
    name, stop = signal.Signals(signum).name, Interrupted(signum)
    # a scheduler's stop (SLURM's pre-timeout USR1, preemption's TERM in a job) inside a job: requeued
    requeued = stop.requeue and bool(os.environ.get("SLURM_JOB_ID"))
    if main:
        prev = read_record(paths) or {}
        update_record(
            paths,
            status="requeued" if requeued else "interrupted",
            error=f"{name}",
            interrupted_at=at,
            last_checkpoint=last,
            stops=prev.get("stops", 0) + 1,
            finished=now(),
        )
    what = "stopped on request" if stop.requeue else "interrupted"
    then = "the job is requeued and resumes there" if requeued else "rerun the same command to resume"
    return Interrupted(
        signum, f"{run.run_id}: {what} ({name}) at step {at}; last checkpoint at step {last}; {then}"
    )


def execute(run: RunConfig, paths: RunPaths, h: str, *, quiet: bool, stop: StopRequest) -> str:
    """Train, evaluate and record one run; under ``accelerate launch`` only rank 0 writes files."""
    import torch

    from ebpo_bench.train.trainer import TrainingDiverged, train

    state = process_state()
    main = state.is_main_process
    if main:
        paths.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(paths.spec, resolved_yaml(run))
        device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        prev = read_record(paths) or {}
        update_record(
            paths,
            status="running",
            spec_hash=h,
            eval_hash=eval_hash(run),
            run_id=run.run_id,
            arm=run.arm,
            seed=run.seed,
            axes=run.axes,
            experiment=run.name,
            estimator=run.advantage.type,
            started=prev.get("started", now()),
            resumed=now() if prev else None,
            device=device,
            processes=state.num_processes,
            provenance=provenance(),
            error=None,
        )
    state.wait_for_everyone()
    t0 = time.time()
    try:
        last = train(
            run,
            paths,
            quiet=quiet,
            log=log,
            on_eval=lambda step, m, tok: evaluate_run(run, paths, m, tok, step, quiet=True),
            stop=stop,
        )
    except TrainingDiverged as e:
        if main:
            update_record(paths, status="failed", error=str(e), finished=now())
        log(f"{run.run_id}: FAILED: {e}")
        return "failed"
    except Interrupted as e:
        raise interrupted(run, paths, e.signum, main) from None
    except BaseException as e:
        if main:
            update_record(paths, status="interrupted", error=f"{type(e).__name__}: {e}")
        raise
    if main:
        try:
            if stop.requested:  # asked during the last step: stop before the final evaluation
                raise Interrupted(stop.signum)
            summary = final_evaluation(run, paths, quiet=quiet)
        except Interrupted as e:
            raise interrupted(run, paths, e.signum, main) from None
        update_record(
            paths,
            status="completed",
            finished=now(),
            train_seconds=round(time.time() - t0, 1),
            last_step=run.train.steps,
            final_train={k: last.get(k) for k in ("train/reward_mean", "train/accuracy")},
            eval=summary,
        )
    state.wait_for_everyone()
    return "completed"


def final_evaluation(run: RunConfig, paths: RunPaths, *, quiet: bool) -> dict:
    """Evaluate the final weights from the latest checkpoint (so a resumed run evaluates identically)."""
    import torch

    from ebpo_bench.models.loading import load_policy
    from ebpo_bench.train.checkpoint import latest_checkpoint, model_weights

    model, tok = load_policy(run.model, run.task, log=log)
    ck = latest_checkpoint(paths.checkpoints)
    model.load_state_dict(model_weights(ck))
    if torch.cuda.is_available():
        model = model.cuda()
    return evaluate_run(run, paths, model, tok, run.train.steps, quiet=quiet)


def eval_suites(run: RunConfig) -> list[tuple[dict[str, list[Any]], str]]:
    """What a run is evaluated on, as (benchmark name -> problems, answer format) groups:
    one benchmark per synthetic difficulty level (graded like the training reward), plus the
    math benchmarks named in ``eval.benchmarks`` (graded in their template's answer format)."""
    from ebpo_bench.data.tasks import task_family

    suites = []
    heldout = task_family(run.task).heldout()
    if heldout:
        suites.append((heldout, run.reward.format))
    if run.eval.benchmarks:
        from ebpo_bench.eval.benchmarks import GRADE_FORMAT, load_benchmarks

        e = run.eval
        suites.append(
            (load_benchmarks(e.benchmarks, e.data_dir, e.limit, e.template), GRADE_FORMAT[e.template])
        )
    return suites


def evaluate_run(run: RunConfig, paths: RunPaths, model, tok, step: int, *, quiet: bool) -> dict:
    from ebpo_bench.eval.metrics import summarize
    from ebpo_bench.eval.sampling import evaluate_suites

    suites = eval_suites(run)
    if not suites:
        log(f"{run.run_id}: nothing to evaluate (set eval.benchmarks); evaluation skipped")
        return {}
    e = run.eval
    model.eval()
    rows = evaluate_suites(
        model,
        tok,
        suites,
        n=e.n_samples,
        label=f"{run.run_id} eval@{step}",
        quiet=quiet,
        scale=run.reward.scale,
        timeout_s=run.reward.timeout_s,
        temperature=e.temperature,
        top_p=e.top_p,
        max_new_tokens=e.max_new_tokens,
        seed=e.seed,
        chat_template=run.model.chat_template,
        keep_text=e.keep_text,
        step=step,
        backend=run.eval_engine(),
    )
    if paths.eval.exists():
        rewrite_jsonl(paths.eval, lambda r: r.get("step") != step)  # idempotent re-evaluation of a step
    append_jsonl(paths.eval, rows)
    summary = summarize(rows)
    all_summ = json.loads(paths.eval_summary.read_text()) if paths.eval_summary.exists() else {}
    all_summ[str(step)] = summary
    atomic_write_json(paths.eval_summary, all_summ)
    return summary


def comparison_table(exp_dir: Path, runs: list[RunConfig]) -> str:
    """Final avg@n per benchmark, mean ± sample std over seeds, one row per arm (x grid point)."""
    groups: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        rec = read_record(RunPaths(exp_dir / run.run_id)) or {}
        key = run.run_id.rsplit("/seed", 1)[0]
        for bench, m in (rec.get("eval") or {}).items():
            avg = next((v for k, v in m.items() if k.startswith("avg@")), None)
            if avg is not None:
                groups.setdefault(key, {}).setdefault(bench, []).append(avg)
    if not groups:
        return "(no evaluation results to compare)"
    benches = sorted({b for g in groups.values() for b in g})
    lines = ["| arm | " + " | ".join(benches) + " | mean |", "|---" * (len(benches) + 2) + "|"]
    for key, per in sorted(groups.items()):
        cells, means = [], []
        for b in benches:
            vals = per.get(b, [])
            means.append(statistics.fmean(vals) if vals else float("nan"))
            sd = f" ± {100 * statistics.stdev(vals):.1f}" if len(vals) > 1 else ""  # no spread from 1 seed
            cells.append(f"{100 * means[-1]:.1f}{sd} (seeds={len(vals)})" if vals else "")
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {100 * statistics.fmean(means):.1f} |")
    note = "mean = unweighted mean of these columns; report.md's Avg may average fewer (see its reading)"
    return f"Final held-out accuracy (avg@n, %, mean ± std over seeds; {note})\n" + "\n".join(lines)
