"""Report of an estimator-lab experiment: report.md, figures (PNG + SVG) and CSV tables, torch-free.

Reads only the files ``run_lab`` wrote (lab.json and the tidy CSVs). The claims section is computed,
not written by hand: every EBPO-type estimator (spec type ``ebpo``) is checked in every simulated
setting, and each setting where the numbers go against a claim is listed, as are the places where
EBPO is known not to help (positive advantage for all-success groups, small gains at large G).
Means are over seeds with the standard error over seeds; seed bands in learning curves span the
10th-90th percentile of the seeds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

FIGURES = {  # file name -> caption, in report order
    "mse_vs_group_size": "Baseline MSE vs G (log-log) with the closed-form references",
    "zero_signal_vs_group_size": "Share of samples with zero advantage vs G",
    "failure_penalty": "Failure penalty (Cor. 3.5) and the all-success advantage vs mu_glob",
    "learning_success": "Policy simulation: success rate (mean, 10-90% seed band)",
    "learning_entropy": "Policy simulation: policy entropy in nats (mean, 10-90% seed band)",
    "prior_error": "Prior error, shuffled vs clustered batches (Prop. 3.8)",
}
REF_LINES = {
    "group_mean_mse_closed": ("group mean, closed form sigma_w^2/G", "--", "k"),
    "oracle_eb_mse_closed": ("oracle shrinkage (1-S*) sigma_w^2/G", ":", "k"),
    "ebpo_plugin_mse_closed": ("EBPO plug-in S, large P", "-.", "0.4"),
}
REF_NAMES = ["group_mean_mse", *REF_LINES]


def is_lab_dir(exp_dir: str | Path) -> bool:
    """True when ``exp_dir`` holds an estimator-lab result (a lab.json with kind simulation)."""
    f = Path(exp_dir) / "lab.json"
    try:
        return f.is_file() and json.loads(f.read_text()).get("kind") == "simulation"
    except (OSError, ValueError):
        return False


class Lab:
    """The files of one lab folder as frames."""

    def __init__(self, exp_dir: Path) -> None:
        self.record = json.loads((exp_dir / "lab.json").read_text())
        self.name = self.record.get("name", exp_dir.name)
        read = lambda k: (
            pd.read_csv(exp_dir / f"{k}.csv")
            if (exp_dir / f"{k}.csv").is_file()
            else pd.DataFrame(columns=["estimator", "G", "distribution", "order", "metric", "value", "seed"])
        )  # absent: empty
        self.stats, self.ref, self.penalty = read("estimator_stats"), read("reference"), read("penalty")
        self.learning, self.skipped = read("learning"), read("skipped")
        self.types = {k: v["type"] for k, v in self.record.get("estimators", {}).items()}
        self.estimators = list(self.types)

    def of_type(self, kind: str) -> list[str]:
        return [e for e, t in self.types.items() if t == kind]

    def reference(self, kind: str) -> str | None:
        """The estimator named ``kind`` (registry defaults), else the first of that type, else None."""
        return kind if kind in self.types else next(iter(self.of_type(kind)), None)

    def metric(self, name: str, frame: str = "stats") -> pd.DataFrame:
        df = getattr(self, frame)
        return df[df.metric == name]

    def prior_closed(self) -> pd.Series:
        """Closed-form prior errors (Prop. 3.8) per (distribution, metric)."""
        return (
            self.ref[self.ref.metric.astype(str).str.startswith("prior_mse_")]
            .groupby(["distribution", "metric"])
            .value.mean()
        )

    def cells(self) -> list[tuple[str, str]]:
        """(distribution, order) pairs of the stats sweep, in file order."""
        return list(
            self.stats[["distribution", "order"]].drop_duplicates().itertuples(index=False, name=None)
        )


def summarise(df: pd.DataFrame, by: list[str], col: str = "value") -> pd.DataFrame:
    """Mean, standard error over seeds and seed count per group."""
    g = df.groupby(by, sort=True)[col]
    out = pd.DataFrame({"mean": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count()), "n": g.count()})
    return out.reset_index()


def md_table(df: pd.DataFrame) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)
    rows = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(rows + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)])


# ---------------------------------------------------------------- claims
def _claim(title: str, ok: int, n: int, evidence: list[str]) -> dict:
    verdict = (
        "not tested"
        if n == 0
        else "supported"
        if ok == n
        else "not supported"
        if ok == 0
        else "partly supported"
    )
    return {"claim": title, "verdict": verdict, "evidence": evidence}


def _per_setting(lab: Lab, metric: str, names: list[str]) -> pd.Series:
    """Mean over seeds per (estimator, distribution, order, G), settings where the metric is defined."""
    m, keys = lab.metric(metric).dropna(subset=["value"]), ["estimator", "distribution", "order", "G"]
    m = m[m.estimator.isin(names)]
    if m.empty:  # keep the index levels so that callers can slice by estimator
        return pd.Series(dtype=float, index=pd.MultiIndex.from_tuples([], names=keys))
    return m.groupby(keys).value.mean()


def claim_mse(lab: Lab) -> dict:
    title, eb = "Thm 3.3: EBPO's baseline has lower MSE than the group mean", lab.of_type("ebpo")
    c = _per_setting(lab, "mse", eb).rename("mse").reset_index()
    if c.empty:
        return _claim(title, 0, 0, [])
    ref = lab.ref[lab.ref.metric.isin(["group_mean_mse", "oracle_eb_mse_closed"])]
    c = c.merge(
        ref.pivot_table(index=["distribution", "order", "G"], columns="metric", values="value").reset_index()
    )
    bad, by_g = c[c.mse >= c.group_mean_mse], (1 - c.mse / c.group_mean_mse).groupby(c.G).mean()
    ratio = c.mse / c.oracle_eb_mse_closed
    ev = [
        f"lower than the group mean in {len(c) - len(bad)} of {len(c)} settings (estimator x distribution x order x "
        "G); mean relative reduction by G: " + ", ".join(f"G={g}: {v:.0%}" for g, v in by_g.items())
    ]
    ev += [
        f"NOT lower: {r.estimator} on {r.distribution}/{r.order}, G={r.G}: {r.mse:.4g} vs {r.group_mean_mse:.4g}"
        for r in bad.itertuples()
    ]
    w = c.loc[ratio.idxmax()]
    ev.append(
        f"MSE / oracle shrinkage toward the pool mean (1 - S*) sigma_w^2/G: {ratio.min():.2f} to "
        f"{ratio.max():.2f} (worst: {w.estimator} on {w.distribution}, G={w.G})"
    )
    best = _per_setting(lab, "mse", lab.estimators).reset_index()
    wins = best.loc[best.groupby(["distribution", "order", "G"]).value.idxmin()].estimator.value_counts()
    ev.append("lowest MSE per setting (settings won): " + ", ".join(f"{k} {v}" for k, v in wins.items()))
    if len(by_g) > 1 and by_g.iloc[-1] < by_g.iloc[0]:
        ev.append(
            f"where EBPO helps least: the reduction falls from {by_g.iloc[0]:.0%} at G={by_g.index[0]} to "
            f"{by_g.iloc[-1]:.0%} at G={by_g.index[-1]}"
        )
    return _claim(title, len(c) - len(bad), len(c), ev)


def claim_saturation(lab: Lab) -> list[dict]:
    eb = lab.of_type("ebpo")
    cf, cs = _per_setting(lab, "fail_adv", eb), _per_setting(lab, "success_adv", eb)
    rng = lambda c, e: (
        f"{e}: from {c[e].min():.3g} to {c[e].max():.3g} ({int((c[e] > 0).sum())} of {len(c[e])} > 0)"
    )
    ev = [rng(cf, e) for e in cf.index.unique(0)] + [
        f"not negative: {k}: {v:.3g}" for k, v in cf[cf >= 0].items()
    ]
    zf = _per_setting(lab, "zero_frac", lab.estimators).groupby("estimator").mean()
    ev.append("zero-signal share (mean over settings): " + ", ".join(f"{e} {v:.1%}" for e, v in zf.items()))
    for e in [e for e in eb if lab.record["estimators"][e]["options"].get("adv_norm") == "none"]:
        gap = (_per_setting(lab, "fail_adv", [e]) - _per_setting(lab, "fail_adv_pred", [e])).abs().max()
        ev.append(f"{e} (unnormalised): |measured - (-S (mu_glob - r_fail))| <= {gap:.2g}")
    fail = _claim(
        "Thm 3.2: all-fail groups get a negative EBPO advantage (GRPO: 0)", int((cf < 0).sum()), len(cf), ev
    )
    success = _claim(
        "Where EBPO does not help: all-success groups get a positive advantage (GRPO: 0), pushing "
        "already-solved prompts further",
        0,
        0,
        [rng(cs, e) for e in cs.index.unique(0)],
    )
    success["verdict"] = "observed" if (cs > 0).any() else "not observed" if len(cs) else "not tested"
    return [fail, success]


def claim_penalty(lab: Lab) -> dict:
    eb, p, ok, ev = lab.of_type("ebpo"), lab.penalty, 0, []
    t = (
        p[p.estimator.isin(eb)].groupby(["estimator", "target_mean", "metric"]).value.mean().unstack("metric")
        if len(p)
        else pd.DataFrame()
    )
    for e in t.index.unique(0):
        d = t.loc[e].dropna(subset=["fail_adv"]).sort_values("batch_mean_reward")
        x, y = d.batch_mean_reward.to_numpy(), d.fail_adv.to_numpy()
        slope, mono = np.polyfit(x, y, 1)[0] if len(x) > 1 else np.nan, bool(np.all(np.diff(y) < 0))
        ok += bool(slope < 0 and mono)
        turn = "" if mono else f"; NOT monotone: rises after mu_glob={x[np.argmax(np.diff(y) >= 0)]:.2f}"
        ev.append(
            f"{e}: {y[0]:.3g} at mu_glob={x[0]:.2f} ... {y[-1]:.3g} at {x[-1]:.2f}, slope {slope:.3g}{turn}"
        )
    return _claim("Cor 3.5: the all-fail penalty grows with the prior mean mu_glob", ok, len(ev), ev)


def final_learning(lab: Lab) -> pd.DataFrame:
    """Per estimator and G: final success and entropy (mean and se over seeds)."""
    last = lab.learning[lab.learning.step == lab.learning.step.max()]
    return summarise(last, ["estimator", "G"], "success").merge(
        summarise(last, ["estimator", "G"], "entropy"),
        on=["estimator", "G", "n"],
        suffixes=("_success", "_entropy"),
    )


def _versus(curves: pd.DataFrame, e: str, ref: str) -> tuple[int, int, str]:
    """Entropy of ``e`` vs ``ref`` per G: final, and at the success both reach (interpolated on the mean curves).

    A G counts for ``e`` only if both are higher, so slower learning alone never reads as slower entropy decay.
    """
    won = matched = 0
    parts = []
    gs = [g for g in curves.index.unique(0) if (g, e) in curves.index and (g, ref) in curves.index]
    for g in gs:
        a, b = curves.loc[(g, e)], curves.loc[(g, ref)]
        level = min(a.success.iloc[-1], b.success.iloc[-1])
        at = [
            float(np.interp(level, np.maximum.accumulate(c.success.to_numpy()), c.entropy.to_numpy()))
            for c in (a, b)
        ]
        higher = bool(a.entropy.iloc[-1] > b.entropy.iloc[-1])
        won, matched = won + (higher and at[0] > at[1]), matched + bool(at[0] > at[1])
        parts.append(
            f"G={g}: {a.entropy.iloc[-1]:.3g} vs {b.entropy.iloc[-1]:.3g} (success {a.success.iloc[-1]:.3g} "
            f"vs {b.success.iloc[-1]:.3g}; at success {level:.3g}: {at[0]:.3g} vs {at[1]:.3g})"
        )
    return (
        won,
        len(gs),
        (
            f"{e} vs {ref}: entropy higher both at the end and at equal success at {won} of {len(gs)} G "
            f"(at equal success alone: {matched}) -- " + "; ".join(parts)
        ),
    )


def claim_entropy(lab: Lab) -> dict:
    title = "Prop 3.6: EBPO's policy entropy decays more slowly than GRPO's (same steps and step size)"
    grpo, bn = lab.reference("grpo"), lab.reference("grpo_bn")
    if lab.learning.empty or grpo is None:
        return _claim(title + " [needs the policy sweep and a grpo estimator]", 0, 0, [])
    curves = lab.learning.groupby(["G", "estimator", "step"])[["success", "entropy"]].mean()
    res = [_versus(curves, e, grpo) for e in lab.of_type("ebpo")]
    ev = [t for _, _, t in res]
    if bn is not None:
        ev.append(
            "control without shrinkage (group mean + batch std): "
            + _versus(curves, bn, grpo)[2]
            + ". When the control moves like EBPO, the batch-level normalisation, not the shrinkage, drives it"
        )
    return _claim(title, sum(r[0] for r in res), sum(r[1] for r in res), ev)


def claim_prior(lab: Lab) -> dict:
    title = "Prop 3.8: topic-clustered batches give a better prior than shuffled ones"
    t = _per_setting(lab, "prior_mse", lab.estimators).groupby(["estimator", "distribution", "order"]).mean()
    t = (
        t.unstack("order").dropna()
        if len(t) and {"shuffled", "clustered"} <= set(t.index.unique("order"))
        else pd.DataFrame(
            columns=["clustered", "shuffled"], index=pd.MultiIndex.from_tuples([], names=["e", "d"])
        )
    )
    ref = lab.prior_closed()
    ev = [
        f"{e} on {d}: prior MSE clustered {r.clustered:.3g} vs shuffled {r.shuffled:.3g}"
        f" ({'better' if r.clustered < r.shuffled else 'NOT better'})"
        for (e, d), r in t.iterrows()
    ]
    ev += [
        f"closed forms on {d}: shuffled Var(theta) {ref[(d, 'prior_mse_shuffled_closed')]:.3g}, idealised "
        f"clustered E_k Var(theta | k) {ref[(d, 'prior_mse_clustered_closed')]:.3g}"
        for d in t.index.unique(1)
    ]
    return _claim(title, int((t.clustered < t.shuffled).sum()) if len(t) else 0, len(t), ev)


def claims(lab: Lab) -> list[dict]:
    return [claim_mse(lab), *claim_saturation(lab), claim_penalty(lab), claim_entropy(lab), claim_prior(lab)]


# ---------------------------------------------------------------- figures
def _plt():
    import matplotlib

    matplotlib.use("Agg")  # headless, never a window
    matplotlib.rcParams["svg.hashsalt"] = "ebpo-bench-lab"  # same results, same SVG
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str, legend_ax=None, title: str | None = None) -> list[Path]:
    """One legend outside the panels, then PNG + SVG (no date: same results, same file)."""
    if legend_ax is not None:
        fig.legend(
            *legend_ax.get_legend_handles_labels(),
            loc="outside right upper",
            fontsize=7,
            title=title,
            title_fontsize=7,
        )
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    _plt().close(fig)
    return paths


def _panels(lab: Lab, n: int, ncols: int = 3):
    """Figure with n panels, and one colour per estimator shared by every figure."""
    plt, ncols = _plt(), max(1, min(ncols, n))
    fig, axes = plt.subplots(
        -(-n // ncols),
        ncols,
        figsize=(4.6 * ncols, 3.3 * -(-n // ncols) + 0.5),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    cmap = plt.get_cmap("tab10" if len(lab.estimators) <= 10 else "tab20")
    return fig, axes.ravel(), {e: cmap(i % cmap.N) for i, e in enumerate(lab.estimators)}


def fig_vs_g(lab: Lab, metric: str, ylabel: str, out: Path, refs: bool) -> list[Path]:
    """One panel per (distribution, order): the metric against G per estimator (mean over seeds)."""
    fig, axes, col = _panels(lab, len(cells := lab.cells()))
    for ax, (d, o) in zip(axes, cells):
        s = summarise(lab.metric(metric).query("distribution == @d and order == @o"), ["estimator", "G"])
        for e, g in s.groupby("estimator"):
            ax.errorbar(
                g.G, g["mean"], yerr=g.se, marker="o", ms=3, lw=1.2, color=col.get(e), label=e, capsize=2
            )
        if refs:
            r = lab.ref.query("distribution == @d and order == @o").groupby(["metric", "G"]).value.mean()
            for key, (label, style, grey) in REF_LINES.items():
                if key in r.index.get_level_values(0):
                    ax.plot(r[key].index, r[key].values, style, color=grey, lw=1, label=label)
            ax.set_yscale("log")
        ax.set_xscale("log", base=2)
        ax.set(title=f"{d} / {o}", xlabel="group size G", ylabel=ylabel)
    return _save(fig, out, "mse_vs_group_size" if refs else "zero_signal_vs_group_size", axes[0])


def fig_penalty(lab: Lab, out: Path) -> list[Path]:
    """All-fail and all-success advantages against the batch's mean reward (Cor. 3.5 and its mirror)."""
    fig, axes, col = _panels(lab, 2, 2)
    t = (
        lab.penalty.groupby(["estimator", "target_mean", "metric"])
        .value.mean()
        .unstack("metric")
        .reset_index()
    )
    for ax, key, title in zip(axes, ("fail_adv", "success_adv"), ("all-fail groups", "all-success groups")):
        for e, g in t.groupby("estimator"):
            ax.plot(g.batch_mean_reward, g[key], marker="o", ms=3, lw=1.2, color=col.get(e), label=e)
            if key == "fail_adv" and "fail_adv_pred" in g and g.fail_adv_pred.notna().any():
                ax.plot(g.batch_mean_reward, g.fail_adv_pred, ":", color=col.get(e), lw=1)
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set(
            title=f"Mean advantage of {title}",
            xlabel="mean reward of the batch (mu_glob)",
            ylabel="advantage",
        )
    return _save(fig, out, "failure_penalty", axes[0], "dotted: -S (mu_glob - r_fail)")


