"""report.md of one experiment and the index of all: question, reading, tables, figures, run status,
method notes and provenance.

The reading is generated from the numbers only: each arm's paired difference against the reference
arm, its CI and whether it is significant at 5%, and an explicit sentence when the paper's claim
(EBPO beats the reference) does not hold in this experiment. It never interprets beyond that.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from ebpo_bench import __version__
from ebpo_bench.report.load import ExperimentData
from ebpo_bench.report.render import to_markdown
from ebpo_bench.report.stats import LEVEL, N_BOOT, RNG_SEED, Estimate
from ebpo_bench.report.tables import REPRODUCED, Analysis, Table, bench_display, norm

ALPHA = 1 - LEVEL


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _pp(e: Estimate) -> str:
    ci = f", 95% CI [{e.lo:+.1f}, {e.hi:+.1f}]" if np.isfinite(e.lo) else ""
    p = _p(e.p)
    verdict = "significant at 5%" if e.significant else "not significant at 5%"
    return f"{e.mean:+.1f} pp{ci}, {p}, {verdict} ({e.n} seeds x {e.n_problems} problems)"


def reading(a: Analysis) -> list[str]:
    """Sentences stating what the paired differences and reported rows support, nothing more."""
    out: list[str] = []
    if a.ref_of:
        out.append("Avg = mean over " + ", ".join(bench_display(b) for b in a.avg_over) + ".")
    for v, ref in a.ref_of.items():
        d, e = a.diffs[v], a.diffs[v]["avg"]
        if not np.isfinite(e.mean):
            out.append(
                f"{v} - {ref}: no seeds and problems matched on every averaged benchmark; no Avg comparison."
            )
            continue
        seeds = ", ".join(f"{x:+.1f}" for x in e.per_seed)
        text = f"{v} - {ref} on Avg: {_pp(e)}; per-seed differences: {seeds} pp"
        tested = [b for b in a.columns if np.isfinite(d[b].mean)]
        sig = [f"{bench_display(b)} ({d[b].mean:+.1f} pp, {_p(d[b].p)})" for b in tested if d[b].significant]
        if len(tested) > 1:
            text += f". Per benchmark, significant at 5% on {len(sig)} of {len(tested)}"
            text += f": {', '.join(sig)}" if sig else ""
        out.append(text + ".")
    out += _claims(a)
    out += _versus_paper(a)
    return out


def _claims(a: Analysis) -> list[str]:
    """Whether 'EBPO beats the reference on average' holds, per EBPO arm (at each grid point)."""
    out = []
    v = a.variants.set_index("variant")
    ebpo = [
        x
        for x in a.ref_of
        if np.isfinite(a.diffs[x]["avg"].mean)
        and (str(v.loc[x, "estimator"]) == "ebpo" or "ebpo" in norm(v.loc[x, "arm"]))
    ]
    for arm in dict.fromkeys(v.loc[ebpo, "arm"]):
        names = [x for x in ebpo if v.loc[x, "arm"] == arm]
        ref = a.reference
        groups: dict[str, list[str]] = {"holds": [], "not supported": [], "reversed": []}
        for x in names:
            e = a.diffs[x]["avg"]
            key = "not supported" if not e.significant else ("holds" if e.mean > 0 else "reversed")
            groups[key].append(v.loc[x, "axes_label"] or x)
        if len(names) == 1:
            key = next(k for k, g in groups.items() if g)
            out.append(
                {
                    "holds": f"The claim that {arm} beats {ref} on average holds here at the 5% level.",
                    "not supported": f"The claim that {arm} beats {ref} is not supported here: the average "
                    "difference is not significant at 5%.",
                    "reversed": f"The claim that {arm} beats {ref} does not hold here: {ref} is "
                    "significantly better on average.",
                }[key]
            )
            continue
        parts = [
            f"holds (significant at 5%) at {', '.join(groups['holds'])}" if groups["holds"] else "",
            f"is not supported (not significant) at {', '.join(groups['not supported'])}"
            if groups["not supported"]
            else "",
            f"does not hold ({ref} significantly better) at {', '.join(groups['reversed'])}"
            if groups["reversed"]
            else "",
        ]
        out.append(f"The claim that {arm} beats {ref} on average " + "; ".join(p for p in parts if p) + ".")
    return out


def _versus_paper(a: Analysis) -> list[str]:
    """Reproduced Avg against the reported (paper) Avg of the row placed beside it, one sentence per arm."""
    by_arm: dict[str, list[str]] = {}
    for t in a.tables:
        for r, nxt in zip(t.rows, t.rows[1:]):
            if (
                r.source != REPRODUCED
                or nxt.source == REPRODUCED
                or "avg" not in r.cells
                or "avg" not in nxt.cells
            ):
                continue
            e, rep = r.cells["avg"], nxt.cells["avg"].mean
            if not np.isfinite(e.mean):
                continue
            where = (
                "no CI (n=1)"
                if not np.isfinite(e.lo)
                else ("inside" if e.lo <= rep <= e.hi else "outside") + " the 95% CI"
            )
            g = f"G={r.lead['G']}: " if r.lead.get("G") else ""
            by_arm.setdefault(f"{r.label} vs reported (paper) {nxt.label}", []).append(
                f"{g}{e.mean:.1f} vs {rep:.2f} ({e.mean - rep:+.1f} pp, {where})"
            )
    return [f"{k}, Avg: " + "; ".join(v) + "." for k, v in by_arm.items()]


def caveats(data: ExperimentData, a: Analysis) -> list[str]:
    """Warnings the numbers need: multiple tests, few seeds, disagreeing seeds, runs left out."""
    out = list(a.notes)
    n_tests = sum(np.isfinite(e.mean) for d in a.diffs.values() for e in d.values())
    if n_tests > 1:
        out.append(
            f"{n_tests} paired tests in this report; p-values are not adjusted for multiple comparisons, "
            "so about 1 in 20 null differences reads as significant."
        )
    mixed = [
        v
        for v, d in a.diffs.items()
        if 1 < d["avg"].n < 5 and len({np.sign(x) for x in d["avg"].per_seed}) > 1
    ]
    if mixed:
        out.append(
            f"{', '.join(mixed)}: the per-seed differences disagree in sign and there are fewer than "
            "5 seeds; no test can measure run-to-run variance from so few runs, so these p-values may be "
            "optimistic."
        )
    ns = [e.n for c in a.cells.values() for e in c.values() if e.n]
    if ns and min(ns) < 3:
        out.append(
            "Some cells rest on fewer than 3 seeds: the CI over seeds is absent (n=1) or too narrow to trust."
        )
    runs = data.runs
    if len(runs) and (~runs["in_tables"].astype(bool)).any():
        k = int((~runs["in_tables"].astype(bool)).sum())
        out.append(
            f"{k} run(s) are not in the tables (see Run status); failed runs left out can flatter an arm."
        )
    return out


def run_status(data: ExperimentData) -> str:
    """Counts by status and a table of runs with their flags (only flagged runs above 40 runs)."""
    runs = data.runs
    missing = (
        f"\n\nMissing runs (in the sweep, no results yet): {', '.join(data.missing)}." if data.missing else ""
    )
    if runs.empty:
        return "No runs found." + missing
    counts = Counter(runs["status"])
    lines = [
        f"{_runs(len(runs))}: "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        + f"; {int(runs['in_tables'].astype(bool).sum())} in the tables.",
        "",
    ]
    show = runs if len(runs) <= 40 else runs[runs["flags"].map(len) > 0]
    if len(show) < len(runs):
        lines.append("(only flagged runs listed)")
    lines += ["| run | status | last eval step | in tables | flags |", "|---|---|---|---|---|"]
    for _, r in show.iterrows():
        step = "" if pd.isna(r["final_step"]) else str(int(r["final_step"]))
        flags = "; ".join(r["flags"]).replace("|", "/") or "ok"
        lines.append(
            f"| {r['run_id']} | {r['status']} | {step} | {'yes' if r['in_tables'] else 'no'} | {flags} |"
        )
    return "\n".join(lines) + missing


def methods_note(a: Analysis) -> str:
    """How every number in the report is computed, in a few bullets."""
    return "\n".join(
        [
            "- Pass@1 of a run on a benchmark = avg@n at its last evaluated step: mean over problems of "
            "the fraction of the n samples that are correct, in %.",
            "- A cell = mean over seeds; 95% CI = percentile bootstrap over seeds "
            f"({N_BOOT} resamples); n = seeds. With 1 seed no CI is shown.",
            "- Avg = per-seed mean over "
            f"{', '.join(bench_display(b) for b in a.avg_over) or 'no benchmark'}, "
            "then summarised over seeds the same way.",
            f"- Paired comparison vs the reference arm '{a.reference}' at the same grid point: seeds and "
            "problems matched; difference of means in percentage points; CI and two-sided p-value from a "
            "paired two-way bootstrap (seeds and problems resampled independently, "
            f"{N_BOOT} resamples, RNG seed {RNG_SEED}). "
            "This keeps the seed-to-seed variance; it is conservative when the seeds agree, and can be "
            "optimistic with 2-3 seeds that disagree (compare the per-seed differences in the reading).",
            "- Reported (paper) rows are the paper's numbers (ebpo_bench/report/paper_results.yaml); "
            "empty cells are numbers the paper does not give.",
        ]
    )


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def provenance(data: ExperimentData) -> str:
    """Spec hashes, git commits (and dirty trees), package versions, Python and hardware of the runs."""
    recs, runs = data.records, data.runs
    commits = Counter(str((r.get("provenance") or {}).get("git", {}).get("commit")) for r in recs)
    dirty = sum(bool((r.get("provenance") or {}).get("git", {}).get("dirty")) for r in recs)
    pkgs: dict[str, Counter] = {}
    for r in recs:
        for k, v in ((r.get("provenance") or {}).get("packages") or {}).items():
            if v:
                pkgs.setdefault(k, Counter())[v] += 1
    hashes = runs["spec_hash"].dropna() if len(runs) else []
    lines = [
        f"- Spec hashes: {len(set(hashes))} distinct over {len(runs)} runs "
        "(one per run; see tables/runs.csv)",
        "- Git commit(s): "
        + (", ".join(f"{c[:12]} ({_runs(n)})" for c, n in commits.most_common()) or "unknown")
        + (f"; {dirty} run(s) from a dirty tree" if dirty else ""),
        "- Packages: "
        + (
            "; ".join(
                f"{k} "
                + "/".join(f"{v}" + (f" ({_runs(n)})" if len(c) > 1 else "") for v, n in c.most_common())
                for k, c in sorted(pkgs.items())
            )
            or "unknown"
        ),
        "- Python: "
        + (", ".join(sorted({str((r.get("provenance") or {}).get("python")) for r in recs})) or "unknown"),
        "- Hardware: "
        + (
            ", ".join(f"{d} ({_runs(n)})" for d, n in Counter(str(r.get("device")) for r in recs).items())
            or "unknown"
        ),
        f"- Report built by ebpo-bench {__version__} from {data.dir}",
    ]
    return "\n".join(lines)


def write_report(
    data: ExperimentData,
    a: Analysis,
    tables: list[tuple[Table, list[Path]]],
    figures: dict[str, list[Path]],
    out_dir: Path,
) -> Path:
    """Write ``out_dir/report.md`` and return its path."""
    desc = str(data.spec.get("description") or "").strip() or "(the spec has no description)"
    pt = data.spec.get("paper_table")
    head = [
        f"# {data.name}",
        "",
        f"> {desc}",
        "",
        f"Layout: {a.layout}"
        + (f" (reproduces the paper's {pt})" if pt else "")
        + f" | reference arm: {a.reference} | runs: {len(data.runs)}",
        "",
    ]
    body = (
        ["## Reading of the result", ""]
        + [f"- {s}" for s in reading(a) or ["No comparison possible."]]
        + [""]
    )
    notes = caveats(data, a)
    if notes:
        body += ["Caveats:", ""] + [f"- {s}" for s in notes] + [""]
    body += ["## Tables", ""]
    for t, files in tables:
        links = " | ".join(f"[{p.suffix[1:].upper()}]({p.relative_to(out_dir).as_posix()})" for p in files)
        body += [f"### {t.title}", "", to_markdown(t), "", links, ""]
    if not tables:
        body += ["No evaluated runs yet.", ""]
    body += ["## Figures", ""] + ([] if figures else ["No data to plot yet.", ""])
    for name, paths in figures.items():
        png = paths[0].relative_to(out_dir).as_posix()
        body += [
            f"![{name.replace('_', ' ')}]({png})",
            f"[SVG]({paths[1].relative_to(out_dir).as_posix()})",
            "",
        ]
    body += extra_evaluations(data)
    body += [
        "## Run status",
        "",
        run_status(data),
        "",
        "## How the numbers are computed",
        "",
        methods_note(a),
        "",
        "## Provenance",
        "",
        provenance(data),
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(head + body))
    return path


def extra_evaluations(data: ExperimentData) -> list[str]:
    """A section for evaluations made with ``ebpo-bench eval RUN_DIR`` (none: no section)."""
    if not data.evals:
        return []
    lines = [
        "## Further evaluations (`ebpo-bench eval RUN_DIR`)",
        "",
        "| run | step | benchmark | n | T | max tokens | problems | avg@n (%) | ± se | pass@n (%) | folder |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    pct = lambda v: "" if v is None else f"{100 * v:.1f}"  # noqa: E731
    for e in data.evals:
        lines.append(
            f"| {e['run_id']} | {e['step']} | {e['benchmark']} | {e['n']} | {e['temperature']} | "
            f"{e['max_new_tokens']} | {e['problems']} | {pct(e['avg'])} | {pct(e['stderr'])} | "
            f"{pct(e['pass'])} | {e['run_id']}/evals/{e['folder']} |"
        )
    return lines + [""]


def write_index(entries: list[dict], out: Path) -> Path:
    """``out/index.md``: one line per experiment with its question, runs and report link."""
    lines = [
        "# ebpo-bench reports",
        "",
        "| experiment | question | runs | in tables | report |",
        "|---|---|---|---|---|",
    ]
    for e in entries:
        q = " ".join(str(e.get("description", "")).split()).replace("|", "/")
        link = f"[report]({e['link']})" if e.get("link") else f"failed: {e.get('error', '')}"
        lines.append(f"| {e['name']} | {q} | {e.get('runs', '')} | {e.get('in_tables', '')} | {link} |")
    if not entries:
        lines.append("| (no experiments found) | | | | |")
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.md"
    path.write_text("\n".join(lines) + "\n")
    return path
