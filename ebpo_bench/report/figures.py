"""Report figures (matplotlib, Agg backend), each saved as PNG and SVG under stable file names.

- ``training_curves``: one row per training metric, one column per group size when G is a grid axis,
  one colour per arm (the same in every panel); mean over seeds with a min-max seed band (with 2-3
  seeds a standard-deviation band would be a guess), smoothed by a centred rolling mean whose window
  the title states. Panels zero everywhere by construction (KL with kl_coef 0) or identical to an
  earlier one (accuracy = reward under 0/1 rewards) are left out; identical arm curves are drawn once
  and named together.
- ``final_pass1``: Pass@1 per benchmark and arm with the 95% bootstrap CI over seeds, and a note naming
  the arms without a CI (1 seed); at tiny scale only the signal columns.
- ``pass1_vs_group_size``: Table 2 as a plot (Avg Pass@1 against G), reported values dashed.
- ``pass_at_k``: unbiased pass@k against k at the final step, mean over seeds, per benchmark; benchmarks
  at 0 for every k (tiny scale) are left out.

Arms are named as in the spec (the variant labels of the tables), with one colour per arm.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports render headless, never open a window
matplotlib.rcParams["svg.hashsalt"] = "ebpo-bench"  # stable element ids: same results, same SVG

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from ebpo_bench.report.load import ExperimentData  # noqa: E402
from ebpo_bench.report.stats import pass_at_k  # noqa: E402
from ebpo_bench.report.tables import Analysis, bench_display, norm  # noqa: E402

# metric key -> (panel title, y-axis label with unit)
CURVES = {
    "train/reward_mean": ("Reward", "mean reward per response"),
    "train/accuracy": ("Training accuracy", "fraction of responses correct"),
    "train/entropy": ("Policy entropy", "nats per token"),
    "train/grad_norm": ("Gradient norm", "L2 norm"),
    "loss/kl": ("KL to reference policy", "nats per token"),
    "loss/approx_kl_old": ("KL between consecutive policies", "nats per token"),
    "train/response_length": ("Response length", "tokens"),
    "groups/all_fail_frac": ("All-fail groups", "fraction of groups"),
    "groups/all_success_frac": ("All-success groups", "fraction of groups"),
    "adv/zero_frac": ("Zero-advantage responses", "fraction of responses"),
    "ebpo/shrinkage": ("EBPO shrinkage S", "S (0 = group mean, 1 = prior)"),
    "ebpo/mu_glob": ("EBPO prior mean \u03bc_glob", "reward"),
}
FIG_NAMES = ("training_curves", "final_pass1", "pass1_vs_group_size", "pass_at_k")


def colours(variants: list[str]) -> dict[str, tuple]:
    """One fixed colour per arm, in table order, shared by every figure."""
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    return {v: cmap(i % cmap.N) for i, v in enumerate(variants)}


def _save(fig: plt.Figure, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.png", out / f"{name}.svg"]
    fig.savefig(paths[0], dpi=110, bbox_inches="tight")
    # no date: the SVG of the same results is the same file
    fig.savefig(paths[1], bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return paths


def _grid(n: int, ncols: int = 3, size: tuple[float, float] = (4.6, 3.0)) -> tuple[plt.Figure, np.ndarray]:
    nrows = max(1, -(-n // ncols))
    ncols = min(ncols, max(n, 1))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows + 0.6), squeeze=False, layout="constrained"
    )
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def _panel_keys(m: pd.DataFrame) -> list[str]:
    """Metrics worth a panel: not zero everywhere by construction (KL with kl_coef 0) and not a copy
    of an earlier panel (training accuracy equals the reward under 0/1 rewards)."""
    keys, seen = [], []
    for k in (k for k in CURVES if k in set(m["metric"])):
        w = m[m["metric"] == k].set_index(["run_id", "step"])["value"].sort_index()
        if not np.any(np.abs(w.to_numpy()) > 1e-12):
            continue
        if any(len(w) == len(o) and w.index.equals(o.index) and np.allclose(w, o) for o in seen):
            continue
        keys.append(k)
        seen.append(w)
    return keys


def training_curves(
    data: ExperimentData, order: list[str], out: Path, smooth: int | None = None
) -> list[Path]:
    """Training metrics against step: one row per metric, one column per group size (when G is a grid
    axis), one colour per arm; mean over seeds with a min-max seed band. Arms whose curves coincide
    are drawn once with a joint label. ``smooth``: rolling-mean window (default: steps / 25)."""
    m = data.metrics
    keys = _panel_keys(m)
    if not keys:
        return []
    m = m[m["metric"].isin(keys)].copy()
    by_g = "rollout.group_size" in data.axes
    m["G"] = pd.to_numeric(m["group_size"], errors="coerce").fillna(0).astype(int) if by_g else 0
    gs = sorted(set(m["G"]))
    known = data.runs.drop_duplicates("variant").set_index("variant")["arm"] if len(data.runs) else {}
    arm_order = list(dict.fromkeys(known[v] for v in order if v in known))
    arms = arm_order + sorted(set(m["arm"]) - set(arm_order))
    col = colours(arms)
    steps = int(m["step"].max()) if len(m) else 1
    window = smooth if smooth is not None else max(1, steps // 25)
    fig, axes = plt.subplots(
        len(keys),
        len(gs),
        figsize=(4.2 * len(gs) + 0.8, 2.7 * len(keys) + 0.8),
        squeeze=False,
        layout="constrained",
        sharex=True,
    )
    wide = m.pivot_table(index=["metric", "G", "arm", "step"], columns="seed", values="value", aggfunc="mean")
    present = set(wide.index.droplevel("step"))
    for r, key in enumerate(keys):
        title, unit = CURVES[key]
        for c, g in enumerate(gs):
            ax = axes[r, c]
            drawn: list[tuple[np.ndarray, list[str]]] = []
            for arm in arms:
                idx = (key, g, arm)
                if idx not in present:
                    continue
                w = (
                    wide.loc[idx]
                    .dropna(how="all")
                    .sort_index()
                    .rolling(window, center=True, min_periods=1)
                    .mean()
                )
                mean = w.mean(axis=1)
                same = next((d for d in drawn if len(d[0]) == len(mean) and np.allclose(d[0], mean)), None)
                if same is not None:  # identical curve: one line, joint label
                    same[1].append(arm)
                    continue
                drawn.append((mean.to_numpy(), [arm]))
                ax.plot(w.index, mean, color=col[arm], lw=1.5)
                ax.fill_between(w.index, w.min(axis=1), w.max(axis=1), color=col[arm], alpha=0.15, lw=0)
            merged = [names for _, names in drawn if len(names) > 1]
            for i, names in enumerate(merged):  # identical curves, named once in the first arm's colour
                ax.annotate(
                    " = ".join(names) + " (identical)",
                    (0.02, 0.04 + 0.09 * i),
                    xycoords="axes fraction",
                    fontsize=8,
                    color=col[names[0]],
                )
            ax.set_title(title + (f", G={g}" if by_g else ""), fontsize=10)
            if c == 0:
                ax.set_ylabel(unit, fontsize=9)
            if r == len(keys) - 1:
                ax.set_xlabel("training step")
            ax.grid(alpha=0.3)
    seeds = m.groupby("arm")["seed"].nunique()
    proxies = [Line2D([], [], color=col[a], lw=2, label=f"{a} (seeds={seeds[a]})") for a in arms]
    fig.legend(handles=proxies, loc="outside lower center", ncol=min(len(proxies), 5), title="arm")
    sm = f"rolling mean over {window} steps; " if window > 1 else ""
    fig.suptitle(f"{data.name}: training curves ({sm}line = mean over seeds, band = seed min-max)")
    return _save(fig, out, "training_curves")


def arm_styles(a: Analysis) -> tuple[dict[str, tuple], dict[str, str]]:
    """Per variant: the colour of its arm (the same as in the training curves) and a marker per G."""
    arm_of = a.variants.set_index("variant")["arm"].to_dict()
    arm_col = colours(list(dict.fromkeys(arm_of.get(v, v) for v in a.cells)))
    by_g = a.layout in ("table2", "by_group_size")
    gv = a.variants.set_index("variant")["group_size"].astype(str).to_dict() if by_g else {}
    mark = {g: "osD^v<>p*h"[i % 10] for i, g in enumerate(sorted(set(gv.values()), key=_num))}
    return {v: arm_col[arm_of.get(v, v)] for v in a.cells}, {v: mark.get(gv.get(v), "o") for v in a.cells}


def _num(s: str) -> float:
    try:
        return float(s)
    except ValueError:
        return float("inf")


def final_pass1(a: Analysis, title: str, out: Path) -> list[Path]:
    """Pass@1 (%) per benchmark (and Avg) for every arm, with 95% bootstrap CIs over seeds."""
    shown = (a.avg_over if a.signal_levels else a.columns) + ["avg"]  # no columns without signal
    cols = [c for c in shown if any(np.isfinite(a.cells[v][c].mean) for v in a.cells)]
    variants = list(a.cells)
    if not cols or not variants:
        return []
    col, mark = arm_styles(a)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(cols) + 2), 4.2))
    width = 0.8 / len(variants)
    for i, v in enumerate(variants):
        x = np.arange(len(cols)) + (i - (len(variants) - 1) / 2) * width
        est = [a.cells[v][c] for c in cols]
        mean = np.array([e.mean for e in est])
        err = np.array(
            [[e.mean - e.lo, e.hi - e.mean] if np.isfinite(e.lo) else [np.nan, np.nan] for e in est]
        ).T
        n = max((e.n for e in est), default=0)
        ax.errorbar(
            x,
            mean,
            yerr=np.nan_to_num(err),
            fmt=mark[v],
            color=col[v],
            capsize=3,
            label=f"{v} (seeds={n})",
        )
    ax.set_xticks(np.arange(len(cols)), [a.avg_header if c == "avg" else bench_display(c) for c in cols])
    ax.set_ylabel("Pass@1 (%, avg@n over problems)")
    one = [v for v in variants if min(a.cells[v][c].n for c in cols) < 2]
    who = "any arm" if len(one) == len(variants) else ", ".join(one)
    ax.set_xlabel(
        "benchmark" + (f"\nno CI for {who}: 1 seed (a CI over seeds needs at least 2)" if one else "")
    )
    ax.set_title(f"{title}: final Pass@1, mean over seeds with 95% bootstrap CI where seeds >= 2")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        fontsize=8, title="arm (seeds)", title_fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5)
    )
    fig.tight_layout()
    return _save(fig, out, "final_pass1")


def pass1_vs_group_size(a: Analysis, title: str, out: Path) -> list[Path]:
    """Avg Pass@1 against G per arm (CI error bars); the paper's reported averages as dashed lines."""
    v = a.variants.dropna(subset=["group_size"])
    if v["group_size"].nunique() < 2:
        return []
    arms = list(dict.fromkeys(v["arm"]))
    col = colours(arms)
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    for arm in arms:
        sub = v[v["arm"] == arm].sort_values("group_size")
        est = [a.cells[name]["avg"] for name in sub["variant"]]
        g = sub["group_size"].astype(float).to_numpy()
        mean = np.array([e.mean for e in est])
        err = np.array([[e.mean - e.lo, e.hi - e.mean] for e in est]).T
        ax.errorbar(
            g, mean, yerr=np.nan_to_num(err), fmt="-o", color=col[arm], capsize=3, label=f"{arm} (reproduced)"
        )
    for method in dict.fromkeys(r["method"] for r in a.paper if "avg" in r["values"]):
        rows = [r for r in a.paper if r["method"] == method and "avg" in r["values"]]
        pts = sorted((r["G"], r["values"]["avg"]) for r in rows)
        c = next((col[arm] for arm in arms if norm(arm) in map(norm, rows[0].get("aliases", []))), "0.4")
        ax.plot(*zip(*pts), "--s", mfc="none", color=c, lw=1, label=f"{method} (reported, paper)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(
        sorted(set(v["group_size"].astype(int))), [str(x) for x in sorted(set(v["group_size"].astype(int)))]
    )
    ax.set_xlabel("group size G (responses per prompt)")
    ax.set_ylabel("Avg Pass@1 (%)")
    ax.set_title(f"{title}: Pass@1 vs group size (95% CI over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return _save(fig, out, "pass1_vs_group_size")


def pass_at_k_frame(fs: pd.DataFrame) -> pd.DataFrame:
    """pass@k (%) per (variant, benchmark, k), mean over problems then seeds, for k = 1, 2, 4, ... <= n."""
    if fs.empty:
        return pd.DataFrame(columns=["variant", "benchmark", "k", "pass"])
    n_min = int(fs["n"].min())
    ks = [2**i for i in range(int(np.log2(max(n_min, 1))) + 1)]
    parts = []
    for k in ks:
        part = fs[["variant", "seed", "benchmark"]].copy()
        part["k"] = k
        part["pass"] = 100 * pass_at_k(fs["n"].to_numpy(), fs["correct"].to_numpy(), k)
        parts.append(part)
    df = pd.concat(parts, ignore_index=True)
    per_seed = df.groupby(["variant", "benchmark", "k", "seed"])["pass"].mean()
    return per_seed.groupby(["variant", "benchmark", "k"]).mean().reset_index()


def pass_at_k_curves(a: Analysis, title: str, out: Path) -> list[Path]:
    """pass@k against k (log2 axis), one panel per benchmark, one line per arm."""
    pk = pass_at_k_frame(a.scores)
    if pk.empty or pk["k"].nunique() < 2:
        return []
    nonzero = set(pk.loc[pk["pass"] > 0, "benchmark"])  # an all-zero panel is empty (tiny scale)
    benches = [b for b in a.columns if b in nonzero]
    if not benches:
        return []
    variants = list(a.cells)
    col, style = arm_styles(a)
    fig, axes = _grid(len(benches), ncols=min(3, len(benches)), size=(4.2, 3.2))
    for ax, b in zip(axes, benches):
        for v in variants:
            sub = pk[(pk["variant"] == v) & (pk["benchmark"] == b)]
            ax.plot(sub["k"], sub["pass"], style[v] + "-", ms=4, color=col[v])
        ax.set_xscale("log", base=2)
        ks = sorted(pk["k"].unique())
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.set_title(bench_display(b))
        ax.set_xlabel("k (samples per problem)")
        ax.set_ylabel("pass@k (%)")
        ax.grid(alpha=0.3)
    proxies = [Line2D([], [], color=col[v], marker=style[v], ms=4, label=v) for v in variants]
    fig.legend(handles=proxies, loc="outside lower center", ncol=min(len(proxies), 6), title="arm")
    fig.suptitle(f"{title}: pass@k at the final step (unbiased estimator, mean over seeds)")
    return _save(fig, out, "pass_at_k")


def make_figures(data: ExperimentData, a: Analysis, out: Path) -> dict[str, list[Path]]:
    """Every figure that has data to show; name -> [png, svg]."""
    order = list(a.variants["variant"])
    figs = {
        "training_curves": training_curves(
            data, order, out, smooth=(data.spec.get("report") or {}).get("smooth")
        ),
        "final_pass1": final_pass1(a, data.name, out),
        "pass1_vs_group_size": pass1_vs_group_size(a, data.name, out)
        if a.layout in ("table2", "by_group_size")
        else [],
        "pass_at_k": pass_at_k_curves(a, data.name, out),
    }
    return {k: v for k, v in figs.items() if v}
