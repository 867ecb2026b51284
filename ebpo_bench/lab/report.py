"""Report of an estimator-lab experiment: report.md, figures (PNG + SVG) and CSV tables, torch-free.

Reads only the files ``run_lab`` wrote (lab.json and the tidy CSVs) and drives the other modules:
``frames`` (the files as frames), ``claims`` (the computed claims section) and ``figures``. Means are
over seeds with the standard error over seeds; seed bands in learning curves span the 10th-90th
percentile of the seeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from ebpo_bench.lab.claims import claims
from ebpo_bench.lab.figures import REF_LINES, fig_learning, fig_penalty, fig_prior, fig_vs_g
from ebpo_bench.lab.frames import Lab, final_learning, md_table, summarise

FIGURES = {  # file name -> caption, in report order
    "mse_vs_group_size": "Baseline MSE vs G (log-log) with the closed-form references",
    "zero_signal_vs_group_size": "Share of samples with zero advantage vs G",
    "failure_penalty": "Failure penalty (Cor. 3.5) and the all-success advantage vs mu_glob",
    "learning_success": "Policy simulation: success rate (mean, 10-90% seed band)",
    "learning_entropy": "Policy simulation: policy entropy in nats (mean, 10-90% seed band)",
    "prior_error": "Prior error, shuffled vs clustered batches (Prop. 3.8)",
}
REF_NAMES = ["group_mean_mse", *REF_LINES]


def is_lab_dir(exp_dir: str | Path) -> bool:
    """True when ``exp_dir`` holds an estimator-lab result (a lab.json with kind simulation)."""
    f = Path(exp_dir) / "lab.json"
    try:
        return f.is_file() and json.loads(f.read_text()).get("kind") == "simulation"
    except (OSError, ValueError):
        return False


def _tables(lab: Lab, tdir: Path, cl: list[dict]) -> dict[str, pd.DataFrame]:
    t = {
        "metrics": lambda: summarise(lab.stats, ["distribution", "order", "estimator", "G", "metric"]),
        "reference": lambda: summarise(lab.ref, ["distribution", "order", "G", "metric"]),
        "penalty": lambda: summarise(lab.penalty, ["estimator", "target_mean", "metric"]),
        "learning_final": lambda: final_learning(lab),
        "skipped": lambda: lab.skipped,
    }
    src = {
        "metrics": lab.stats,
        "reference": lab.ref,
        "penalty": lab.penalty,
        "learning_final": lab.learning,
        "skipped": lab.skipped,
    }
    t = {k: make() for k, make in t.items() if len(src[k])}
    t["claims"] = pd.DataFrame([{**c, "evidence": " | ".join(c["evidence"])} for c in cl])
    tdir.mkdir(parents=True, exist_ok=True)
    for k, df in t.items():
        df.to_csv(tdir / f"{k}.csv", index=False)
    return t


def _mse_section(lab: Lab) -> list[str]:
    lines = []
    for d, o in lab.cells():
        s = lab.metric("mse").query("distribution == @d and order == @o")
        piv = s.pivot_table(index="estimator", columns="G", values="value").reset_index()
        r = lab.ref.query("distribution == @d and order == @o and metric in @REF_NAMES")
        ref = (
            r.pivot_table(index="metric", columns="G", values="value").rename_axis("estimator").reset_index()
        )
        lines += [
            f"**{d} / {o}** (rows below the estimators: references)",
            "",
            md_table(pd.concat([piv, ref])),
            "",
        ]
    return lines


def policy_setup(lab: Lab, final: pd.DataFrame | None) -> list[str]:
    """The policy simulation's setup in words, and why its final success is not an estimator ranking."""
    p = lab.record.get("spec", {}).get("policy", {})
    if not p or lab.learning.empty:
        return []
    opt, lr = str(p.get("optimizer", "sgd")), p.get("lr")
    text = (
        f"A softmax bandit with K = {p.get('outcomes')} answers per prompt ({p.get('parameterisation')} "
        f"logits), prompts from '{p.get('distribution')}' ({p.get('order')} order), "
        f"{p.get('prompts_per_batch')} prompts per step from a pool of {p.get('pool_size')}, "
        f"{p.get('steps')} steps of {opt.upper()} with lr {lr}, one update per batch (no PPO clip, "
        f"no KL), {p.get('seeds')} seeds with common random numbers across estimators."
    )
    if opt == "sgd":
        text += (
            " With SGD the overall scale of an estimator's advantages multiplies the learning rate, so "
            "final-success differences mix the baseline's quality with a different step size; they are "
            "not an estimator ranking."
        )
        grpo, bn = lab.reference("grpo"), lab.reference("grpo_bn")
        if final is not None and grpo and bn and {grpo, bn} <= set(final.estimator):
            f = final.pivot_table(index="G", columns="estimator", values="mean_success")
            g = (f[bn] - f[grpo]).abs().idxmax()
            f = f.loc[g]
            text += (
                f" Example: {bn} differs from {grpo} only in its normalisation (batch instead of group "
                f"std) and reaches a final success of {f[bn]:.3f} vs {f[grpo]:.3f} at G={g}."
            )
    return ["## Policy simulation setup", "", text, ""]


