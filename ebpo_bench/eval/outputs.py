"""What an evaluation leaves behind: ``eval.jsonl``, ``eval_summary.json`` and the printed table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def write_outputs(rows: list[dict], out: Path, *, lm_metrics: dict | None = None, **meta: Any) -> dict:
    """Write ``eval.jsonl`` (replaced) and ``eval_summary.json``; return the summary."""
    from ebpo_bench.eval.metrics import summarize
    from ebpo_bench.results import atomic_write_json, atomic_write_text

    out = Path(out)
    atomic_write_text(out / "eval.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    graders = sorted({str(r.get("grader", "math_verify")) for r in rows}) or [
        meta.get("settings", {}).get("grader")
    ]
    summary = {
        **meta,
        "grader": ",".join(g for g in graders if g),
        "out": str(out),
        "benchmarks": summarize(rows),
    }
    if lm_metrics is not None:
        summary["lm_eval"] = lm_metrics
    atomic_write_json(out / "eval_summary.json", summary)
    return summary


def format_table(summary: dict) -> str:
    """A plain-text table: avg@n ± standard error, pass@n, maj@n per benchmark (and lm-eval's metrics)."""
    lm = summary.get("lm_eval") or {}
    head = f"{'benchmark':<14} {'problems':>8} {'n':>3} {'avg@n':>7} {'± se':>6} {'pass@n':>7} {'maj@n':>7}"
    head += f" {'lm-eval mv':>10} {'lm-eval em':>10}" if lm else ""
    lines = [head, "-" * len(head)]
    for bench, m in summary["benchmarks"].items():
        k = m["n"]
        line = (
            f"{bench:<14} {m['problems']:>8} {k:>3} {m[f'avg@{k}']:>7.3f} {m['stderr']:>6.3f} "
            f"{m[f'pass@{k}']:>7.3f} {m[f'maj@{k}']:>7.3f}"
        )
        if lm:
            mv, em = lm.get(bench, {}).get("math_verify"), lm.get(bench, {}).get("exact_match")
            line += f" {_fmt(mv):>10} {_fmt(em):>10}"
        lines.append(line)
    grader = summary.get("grader") or "math_verify"
    note = " (the authors' exact rule)" if grader == "paper_exact" else ""
    lines.append(
        f"({summary.get('harness', 'native')} harness; graded by {grader}{note}; "
        f"rows in {summary['out']}/eval.jsonl)"
    )
    return "\n".join(lines)


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"
