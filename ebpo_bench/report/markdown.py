"""report.md of one experiment and the index of all: question, reading (``reading``), tables, figures,
run status, method notes and provenance.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from ebpo_bench import __version__
from ebpo_bench.report.load import ExperimentData
from ebpo_bench.report.reading import caveats, reading
from ebpo_bench.report.render import to_markdown
from ebpo_bench.report.stats import N_BOOT, RNG_SEED
from ebpo_bench.report.tables import Analysis, Table, bench_display

__all__ = ["reading", "caveats", "write_report", "write_index"]


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
            "- With fewer than 3 seeds per arm the same bootstrap resamples problems only: its p-value says "
            "whether two runs differ beyond problem sampling, not whether two methods do; the reading then "
            "makes no directional claim.",
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
    layout = (
        f"Layout: the paper's {pt} (the spec declares paper_table: {pt})"
        if a.paper_layout
        else "Layout: arms x benchmarks"
        + (" by group size G" if a.layout == "by_group_size" else "")
        + " (no paper layout: the spec declares no paper_table)"
    )
    head = [
        f"# {data.name}",
        "",
        f"> {desc}",
        "",
        f"{layout} | reference arm: {a.reference} | runs: {len(data.runs)}",
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
