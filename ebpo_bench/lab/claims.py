"""The computed claims section of an estimator-lab report, torch-free.

Every EBPO-type estimator (spec type ``ebpo``) is checked in every simulated setting, and each setting
where the numbers go against a claim is listed, as are the places where EBPO is known not to help
(positive advantage for all-success groups, small gains at large G). Each claim is a dict with the
claim, a verdict and the evidence lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ebpo_bench.lab.frames import Lab


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
        f"lower than the group mean in {len(c) - len(bad)} of {len(c)} settings "
        "(estimator x distribution x order x G); mean relative reduction by G: "
        + ", ".join(f"G={g}: {v:.0%}" for g, v in by_g.items())
    ]
    ev += [
        f"NOT lower: {r.estimator} on {r.distribution}/{r.order}, G={r.G}: "
        f"{r.mse:.4g} vs {r.group_mean_mse:.4g}"
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


def _versus(curves: pd.DataFrame, e: str, ref: str) -> tuple[int, int, str]:
    """Entropy of ``e`` vs ``ref`` per G: final, and at the success both reach (interpolated on the
    mean curves).

    A G counts for ``e`` only if both are higher, so slower learning alone never reads as slower
    entropy decay.
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
            + ". When the control moves like EBPO, the batch-level normalisation, not the shrinkage, "
            "drives it"
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
