"""Load an experiment's run directories into tidy pandas frames (torch-free, never raises on bad runs).

One experiment is ``<results>/<experiment>/``; its runs are the folders below it that hold a
``run.json`` or a ``spec.resolved.yaml`` (run ids nest 2-3 levels: ``ebpo/seed1``, ``ebpo/G4/seed1``).
Each run is read as far as it is valid: a missing or corrupt file, torn JSONL lines, invalid rows,
a failed or unfinished status, or an evaluation that stopped before the last training step become
entries of the run's ``flags`` (shown in the report's Run status section), never exceptions.

A run enters the tables only when its last evaluated step reaches the spec's ``train.steps``:
comparing a run evaluated at step 40 with one evaluated at step 120 would be meaningless. Excluded
runs still appear in the training curves and in Run status.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ebpo_bench.config.load import AXIS_ABBREV
from ebpo_bench.results import RunPaths, read_jsonl, read_record

MARKERS = ("run.json", "spec.resolved.yaml")
EVAL_KEYS = ("step", "benchmark", "problem_id", "score_correct")
PROBLEM_COLS = ["run_id", "variant", "arm", "seed", "step", "benchmark", "problem_id", "n", "correct"]
METRIC_COLS = [
    "experiment",
    "run_id",
    "arm",
    "variant",
    "estimator",
    "group_size",
    "seed",
    "step",
    "metric",
    "value",
]


@dataclass
class ExperimentData:
    """Everything the report needs about one experiment.

    Attributes:
        name: experiment folder name.
        dir: the experiment folder.
        runs: one row per run (run_id, arm, variant, axes_label, estimator, group_size, seed, status,
            final_step, train_steps, in_tables, flags, spec_hash, order, ...).
        metrics: tidy training metrics, columns ``METRIC_COLS``.
        problems: per (run, step, benchmark, problem): samples ``n`` and ``correct`` count.
        spec: one readable resolved spec (description, paper_table, model, ...), {} if none.
        records: run.json of each readable run, for provenance.
        axes: grid axes (dotted path -> short name) present in the experiment.
        names: experiment names the runs record (spec ``name`` / run.json ``experiment``); more than
            one means the folder is a results root, not one experiment.
    """

    name: str
    dir: Path
    runs: pd.DataFrame
    metrics: pd.DataFrame
    problems: pd.DataFrame
    spec: dict
    records: list[dict] = field(default_factory=list)
    axes: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def find_run_dirs(exp_dir: Path) -> list[Path]:
    """Run folders under ``exp_dir``: those with run.json or spec.resolved.yaml (checkpoints skipped)."""
    dirs = set()
    for marker in MARKERS:
        for p in exp_dir.rglob(marker):
            if "checkpoints" not in p.relative_to(exp_dir).parts:
                dirs.add(p.parent)
    return sorted(dirs)


def find_experiments(results_root: Path) -> list[Path]:
    """Experiment folders of a results root (sub-folders holding at least one run).

    Estimator-lab folders (marked by ``lab.json``) are simulations with their own report
    (``ebpo_bench.lab.report``) and are left out here.
    """
    if not results_root.is_dir():
        return []
    return [
        d
        for d in sorted(results_root.iterdir())
        if d.is_dir() and not (d / "lab.json").exists() and find_run_dirs(d)
    ]


def axis_short(path: str) -> str:
    """Short name of a grid axis as in run ids (``rollout.group_size`` -> ``G``)."""
    return AXIS_ABBREV.get(path, path.rsplit(".", 1)[-1])


def variant_label(arm: str, axes: dict[str, Any]) -> str:
    """Row label of an arm at a grid point, e.g. ``ebpo (G=4)``; the arm name alone without a grid."""
    if not axes:
        return arm
    return f"{arm} (" + ", ".join(f"{axis_short(k)}={v}" for k, v in axes.items()) + ")"


def load_experiment(exp_dir: str | Path) -> ExperimentData:
    """Read every run of one experiment; bad runs are flagged, never fatal."""
    exp_dir = Path(exp_dir)
    infos, metrics, problems, records = [], [], [], []
    for run_dir in find_run_dirs(exp_dir):
        info, m, pr, rec = _load_run(exp_dir, run_dir)
        infos.append(info)
        metrics.append(m)
        problems.append(pr)
        if rec:
            records.append(rec)
    spec = next((i["_spec"] for i in infos if i["_spec"]), {})
    names = sorted({str(n) for n in (i.pop("_name") for i in infos) if n})
    runs = pd.DataFrame([{k: v for k, v in i.items() if k != "_spec"} for i in infos])
    axes = {}
    for i in infos:
        for k in i["axes"]:
            axes.setdefault(k, axis_short(k))
    return ExperimentData(
        name=exp_dir.name,
        dir=exp_dir,
        runs=runs,
        metrics=_concat(metrics, METRIC_COLS),
        problems=_concat(problems, PROBLEM_COLS),
        spec=spec,
        records=records,
        axes=axes,
        missing=missing_runs(exp_dir, set(runs["run_id"]) if len(runs) else set()),
        evals=extra_evaluations(exp_dir),
        names=names,
    )


def missing_runs(exp_dir: Path, present: set[str]) -> list[str]:
    """Runs a launched sweep expects (``sweep.json``) that have no results folder yet."""
    try:
        expected = json.loads((exp_dir / "sweep.json").read_text()).get("expected", [])
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return []
    return [r for r in expected if r not in present]


def extra_evaluations(exp_dir: Path) -> list[dict]:
    """Evaluations written by ``ebpo-bench eval RUN_DIR`` (``<run>/evals/<tag>/eval_summary.json``):
    one row per (run, evaluation folder, benchmark) with its settings and metrics."""
    out = []
    for summ in sorted(exp_dir.rglob("evals/*/eval_summary.json")):
        run_dir = summ.parent.parent.parent
        try:
            s = json.loads(summ.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        st = s.get("settings") or {}
        for bench, m in (s.get("benchmarks") or {}).items():
            n = m.get("n")
            out.append(
                {
                    "run_id": run_dir.relative_to(exp_dir).as_posix(),
                    "folder": summ.parent.name,
                    "step": s.get("step"),
                    "benchmark": bench,
                    "n": n,
                    "temperature": st.get("temperature"),
                    "max_new_tokens": st.get("max_new_tokens"),
                    "problems": m.get("problems"),
                    "avg": m.get(f"avg@{n}"),
                    "stderr": m.get("stderr"),
                    "pass": m.get(f"pass@{n}"),
                }
            )
    return out


def _concat(frames: list[pd.DataFrame], cols: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _load_run(exp_dir: Path, run_dir: Path) -> tuple[dict, pd.DataFrame, pd.DataFrame, dict | None]:
    paths = RunPaths(run_dir)
    run_id = run_dir.relative_to(exp_dir).as_posix()
    flags: list[str] = []
    spec = _read_spec(paths.spec, flags)
    rec = read_record(paths)
    if rec is None:
        flags.append("run.json missing" if not paths.record.exists() else "run.json unreadable (corrupt)")
    info = _identity(run_id, spec, rec or {}, flags)
    info["experiment"] = exp_dir.name
    status = (rec or {}).get("status", "unknown")
    info["status"] = status
    if status not in ("completed", "unknown"):
        err = str((rec or {}).get("error") or "").strip().splitlines()
        flags.append(f"status {status}" + (f": {err[0][:160]}" if err else ""))
    mrows, bad = read_jsonl(paths.metrics)
    if bad:
        flags.append(f"metrics.jsonl: {bad} unreadable line(s) skipped (torn or corrupt)")
    if not mrows:
        flags.append("no training metrics")
    erows, bad = read_jsonl(paths.eval)
    problems, invalid = _problem_frame(erows, info)
    if bad or invalid:
        flags.append(f"eval.jsonl: {bad + invalid} unreadable or invalid row(s) skipped")
    _eval_flags(info, problems, spec, flags)
    info["flags"] = flags
    info["_spec"] = spec
    info["_name"] = (rec or {}).get("experiment") or spec.get("name")
    return info, _metric_frame(mrows, info), problems, rec


def _read_spec(path: Path, flags: list[str]) -> dict:
    if not path.exists():
        flags.append("spec.resolved.yaml missing")
        return {}
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        spec = None
    if not isinstance(spec, dict):
        flags.append("spec.resolved.yaml unreadable (corrupt)")
        return {}
    return spec


def _get(d: dict, dotted: str, default: Any = None) -> Any:
    for part in dotted.split("."):
        if not isinstance(d, dict) or part not in d:
            return default
        d = d[part]
    return d


def _identity(run_id: str, spec: dict, rec: dict, flags: list[str]) -> dict:
    """Arm, seed, axes, estimator and settings of a run, from run.json, then the spec, then the run id."""
    parts = run_id.split("/")
    arm = rec.get("arm") or spec.get("arm") or parts[0]
    seed = rec.get("seed", spec.get("seed"))
    if not isinstance(seed, int):
        m = re.search(r"seed(-?\d+)$", parts[-1])
        seed = int(m.group(1)) if m else None
    if seed is None:
        flags.append("seed unknown")
        seed = -1
    axes = rec.get("axes") or spec.get("axes") or {}
    axes = axes if isinstance(axes, dict) else {}
    task_path = _get(spec, "task.path")
    order = _get(spec, "data.order", "")
    return {
        "run_id": run_id,
        "arm": str(arm),
        "seed": int(seed),
        "axes": axes,
        "axes_label": ", ".join(f"{axis_short(k)}={v}" for k, v in axes.items()),
        "variant": variant_label(str(arm), axes),
        "estimator": rec.get("estimator") or _get(spec, "advantage.type", ""),
        "group_size": _get(spec, "rollout.group_size"),
        "train_steps": _get(spec, "train.steps"),
        "n_samples": _get(spec, "eval.n_samples"),
        "order": order + (f" ({Path(str(task_path)).name})" if task_path else ""),
        "spec_hash": rec.get("spec_hash"),
        "commit": _get(rec, "provenance.git.commit"),
        "dirty": _get(rec, "provenance.git.dirty"),
        "device": rec.get("device"),
    }


def _metric_frame(rows: list[dict], info: dict) -> pd.DataFrame:
    """Tidy (long) metrics: every numeric key of every row except ``step``."""
    if not rows:
        return pd.DataFrame(columns=METRIC_COLS)
    wide = pd.DataFrame(rows)
    if "step" not in wide:
        return pd.DataFrame(columns=METRIC_COLS)
    wide["step"] = pd.to_numeric(wide["step"], errors="coerce")
    wide = wide.dropna(subset=["step"]).drop_duplicates("step", keep="last")
    long = wide.melt(id_vars="step", var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"].map(_as_number), errors="coerce")
    long = long.dropna(subset=["value"])
    for k in ("experiment", "run_id", "arm", "variant", "estimator", "group_size", "seed"):
        long[k] = info[k]
    return long[METRIC_COLS]


def _as_number(v: Any) -> Any:
    if isinstance(v, bool):
        return float(v)
    return v if isinstance(v, (int, float)) else None


def _problem_frame(rows: list[dict], info: dict) -> tuple[pd.DataFrame, int]:
    """Per-problem correct counts at each evaluated step; returns (frame, invalid rows dropped)."""
    if not rows:
        return pd.DataFrame(columns=PROBLEM_COLS), 0
    df = pd.DataFrame(rows)
    for k in EVAL_KEYS:
        if k not in df:
            df[k] = None
    if "sample" not in df:
        df["sample"] = range(len(df))
    df["step"] = pd.to_numeric(df["step"], errors="coerce")
    df["score_correct"] = df["score_correct"].map(
        lambda v: float(v) if isinstance(v, (bool, int, float)) else None
    )
    valid = df.dropna(subset=list(EVAL_KEYS))
    invalid = len(df) - len(valid)
    valid = valid.assign(benchmark=valid["benchmark"].astype(str), problem_id=valid["problem_id"].astype(str))
    valid = valid.drop_duplicates(["step", "benchmark", "problem_id", "sample"], keep="last")
    g = valid.groupby(["step", "benchmark", "problem_id"], sort=True)["score_correct"]
    out = pd.DataFrame({"n": g.size(), "correct": g.sum()}).reset_index()
    out["step"] = out["step"].astype(int)
    for k in ("run_id", "variant", "arm", "seed"):
        out[k] = info[k]
    return out[PROBLEM_COLS], invalid


def _eval_flags(info: dict, problems: pd.DataFrame, spec: dict, flags: list[str]) -> None:
    """Final evaluated step, whether the run enters the tables, and incomplete-sample warnings."""
    steps = info["train_steps"]
    if problems.empty:
        info["final_step"], info["in_tables"] = None, False
        flags.append("no evaluation rows: not in the tables")
        return
    final = int(problems["step"].max())
    info["final_step"] = final
    info["in_tables"] = steps is None or final >= int(steps)
    if not info["in_tables"]:
        flags.append(f"last evaluation at step {final} of {steps}: not in the tables")
    n_exp = info["n_samples"]
    last = problems[problems["step"] == final]
    if n_exp:
        short = int((last["n"] < int(n_exp)).sum())
        if short:
            flags.append(f"{short} problem(s) with fewer than {n_exp} samples at step {final}")
    counts = last.groupby("benchmark").size()
    if spec.get("task", {}).get("type") == "synthetic":
        want = {f"level{lv}" for lv in _get(spec, "task.eval_levels", [])}
        missing = sorted(want - set(counts.index))
        if missing:
            flags.append(f"benchmarks missing at step {final}: {', '.join(missing)}")
