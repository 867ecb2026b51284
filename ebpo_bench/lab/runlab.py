"""``run_lab``: run an estimator-lab spec and write ``<results_root>/<name>/``.

Files written (tidy CSVs: one value per row, ``seed`` = replicate index 0..n-1):

- ``lab.json``: the marker ``ebpo-bench report`` dispatches on (``kind: simulation``), the resolved spec,
  the estimators with their type and options, status, timing and provenance;
- ``estimator_stats.csv``: estimator, G, distribution, order, metric, value, seed (metrics: mse, bias,
  adv_var, zero_frac, corr_label, corr_true_adv, fail_adv, success_adv, and prior_mse, shrinkage,
  fail_adv_pred where the estimator reports a prior);
- ``reference.csv``: G, distribution, order, metric, value, seed (the simulated group-mean baseline on
  the same draws, closed forms, group-regime shares);
- ``penalty.csv``: estimator, G, target_mean, metric, value, seed (the Cor. 3.5 sweep);
- ``learning.csv``: estimator, G, seed, step, success, entropy;
- ``skipped.csv``: part, estimator, G, distribution, order, reason (settings an estimator refused).

Estimators are every name in ``advantages.available()`` (when ``estimators.registered``) plus the spec's
variants, so a newly registered estimator appears without touching the lab.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ebpo_bench.config.load import SpecError, resolved_yaml
from ebpo_bench.lab.spec import BetaDistribution, LabSpec
from ebpo_bench.results import atomic_write_json, atomic_write_text, now, provenance

LAB_FORMAT = 1
STATS_COLS = ["estimator", "G", "distribution", "order", "metric", "value", "seed"]
REF_COLS = ["G", "distribution", "order", "metric", "value", "seed"]
PENALTY_COLS = ["estimator", "G", "target_mean", "metric", "value", "seed"]
LEARN_COLS = ["estimator", "G", "seed", "step", "success", "entropy"]
SKIP_COLS = ["part", "estimator", "G", "distribution", "order", "reason"]


def resolve_estimators(spec: LabSpec) -> dict[str, dict]:
    """Estimator name -> {"type", "options"}: the registry (default options) plus the spec's variants.

    Raises:
        SpecError: a variant name equals a registered estimator's name.
    """
    from ebpo_bench.config.estimators import ESTIMATOR_CONFIGS
    from ebpo_bench.estimators import available

    out = {}
    if spec.estimators.registered:
        for name in available():
            cfg = ESTIMATOR_CONFIGS.get(name)  # unknown to the spec union (e.g. a plugin): class defaults
            opts = cfg().options() if cfg else {}
            if "reward_scale" in opts:  # a tracker of success rates reads rewards on the lab's own scale
                opts["reward_scale"] = spec.reward_scale
            out[name] = {"type": name, "options": opts}
    for name, cfg in spec.estimators.variants.items():
        if name in out:
            raise SpecError(
                f"estimators.variants.{name}: shadows the registered estimator '{name}'; rename it"
            )
        out[name] = {"type": cfg.type, "options": cfg.options()}
    return out


def _factory(entry: dict) -> Callable[[], object]:
    from ebpo_bench.estimators import make

    return lambda: make(entry["type"], **entry["options"])


def _on_scale(p: np.ndarray, dist, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """True expected reward and within-prompt reward variance of pool prompts (S, N)."""
    if dist.type == "gaussian":
        return p, np.full_like(p, dist.sigma**2)
    k = 2.0 if scale == "plus_minus_one" else 1.0
    return (2 * p - 1 if k == 2.0 else p), k * k * p * (1 - p)


def _cell(
    spec: LabSpec,
    ests: dict,
    dist,
    pool: tuple,
    *,
    G: int,
    P: int,
    B: int,
    order: str,
    part: str,
    label: str,
    skipped: list,
) -> tuple[dict[str, dict], dict]:
    """One setting (sweep ``part``, distribution ``label``, order, G): every estimator on the same draws.

    Returns per-estimator metrics and the estimator-free references, each metric an array over seeds.
    """
    from ebpo_bench.lab import simulate as sim

    probs, topic = pool
    rng = sim.rng_for(spec.seed, part, label, order, G)
    idx = sim.batch_indices(topic, P, B, order, rng)
    sigma = dist.sigma if dist.type == "gaussian" else None
    r, value = sim.sample_rewards(probs, idx, G, spec.reward_scale, sigma, rng)
    low, high = (-1.0, 1.0) if spec.reward_scale == "plus_minus_one" else (0.0, 1.0)
    values, within = _on_scale(probs, dist, spec.reward_scale)
    ref = sim.reference_metrics(r, value, values, topic, within, low, high)
    out = {}
    for name, entry in ests.items():
        make_one = _factory(entry)
        try:
            adv, mets = sim.run_estimator(make_one, r, idx)
        except sim.Skipped as e:
            skipped.append((part, name, G, label, order, str(e)))
            continue
        prefix = getattr(make_one(), "name", entry["type"])
        out[name] = sim.aggregate(sim.batch_metrics(r, adv, value, low, high, mets, prefix))
    return out, ref


def _stats(spec: LabSpec, ests: dict, skipped: list, log: Callable[[str], None]) -> tuple[list, list]:
    from ebpo_bench.lab import simulate as sim

    c = spec.stats
    rows, refs = [], []
    for dname, dist in spec.distributions.items():
        pool = sim.draw_pool(dist, c.seeds, c.pool_size, sim.rng_for(spec.seed, "pool", dname))
        for order in c.orders:
            if order == "clustered" and len(np.unique(pool[1])) < 2:
                skipped.append(
                    ("stats", "*", "*", dname, order, "one topic: clustered order = shuffled order")
                )
                continue
            for G in c.group_sizes:
                t0 = time.perf_counter()
                res, ref = _cell(
                    spec,
                    ests,
                    dist,
                    pool,
                    G=G,
                    P=c.prompts_per_batch,
                    B=c.batches,
                    order=order,
                    part="stats",
                    label=dname,
                    skipped=skipped,
                )
                rows += [
                    (e, G, dname, order, m, float(v), s)
                    for e, ms in res.items()
                    for m, a in ms.items()
                    for s, v in enumerate(a)
                ]
                refs += [(G, dname, order, m, float(v), s) for m, a in ref.items() for s, v in enumerate(a)]
                log(f"stats {dname}/{order} G={G}: {len(res)} estimators, {time.perf_counter() - t0:.1f} s")
    return rows, refs


def _penalty(spec: LabSpec, ests: dict, skipped: list, log: Callable[[str], None]) -> list:
    from ebpo_bench.lab import simulate as sim

    c, rows = spec.penalty, []
    t0 = time.perf_counter()
    for m in c.means:
        dist = BetaDistribution(a=m * c.concentration, b=(1 - m) * c.concentration)
        pool = sim.draw_pool(
            dist, c.seeds, c.prompts_per_batch * c.batches, sim.rng_for(spec.seed, "penalty", m)
        )
        res, ref = _cell(
            spec,
            ests,
            dist,
            pool,
            G=c.group_size,
            P=c.prompts_per_batch,
            B=c.batches,
            order="shuffled",
            part="penalty",
            label=f"mean={m:g}",
            skipped=skipped,
        )
        for e, ms in res.items():
            ms = {**ms, "batch_mean_reward": ref["batch_mean_reward"]}
            rows += [(e, c.group_size, m, k, float(v), s) for k, a in ms.items() for s, v in enumerate(a)]
    log(f"penalty: {len(c.means)} means, {time.perf_counter() - t0:.1f} s")
    return rows


def _policy(spec: LabSpec, ests: dict, skipped: list, log: Callable[[str], None]) -> list:
    from ebpo_bench.lab import simulate as sim
    from ebpo_bench.lab.policy import train_policy

    c, rows = spec.policy, []
    dname = spec.policy_distribution()
    p0, topic = sim.draw_pool(
        spec.distributions[dname], c.seeds, c.pool_size, sim.rng_for(spec.seed, "policy", dname)
    )
    for G in c.group_sizes:
        t0 = time.perf_counter()
        for name, entry in ests.items():
            try:
                cur = train_policy(
                    _factory(entry),
                    c,
                    p0,
                    topic,
                    G,
                    spec.reward_scale,
                    sim.rng_for(spec.seed, "policy", dname, G),
                )
            except sim.Skipped as e:
                skipped.append(("policy", name, G, dname, c.order, str(e)))
                continue
            rows += [
                (name, G, s, int(t), float(cur.success[s, j]), float(cur.entropy[s, j]))
                for s in range(cur.success.shape[0])
                for j, t in enumerate(cur.steps)
            ]
        log(f"policy {dname}/{c.order} G={G}: {time.perf_counter() - t0:.1f} s")
    return rows


def run_lab(spec: LabSpec, results_root: Path, *, quiet: bool) -> Path:
    """Run every enabled sweep of ``spec`` and write its results folder.

    Args:
        spec: a validated lab spec (``load_lab_spec``).
        results_root: results root; files go to ``results_root/<spec.name>/``.
        quiet: no per-setting progress lines (the summary table is always printed).

    Returns:
        The experiment folder ``results_root/<spec.name>``.

    Raises:
        SpecError: a variant collides with a registered estimator's name.
    """
    start, t0 = now(), time.perf_counter()
    out = Path(results_root) / spec.name
    ests = resolve_estimators(spec)
    from ebpo_bench.lab.simulate import CLOSED_FORM_NOTE, IMPLIED_NOTE

    out.mkdir(parents=True, exist_ok=True)
    record = {
        "kind": "simulation",
        "format": LAB_FORMAT,
        "name": spec.name,
        "status": "running",
        "started": start,
        "spec": spec.model_dump(mode="json"),
        "estimators": ests,
        "provenance": provenance(),
        "method": [IMPLIED_NOTE, CLOSED_FORM_NOTE],
    }
    atomic_write_json(out / "lab.json", record)
    atomic_write_text(out / "spec.resolved.yaml", resolved_yaml(spec))

    def log(msg: str) -> None:
        if not quiet:
            print(f"[lab] {msg}", flush=True)

    import torch

    skipped: list = []
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # tensors of a few thousand numbers: extra threads only wait (7 min vs 22 s, 2 busy cores)
    try:
        stats, refs = _stats(spec, ests, skipped, log) if spec.stats.enabled else ([], [])
        penalty = _penalty(spec, ests, skipped, log) if spec.penalty.enabled else []
        learning = _policy(spec, ests, skipped, log) if spec.policy.enabled else []
    finally:
        torch.set_num_threads(threads)
    frames = {
        key: pd.DataFrame(rows, columns=cols)
        for key, rows, cols in (
            ("estimator_stats", stats, STATS_COLS),
            ("reference", refs, REF_COLS),
            ("penalty", penalty, PENALTY_COLS),
            ("learning", learning, LEARN_COLS),
            ("skipped", skipped, SKIP_COLS),
        )
    }
    for key, df in frames.items():
        atomic_write_text(out / f"{key}.csv", df.to_csv(index=False))
    wall = time.perf_counter() - t0
    atomic_write_json(
        out / "lab.json",
        {
            **record,
            "status": "completed",
            "finished": now(),
            "wall_s": round(wall, 2),
            "files": [f"{k}.csv" for k in frames],
        },
    )
    print(summary(frames, wall), flush=True)
    return out


def summary(frames: dict[str, pd.DataFrame], wall: float) -> str:
    """A short text table: baseline MSE by G (first distribution and order) and final success by G."""
    lines = [f"estimator lab finished in {wall:.1f} s"]
    st = frames["estimator_stats"]
    if len(st):
        d, o = st["distribution"].iloc[0], st["order"].iloc[0]
        sel = st[(st.metric == "mse") & (st.distribution == d) & (st.order == o)]
        lines += [
            f"\nbaseline MSE vs the true value ({d}, {o}; mean over seeds)",
            sel.pivot_table(index="estimator", columns="G", values="value").to_string(float_format="%.4f"),
        ]
    lr = frames["learning"]
    if len(lr):
        last = lr[lr.step == lr.step.max()]
        lines += [
            "\nfinal success (policy simulation; mean over seeds)",
            last.pivot_table(index="estimator", columns="G", values="success").to_string(float_format="%.3f"),
        ]
    if len(frames["skipped"]):
        lines.append(f"\n{len(frames['skipped'])} settings skipped (see skipped.csv)")
    return "\n".join(lines)
