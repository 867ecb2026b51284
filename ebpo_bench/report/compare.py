"""``ebpo-bench report A B ...``: several experiments side by side in one markdown file.

Each experiment keeps its own report (``<out>/<experiment>/report.md``); the comparison file puts
their Avg cells and paired differences in adjacent columns, one column per experiment, with each
experiment's question, reference arm, Avg columns and seeds stated above. Experiments are shown side
by side, never tested against each other: two experiments differ in more than their arms (spec,
benchmarks, scale), and the file says so when their Avg columns differ.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ebpo_bench.report.load import ExperimentData
from ebpo_bench.report.reading import reading
from ebpo_bench.report.stats import Estimate
from ebpo_bench.report.tables import Analysis, bench_display


def _cell(e: Estimate | None, diff: bool = False) -> str:
    if e is None or not np.isfinite(e.mean):
        return ""
    if diff:
        ci = f" [{e.lo:+.1f}, {e.hi:+.1f}]" if np.isfinite(e.lo) else ""
        p = "p<0.001" if e.p < 0.001 else f"p={e.p:.3f}"
        return f"{e.mean:+.1f}{ci} {p} (seeds={e.n})"
    ci = f" [{e.lo:.1f}, {e.hi:.1f}]" if np.isfinite(e.lo) else ""
    return f"{e.mean:.1f}{ci} (seeds={e.n})"


def comparison_markdown(items: list[tuple[ExperimentData, Analysis, Path]], out: Path) -> str:
    """The side-by-side markdown of ``items`` = (data, analysis, report path) per experiment."""
    names = [d.name for d, _, _ in items]
    lines = [f"# Side by side: {', '.join(names)}", ""]
    lines += [
        "| experiment | question | reference | Avg over | seeds per arm | report |",
        "|---|---|---|---|---|---|",
    ]
    for d, a, p in items:
        q = " ".join(str(d.spec.get("description") or "").split()).replace("|", "/")
        over = ", ".join(bench_display(b) for b in a.avg_over) or "none"
        ns = sorted({e.n for c in a.cells.values() for e in c.values() if e.n})
        seeds = "-".join(str(n) for n in (ns[:1] + ns[-1:] if len(ns) > 1 else ns)) or "0"
        link = p.relative_to(out).as_posix() if p.is_relative_to(out) else str(p)
        lines.append(f"| {d.name} | {q} | {a.reference} | {over} | {seeds} | [report]({link}) |")
    overs = {tuple(a.avg_over) for _, a, _ in items}
    lines += [""]
    if len(overs) > 1:
        lines += [
            "Avg averages different benchmarks in these experiments: compare the columns with care.",
            "",
        ]
    lines += [
        "The experiments are shown side by side, not tested against each other (they differ in more "
        "than their arms). Within each column, differences are paired against that experiment's "
        "reference arm.",
        "",
        "## Avg Pass@1 (%) per arm, mean over seeds [95% CI]",
        "",
    ]
    variants = list(dict.fromkeys(v for _, a, _ in items for v in a.cells))
    lines += ["| arm | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for v in variants:
        lines.append(
            f"| {v} | " + " | ".join(_cell(a.cells.get(v, {}).get("avg")) for _, a, _ in items) + " |"
        )
    diffs = list(dict.fromkeys(v for _, a, _ in items for v in a.diffs))
    if diffs:
        lines += ["", "## Paired difference vs the reference arm on Avg (pp)", ""]
        lines += ["| arm | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for v in diffs:
            cells = [_cell(a.diffs.get(v, {}).get("avg"), diff=True) for _, a, _ in items]
            lines.append(f"| {v} | " + " | ".join(cells) + " |")
    for d, a, _ in items:
        lines += ["", f"## Reading: {d.name}", ""] + [
            f"- {s}" for s in reading(a) or ["No comparison possible."]
        ]
    return "\n".join(lines) + "\n"


def write_comparison(items: list[tuple[ExperimentData, Analysis, Path]], out: Path) -> Path:
    """Write ``out/compare_<A>_<B>....md`` and return its path."""
    stem = "_".join(re.sub(r"[^A-Za-z0-9_.-]", "-", d.name) for d, _, _ in items)[:120]
    path = Path(out) / f"compare_{stem}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(comparison_markdown(items, Path(out)))
    return path