def fig_learning(lab: Lab, col_name: str, out: Path) -> list[Path]:
    """Per G: mean over seeds with a 10-90% seed band."""
    gs = sorted(lab.learning.G.unique())
    fig, axes, col = _panels(lab, len(gs))
    for ax, g in zip(axes, gs):
        for e, d in lab.learning[g == lab.learning.G].groupby("estimator"):
            q = d.groupby("step")[col_name].quantile([0.1, 0.5, 0.9]).unstack()
            ax.plot(q.index, d.groupby("step")[col_name].mean(), color=col.get(e), lw=1.2, label=e)
            ax.fill_between(q.index, q[0.1], q[0.9], color=col.get(e), alpha=0.12, lw=0)
        ax.set(
            title=f"G = {g}",
            xlabel="step",
            ylabel="success rate" if col_name == "success" else "entropy (nats)",
        )
    return _save(fig, out, f"learning_{col_name}", axes[0])


def fig_prior(lab: Lab, out: Path) -> list[Path] | None:
    """Prior error per prior-reporting estimator and multi-topic distribution, shuffled vs clustered."""
    pm = lab.metric("prior_mse")
    t = pm.groupby(["distribution", "estimator", "order"]).value.mean().unstack("order") if len(pm) else pm
    t = t.dropna() if {"shuffled", "clustered"} <= set(t.columns) else t.iloc[:0]
    if t.empty:
        return None
    fig, axes, _ = _panels(lab, 1, 1)
    fig.set_size_inches(1.2 * len(t) + 2.5, 3.8)
    ax, x = axes[0], np.arange(len(t))
    for i, o in enumerate(("shuffled", "clustered")):
        ax.bar(x + (i - 0.5) * 0.38, t[o], 0.38, label=o)
    ref = lab.prior_closed()
    for key, colour, label in (
        ("prior_mse_shuffled_closed", "k", "Var(theta)"),
        ("prior_mse_clustered_closed", "r", "E_k Var(theta | k), idealised"),
    ):
        ax.hlines(
            [ref.get((d, key), np.nan) for d, _ in t.index], x - 0.45, x + 0.45, colors=colour, label=label
        )
    ax.set_xticks(x, [f"{e}\n{d}" for d, e in t.index], fontsize=7)
    ax.set(ylabel="mean (mu_glob - theta)^2", title="Prior error (Prop. 3.8)")
    ax.legend(fontsize=7)
    return _save(fig, out, "prior_error")


# ---------------------------------------------------------------- report
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


def build_lab_report(exp_dir: Path, out: Path) -> Path:
    """Write ``out/<name>/report.md``, ``figures/`` (PNG + SVG) and ``tables/`` (CSV) for one lab folder.

    Returns the report.md path; raises FileNotFoundError when ``exp_dir`` holds no lab.json of kind simulation.
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
