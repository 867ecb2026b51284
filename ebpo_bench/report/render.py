"""Rendering of report tables: GitHub markdown, a long-form frame for the CSV, and a LaTeX tabular.

Reproduced cells show the mean with the seed CI and the number of seeds, reported (paper) cells the
printed value with marks for third-party, inferred or computed numbers, and paired differences the
difference in percentage points with its CI and p-value. The best value per column is bold,
separately among reproduced and reported rows and per G (``_best``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ebpo_bench.report.tables import DIFFERENCE, REPORTED, REPRODUCED, Row, Table

FLAG_MARKS = {"third-party": "†", "inferred": "‡", "computed": "§", "table1": "¶"}
FLAG_NOTES = {
    "third-party": "third-party reading of the paper",
    "inferred": "inferred in ebpo-paper.md, not printed",
    "computed": "average computed from the row",
    "table1": "from Table 1 (G = 4)",
}


def _fmt(row: Row, col: str, bold: bool) -> str:
    e = row.cells.get(col)
    if e is None or not np.isfinite(e.mean):
        return ""
    if row.source == REPORTED:
        marks = "".join(FLAG_MARKS.get(f.strip(), "") for f in row.flags.get(col, "").split(","))
        num = f"{e.mean:.2f}"
        return (f"**{num}**" if bold else num) + marks
    if row.source == DIFFERENCE:
        p = "p<0.001" if e.p < 0.001 else f"p={e.p:.3f}"
        return f"{e.mean:+.1f} [{e.lo:+.1f}, {e.hi:+.1f}] {p}"
    num = f"**{e.mean:.1f}**" if bold else f"{e.mean:.1f}"
    return f"{num} (n=1)" if e.n == 1 else f"{num} [{e.lo:.1f}, {e.hi:.1f}] n={e.n}"


def _best(t: Table) -> set[tuple[int, str]]:
    """(row index, column) of the best value per column, as the paper bolds.

    Separately among reproduced and reported rows, and per group size when the table has a G column
    (the paper's Table 2 compares methods at one G). No bold when the best value is 0 or when every
    value ties: nothing stands out.
    """
    out = set()
    for source, digits in ((REPRODUCED, 1), (REPORTED, 2)):
        for c in t.columns:
            groups: dict[str, dict[int, float]] = {}
            for i, r in enumerate(t.rows):
                if r.source == source and c in r.cells and np.isfinite(r.cells[c].mean):
                    key = r.lead.get("G", "") if "G" in t.lead else ""
                    groups.setdefault(key, {})[i] = round(r.cells[c].mean, digits)
            for vals in groups.values():
                top = max(vals.values(), default=0.0)
                if len(vals) > 1 and top != 0 and len(set(vals.values())) > 1:
                    out |= {(i, c) for i, v in vals.items() if v == top}
    return out


def to_markdown(t: Table) -> str:
    """The table as GitHub markdown, best value per column in bold (not for differences)."""
    best = _best(t) if t.key != "comparison" else set()
    head = ["Method"] + t.lead + ["Source"] + [t.headers.get(c, c) for c in t.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, r in enumerate(t.rows):
        cells = [r.label] + [r.lead.get(n, "") for n in t.lead] + [r.source]
        cells += [_fmt(r, c, (i, c) in best) for c in t.columns]
        lines.append("| " + " | ".join(cells) + " |")
    used = sorted({f.strip() for r in t.rows for v in r.flags.values() for f in v.split(",") if f.strip()})
    legend = [f"{FLAG_MARKS[f]} {FLAG_NOTES[f]}" for f in used if f in FLAG_MARKS]
    notes = t.notes + (["Reported-cell marks: " + "; ".join(legend) + "."] if legend else [])
    return "\n".join(lines + ([""] + notes if notes else []))


def to_frame(t: Table) -> pd.DataFrame:
    """Long form for the CSV: one line per (row, column) with mean, CI, n seeds, p-value and flag."""
    out = []
    for r in t.rows:
        for c in t.columns:
            e = r.cells.get(c)
            if e is None or not np.isfinite(e.mean):
                continue
            out.append(
                {
                    "table": t.key,
                    "row": r.label,
                    "source": r.source,
                    **{n: r.lead.get(n, "") for n in t.lead},
                    "column": t.headers.get(c, c),
                    "mean": e.mean,
                    "ci_low": e.lo,
                    "ci_high": e.hi,
                    "n_seeds": e.n,
                    "n_problems": e.n_problems or None,
                    "p_value": e.p,
                    "flag": r.flags.get(c, ""),
                }
            )
    return pd.DataFrame(out)


def to_latex(t: Table) -> str:
    """A booktabs tabular of the same cells (bold via \\textbf)."""
    best = _best(t) if t.key != "comparison" else set()

    def tex(s: str) -> str:
        s = re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", s)
        for a, b in (("%", r"\%"), ("&", r"\&"), ("_", r"\_"), ("#", r"\#"), ("<", r"$<$")):
            s = s.replace(a, b)
        return s

    head = ["Method"] + t.lead + ["Source"] + [t.headers.get(c, c) for c in t.columns]
    lines = [
        r"\begin{tabular}{" + "l" * (len(t.lead) + 2) + "r" * len(t.columns) + "}",
        r"\toprule",
        " & ".join(map(tex, head)) + r" \\",
        r"\midrule",
    ]
    for i, r in enumerate(t.rows):
        cells = [r.label] + [r.lead.get(n, "") for n in t.lead] + [r.source]
        cells += [_fmt(r, c, (i, c) in best) for c in t.columns]
        lines.append(" & ".join(map(tex, cells)) + r" \\")
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", ""])
