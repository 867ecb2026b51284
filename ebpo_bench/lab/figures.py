"""Figures of an estimator-lab report (PNG + SVG, headless matplotlib), torch-free.

MSE and zero-signal share against G, the failure penalty against mu_glob, learning curves and the
prior error. Seed bands in learning curves span the 10th-90th percentile of the seeds; one colour per
estimator is shared by every figure. Estimators whose curves coincide (the group-mean family, EBPO
prior variants) are drawn once, labelled with every name; panels where every value is 0 are left
out; raw (unnormalised) advantages get their own panels, away from the z-scored ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ebpo_bench.lab.frames import Lab, summarise

REF_LINES = {
    "group_mean_mse_closed": ("group mean, closed form sigma_w^2/G", "--", "k"),
    "oracle_eb_mse_closed": ("oracle shrinkage (1-S*) sigma_w^2/G", ":", "k"),
    "ebpo_plugin_mse_closed": ("EBPO plug-in S, large P", "-.", "0.4"),
}


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


def merged(curves: dict[str, np.ndarray]) -> list[list[str]]:
    """Groups of estimators whose curves (same length) are equal to 1e-9 relative: drawn as one line."""
    groups: list[list[str]] = []
    for e, y in curves.items():
        y = np.asarray(y, dtype=float)
        g = next((g for g in groups if _equal(curves[g[0]], y)), None)
        if g is None:
            groups.append([e])
        else:
            g.append(e)
    return groups


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    a = np.asarray(a, dtype=float)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True))


def _label(names: list[str]) -> str:
    more = f" (+{len(names) - 4})" if len(names) > 4 else ""
    return " = ".join(names[:4]) + more


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
    """One panel per (distribution, order) with a non-zero value: the metric against G per estimator
    (mean over seeds, se bars); identical curves drawn once."""
    m = lab.metric(metric)
    cells = [
        (d, o)
        for d, o in lab.cells()
        if refs or (m.query("distribution == @d and order == @o").value.abs() > 1e-12).any()
    ]
    if not cells:
        return []
    fig, axes, col = _panels(lab, len(cells))
    for ax, (d, o) in zip(axes, cells):
        s = summarise(m.query("distribution == @d and order == @o"), ["estimator", "G"])
        by = dict(list(s.groupby("estimator", sort=False)))
        for names in merged({e: g["mean"].to_numpy() for e, g in by.items()}):
            g, c = by[names[0]], col.get(names[0])
            ax.errorbar(
                g.G, g["mean"], yerr=g.se, marker="o", ms=3, lw=1.2, color=c, label=_label(names), capsize=2
            )
        if refs:
            r = lab.ref.query("distribution == @d and order == @o").groupby(["metric", "G"]).value.mean()
            for key, (label, style, grey) in REF_LINES.items():
                if key in r.index.get_level_values(0):
                    ax.plot(r[key].index, r[key].values, style, color=grey, lw=1, label=label)
            ax.set_yscale("log")
        ax.set_xscale("log", base=2)
        ax.set(title=f"{d} / {o}", xlabel="group size G", ylabel=ylabel)
        ax.legend(fontsize=6, loc="best")
    return _save(fig, out, "mse_vs_group_size" if refs else "zero_signal_vs_group_size")


def fig_penalty(lab: Lab, out: Path) -> list[Path]:
    """All-fail and all-success advantages against the batch's mean reward (Cor. 3.5 and its mirror);
    z-scored and raw (``adv_norm: none``) estimators in separate rows, the Thm 3.2 prediction only for
    the raw ones (it is a raw advantage)."""
    t = (
        lab.penalty.groupby(["estimator", "target_mean", "metric"])
        .value.mean()
        .unstack("metric")
        .reset_index()
    )
    opts = lab.record.get("estimators", {})
    raw = [e for e in lab.estimators if opts.get(e, {}).get("options", {}).get("adv_norm") == "none"]
    rows = [("z-scored", [e for e in lab.estimators if e not in raw])]
    rows += [("raw; dotted: -S (mu_glob - r_fail)", raw)] if set(raw) & set(t.estimator) else []
    fig, axes, col = _panels(lab, 2 * len(rows), 2)
    panels = (("fail_adv", "all-fail groups"), ("success_adv", "all-success groups"))
    for r, (kind, names) in enumerate(rows):
        sub = dict(list(t[t.estimator.isin(names)].groupby("estimator", sort=False)))
        for c, (key, title) in enumerate(panels):
            ax = axes[2 * r + c]
            for group in merged({e: g[key].to_numpy() for e, g in sub.items()}):
                g, colour = sub[group[0]], col.get(group[0])
                ax.plot(
                    g.batch_mean_reward, g[key], marker="o", ms=3, lw=1.2, color=colour, label=_label(group)
                )
                if key == "fail_adv" and group[0] in raw and g.get("fail_adv_pred") is not None:
                    ax.plot(g.batch_mean_reward, g.fail_adv_pred, ":", color=colour, lw=1.5)
            ax.axhline(0, color="0.5", lw=0.6)
            ax.set(xlabel="mean reward of the batch (mu_glob)", ylabel="advantage")
            ax.set_title(f"Mean advantage of {title} ({kind})", fontsize=9)
            ax.legend(fontsize=6, loc="best")
    return _save(fig, out, "failure_penalty")


def fig_learning(lab: Lab, col_name: str, out: Path) -> list[Path]:
    """Per G: mean over seeds with a 10-90% seed band for the estimators Prop. 3.6 compares (grpo, the
    grpo_bn control, EBPO z-scored and raw); every other estimator as a thin grey line without band;
    identical curves drawn once."""
    opts = lab.record.get("estimators", {})
    raw = [e for e in lab.of_type("ebpo") if opts.get(e, {}).get("options", {}).get("adv_norm") == "none"]
    eb = [e for e in lab.of_type("ebpo") if e not in raw][:1]
    focus = {e for e in (lab.reference("grpo"), lab.reference("grpo_bn"), *eb, *raw) if e}
    gs = sorted(lab.learning.G.unique())
    fig, axes, col = _panels(lab, len(gs))
    for ax, g in zip(axes, gs):
        by = dict(list(lab.learning[lab.learning.G.eq(g)].groupby("estimator", sort=False)))
        means = {e: d.groupby("step")[col_name].mean() for e, d in by.items()}
        grey = True
        for names in merged({e: m.to_numpy() for e, m in means.items()}):
            shown = [n for n in names if n in focus]
            e = (shown or names)[0]
            if not shown:  # context only
                ax.plot(
                    means[e].index, means[e], color="0.72", lw=0.8, label="other estimators" if grey else None
                )
                grey = False
                continue
            q = by[e].groupby("step")[col_name].quantile([0.1, 0.9]).unstack()
            ax.plot(means[e].index, means[e], color=col.get(e), lw=1.6, zorder=3, label=_label(names))
            ax.fill_between(q.index, q[0.1], q[0.9], color=col.get(e), alpha=0.12, lw=0)
        ax.set(
            title=f"G = {g}",
            xlabel="step",
            ylabel="success rate" if col_name == "success" else "entropy (nats)",
        )
        ax.legend(fontsize=6, loc="best")
    return _save(fig, out, f"learning_{col_name}")


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
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: never over the bars
    return _save(fig, out, "prior_error")
