"""Summaries of benchmark rows and the markdown table with the performance targets (torch-free).

Per trainer, over the measured steps of every repeat (warm-up steps dropped per repeat): the step
time's median and interquartile range, each phase's median and its share of the summed wall time,
generated tokens per second of generation time and of wall time, and the peak RSS (the largest
over repeats). Targets (docs/performance.md): TRL / ours ≥ 1.5 on the median step; overhead ≤ 10 %
of our step; every estimator at P = 512, G = 32 ≤ 1 % of our median step; our peak RSS ≤ TRL's.
"""

from __future__ import annotations

from statistics import median
from typing import Any

from ebpo_bench.perf.probe import PHASES

TRAINERS = ("ours", "trl", "floor")
FIELDS = ("wall",) + PHASES + ("overhead",)


def quantile(xs: list[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty list."""
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarise_rows(runs: list[dict], warmup: int) -> dict[str, Any]:
    rows = [r for run in runs for r in run["rows"][warmup:]]
    if not rows:
        raise ValueError("no measured steps: increase --steps")
    total = {f: sum(r[f] for r in rows) for f in FIELDS + ("tokens",)}
    wall = [r["wall"] for r in rows]
    out = {
        "steps": len(rows),
        "step_s": {
            "median": median(wall),
            "p25": quantile(wall, 0.25),
            "p75": quantile(wall, 0.75),
            "min": min(wall),
            "max": max(wall),
        },
        "phases": {
            f: {"median_s": median(r[f] for r in rows), "share": total[f] / total["wall"]} for f in FIELDS[1:]
        },
        "tokens_per_s_generation": total["tokens"] / max(total["generation"], 1e-12),
        "tokens_per_s_step": total["tokens"] / total["wall"],
        "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
        "threads": runs[0].get("threads"),
        "device": runs[0].get("device"),
    }
    if "peak_cuda_mb" in runs[0]:
        out["peak_cuda_mb"] = max(run["peak_cuda_mb"] for run in runs)
    return out


def summarise(raw: dict[str, list[dict]], warmup: int) -> dict[str, Any]:
    out: dict[str, Any] = {k: summarise_rows(raw[k], warmup) for k in TRAINERS if k in raw}
    if (
        "ours" in raw and "trl" in raw
    ):  # the i-th TRL repeat against the i-th of ours: the drift between repeats
        out["speedup_per_repeat"] = [
            median(r["wall"] for r in t["rows"][warmup:]) / median(r["wall"] for r in o["rows"][warmup:])
            for o, t in zip(raw["ours"], raw["trl"])
        ]
    if "estimators" in raw:
        out["estimators"] = raw["estimators"][0]["estimators"]
    out["targets"] = targets(out)
    return out


def targets(s: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: what it asks, the measured value, met or not (None when not measured)."""
    ours, trl = s.get("ours"), s.get("trl")
    rows = []
    if ours and trl:
        speed = trl["step_s"]["median"] / ours["step_s"]["median"]
        each = s.get("speedup_per_repeat", [])
        spread = f" (per repeat: {', '.join(f'{x:.2f}' for x in each)})" if len(each) > 1 else ""
        rows.append(
            {"target": "TRL step / our step ≥ 1.5", "value": f"{speed:.2f}×{spread}", "met": speed >= 1.5}
        )
        rss = (ours["peak_rss_mb"], trl["peak_rss_mb"])
        rows.append(
            {
                "target": "our peak RSS ≤ TRL's",
                "value": f"{rss[0]:.0f} vs {rss[1]:.0f} MB",
                "met": rss[0] <= rss[1],
            }
        )
    if ours:
        share = ours["phases"]["overhead"]["share"]
        rows.append(
            {"target": "overhead ≤ 10 % of our step", "value": f"{100 * share:.1f} %", "met": share <= 0.10}
        )
    if ours and s.get("estimators"):
        big = [e for e in s["estimators"] if e["G"] == max(x["G"] for x in s["estimators"])]
        worst = max(big, key=lambda e: e["median_s"])
        frac = worst["median_s"] / ours["step_s"]["median"]
        rows.append(
            {
                "target": f"every estimator at P = {worst['P']}, G = {worst['G']} ≤ 1 % of our step",
                "value": f"{100 * frac:.2f} % "
                f"(slowest: {worst['estimator']}, {1e3 * worst['median_s']:.2f} ms)",
                "met": frac <= 0.01,
            }
        )
    return rows


def _ms(x: float) -> str:
    return f"{1e3 * x:.1f}"


def render(result: dict[str, Any]) -> str:
    """The markdown report: configuration, side-by-side table, targets, estimator timings."""
    s, cfg = result["summary"], result["config"]
    cols = [k for k in TRAINERS if k in s]
    head = {"ours": "ebpo-bench", "trl": "TRL GRPOTrainer", "floor": "compute floor"}
    lines = [
        f"# Step-time benchmark: {cfg['spec']} (arm {cfg['arm']}, seed {cfg['seed']})",
        "",
        f"{cfg['warmup']} warm-up + {cfg['steps']} measured steps per trainer; "
        f"created {result['created']}; host {result['provenance'].get('host')}; "
        f"torch {result['provenance'].get('packages', {}).get('torch')}, "
        f"transformers {result['provenance'].get('packages', {}).get('transformers')}, "
        f"trl {result['provenance'].get('packages', {}).get('trl')}; "
        f"torch threads {s[cols[0]]['threads'] if cols else '-'}; "
        f"device {s[cols[0]]['device'] if cols else '-'}.",
        "",
    ]
    if cols:
        lines += [
            "| per RL step (ms) | " + " | ".join(head[c] for c in cols) + " |",
            "|---" * (len(cols) + 1) + "|",
        ]
        st = lambda c: (
            f"{_ms(s[c]['step_s']['median'])} [{_ms(s[c]['step_s']['p25'])}, {_ms(s[c]['step_s']['p75'])}]"
        )  # noqa: E731
        lines.append("| step, median [IQR] | " + " | ".join(st(c) for c in cols) + " |")
        for f in FIELDS[1:]:
            cell = lambda c, f=f: (
                f"{_ms(s[c]['phases'][f]['median_s'])} ({100 * s[c]['phases'][f]['share']:.0f} %)"
            )  # noqa: E731
            lines.append(f"| {f}, median (share) | " + " | ".join(cell(c) for c in cols) + " |")
        lines.append(
            "| tokens/s of generation | "
            + " | ".join(f"{s[c]['tokens_per_s_generation']:.0f}" for c in cols)
            + " |"
        )
        lines.append(
            "| tokens/s of step | " + " | ".join(f"{s[c]['tokens_per_s_step']:.0f}" for c in cols) + " |"
        )
        lines.append("| peak RSS (MB) | " + " | ".join(f"{s[c]['peak_rss_mb']:.0f}" for c in cols) + " |")
        lines.append("")
    if s["targets"]:
        lines += ["| target | measured | met |", "|---|---|---|"]
        lines += [
            f"| {t['target']} | {t['value']} | {'yes' if t['met'] else '**no**'} |" for t in s["targets"]
        ]
        lines.append("")
    if s.get("estimators"):
        gs = sorted({e["G"] for e in s["estimators"]})
        lines += [
            "| estimator (P = 512) | " + " | ".join(f"G = {g} (ms)" for g in gs) + " |",
            "|---" * (len(gs) + 1) + "|",
        ]
        for name in sorted({e["estimator"] for e in s["estimators"]}):
            by_g = {e["G"]: e["median_s"] for e in s["estimators"] if e["estimator"] == name}
            lines.append(f"| {name} | " + " | ".join(f"{1e3 * by_g[g]:.3f}" for g in gs) + " |")
        lines.append("")
    return "\n".join(lines)