def build_lab_report(exp_dir: Path, out: Path) -> Path:
    """Write ``out/<name>/report.md``, ``figures/`` (PNG + SVG) and ``tables/`` (CSV) for one lab folder.

    Returns the report.md path; raises FileNotFoundError when ``exp_dir`` holds no lab.json of kind
    simulation.
    """
    exp_dir = Path(exp_dir)
    if not is_lab_dir(exp_dir):
        raise FileNotFoundError(
            f"{exp_dir}: no lab.json with kind 'simulation'; run `ebpo-bench run SPEC` first"
        )
    lab = Lab(exp_dir)
    dest = Path(out) / lab.name
    for sub in ("figures", "tables"):  # stale files of an earlier layout must not linger
        shutil.rmtree(dest / sub, ignore_errors=True)
    fdir, cl = dest / "figures", claims(lab)
    figs = {}
    if len(lab.stats):
        figs["mse_vs_group_size"] = fig_vs_g(lab, "mse", "baseline MSE", fdir, refs=True)
        figs["zero_signal_vs_group_size"] = fig_vs_g(
            lab, "zero_frac", "share of |A| < 1e-8", fdir, refs=False
        )
        figs["prior_error"] = fig_prior(lab, fdir)
    if len(lab.penalty):
        figs["failure_penalty"] = fig_penalty(lab, fdir)
    for col in ("success", "entropy") if len(lab.learning) else ():
        figs[f"learning_{col}"] = fig_learning(lab, col, fdir)
    tables = _tables(lab, dest / "tables", cl)
    path = dest / "report.md"
    path.write_text(_markdown(lab, cl, {k: v for k, v in figs.items() if v}, tables))
    return path


def _markdown(lab: Lab, cl: list[dict], figs: dict, tables: dict) -> str:
    rec, spec = lab.record, lab.record.get("spec", {})
    git = rec.get("provenance", {}).get("git", {})
    opts = lambda o: ", ".join(f"{a}={b}" for a, b in o.items())
    est = pd.DataFrame(
        [
            {"estimator": k, "type": v["type"], "options": opts(v["options"])}
            for k, v in rec.get("estimators", {}).items()
        ]
    )
    md = [
        f"# Estimator lab: {lab.name}",
        "",
        spec.get("description", ""),
        "",
        f"Status {rec.get('status')} in {rec.get('wall_s', '?')} s; git {str(git.get('commit'))[:12]}"
        f"{' (dirty)' if git.get('dirty') else ''}; reward scale {spec.get('reward_scale')}; distributions: "
        + ", ".join(f"{k} ({v['type']})" for k, v in spec.get("distributions", {}).items())
        + ".",
        "",
        md_table(est),
        "",
        "## How the numbers are made",
        "",
        *[f"{t}\n" for t in rec.get("method", [])],
        *policy_setup(lab, tables.get("learning_final")),
        "## Claims (computed from the simulation)",
        "",
    ]
    for c in cl:
        md += [f"- **{c['verdict']}** -- {c['claim']}"] + [f"  - {e}" for e in c["evidence"]]
    md += ["", "## Baseline MSE against the true expected reward", ""] + _mse_section(lab)
    if "learning_final" in tables:
        f = tables["learning_final"]
        for col, what in (("mean_success", "success rate"), ("mean_entropy", "entropy (nats)")):
            piv = f.pivot_table(index="estimator", columns="G", values=col).reset_index()
            md += [
                f"**Policy simulation, final {what}** (mean over {int(f.n.max())} seeds)",
                "",
                md_table(piv),
                "",
            ]
    md += ["## Figures", ""] + [
        f"![{FIGURES[k]}](figures/{k}.png)\n\n*{FIGURES[k]}*\n" for k in FIGURES if k in figs
    ]
    md += ["## Tables", "", "CSV files in `tables/`: " + ", ".join(f"`{k}.csv`" for k in tables), ""]
    if "skipped" in tables:
        md += ["## Skipped settings", "", md_table(tables["skipped"]), ""]
    return "\n".join(md) + "\n"
