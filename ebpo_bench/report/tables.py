"""The paper's table layouts for one experiment: cells, paired differences, reported rows.

Pass@1 of a run on a benchmark is avg@n at the run's last evaluated step: the mean over problems of
the fraction of correct samples. A cell is the mean over seeds of that (in %), with a bootstrap CI
over seeds (``stats.bootstrap_mean``); ``Avg`` is computed per seed over the averaged benchmarks,
then summarised the same way (a seed lacking one of them has no Avg). Paired differences use
``stats.paired_bootstrap`` against the reference arm at the same grid point.

Layouts: the paper's ``table1`` (methods x benchmarks), ``table2`` (group size x method, as an Avg
pivot and per benchmark) and ``table3`` (data-ordering ablation) only for specs that declare
``paper_table``; any other experiment gets ``by_arm`` (arms x benchmarks) or ``by_group_size`` (when
G is a grid axis), with no paper heading. ``render`` turns them into markdown, CSV and LaTeX.
Reported (paper) rows come from ``ebpo_bench/report/paper_results.yaml`` and appear only when the spec
names the paper table and the experiment evaluates on the paper's benchmarks (or has no results
yet): the synthetic levels are not comparable with AIME. When a paper spec also evaluates synthetic
levels (the ``tiny`` profile), the paper benchmarks score ~0 and carry no signal: Avg and every
verdict then use the levels (``Analysis.signal_levels``), the reported rows keep their per-benchmark
numbers but lose their Avg (it averages other columns).

The reference arm is ``--reference``, else the spec's ``report.reference``, else ``grpo``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ebpo_bench.report.load import ExperimentData
from ebpo_bench.report.stats import Estimate, bootstrap_mean, paired_bootstrap

#: the benchmark columns of the paper's Tables 1-3 (Minerva is evaluated but not tabled there)
PAPER_TABLE_COLUMNS = ["math500", "aime24", "aime25", "amc23", "olympiadbench"]
BENCH_NAMES = {
    "math500": "MATH-500",
    "aime24": "AIME24",
    "aime25": "AIME25",
    "amc23": "AMC23",
    "olympiadbench": "OlympiadBench",
    "avg": "Avg",
}
BENCH_ALIASES = {
    "math": "math500",
    "math500": "math500",
    "olympiad": "olympiadbench",
    "olympiadb": "olympiadbench",
}
MODEL_KEYS = {"LLaMA3.1-8B": ("llama", "8b"), "Qwen3-14B": ("qwen3", "14b")}  # else the table's default
PAPER_FILE = Path(__file__).resolve().parent / "paper_results.yaml"
REPRODUCED, REPORTED, DIFFERENCE = "reproduced", "reported (paper)", "paired difference"
NAN = float("nan")


@dataclass
class Row:
    """One table row: a label, where its numbers come from, cells by column key, flags by column."""

    label: str
    source: str
    cells: dict[str, Estimate]
    lead: dict[str, str] = field(default_factory=dict)
    flags: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    """A rendered-ready table: ``lead`` columns (e.g. G) before the value ``columns``."""

    key: str
    title: str
    lead: list[str]
    columns: list[str]
    headers: dict[str, str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)


@dataclass
class Analysis:
    """Numbers of one experiment: cells and differences per variant, the tables built from them."""

    layout: str
    reference: str
    columns: list[str]
    avg_over: list[str]
    variants: pd.DataFrame
    cells: dict[str, dict[str, Estimate]]
    diffs: dict[str, dict[str, Estimate]]
    ref_of: dict[str, str]
    paper: list[dict]
    scores: pd.DataFrame
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    signal_levels: bool = False

    @property
    def paper_layout(self) -> bool:
        return self.layout in ("table1", "table2", "table3")

    @property
    def avg_header(self) -> str:
        return "Avg (synthetic levels)" if self.signal_levels else "Avg"


def norm(name: str) -> str:
    """Lower case without punctuation: how arm names and paper aliases are compared."""
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def canonical_benchmark(name: str) -> str:
    """``MATH-500`` / ``math`` -> ``math500``, ``OlympiadBench`` -> ``olympiadbench``; others lower-cased."""
    n = norm(name)
    return BENCH_ALIASES.get(n, n)


def bench_display(key: str) -> str:
    """Column header of a benchmark key: ``level3`` -> ``Level 3``, ``aime24`` -> ``AIME24``."""
    m = re.fullmatch(r"level(\d+)", key)
    return f"Level {m.group(1)}" if m else BENCH_NAMES.get(key, key)


def load_paper(path: Path = PAPER_FILE) -> dict:
    """The reported numbers of the paper's Tables 1-3 (see the YAML's header)."""
    return yaml.safe_load(path.read_text())


def paper_rows(paper: dict, table: str, model_path: str = "") -> list[dict]:
    """Reported rows of one paper table for the model block closest to ``model_path``.

    For ``table2``, the G = 4 rows (GRPO, DAPO, EBPO) come from Table 1, which is the G = 4 setting.
    """
    spec = paper["tables"].get(table)
    if not spec:
        return []
    m = norm(model_path)
    model = next(
        (b for b, keys in MODEL_KEYS.items() if all(k in m for k in keys)), spec.get("default_model")
    )
    rows = [dict(r) for r in spec["rows"] if r["model"] == model]
    if table == "table2":
        for r in paper_rows(paper, "table1", model_path):
            if norm(r["method"]) in ("grpo", "dapo", "ebpotopic"):
                flags = {
                    k: ", ".join(filter(None, [r.get("flags", {}).get(k), "table1"])) for k in r["values"]
                }
                rows.append(
                    dict(r, G=4, method="EBPO" if "ebpo" in norm(r["method"]) else r["method"], flags=flags)
                )
        rows.sort(key=lambda r: r.get("G", 0))
    return rows


def choose_layout(data: ExperimentData) -> str:
    """The spec's paper_table; else ``by_group_size`` when G is a grid axis, else ``by_arm``."""
    pt = data.spec.get("paper_table")
    if pt in ("table1", "table2", "table3"):
        return pt
    return "by_group_size" if "rollout.group_size" in data.axes else "by_arm"


def spec_reference(data: ExperimentData) -> str | None:
    """The spec's ``report.reference`` arm, if it names one."""
    rep = data.spec.get("report")
    ref = rep.get("reference") if isinstance(rep, dict) else None
    return str(ref) if ref else None


def final_scores(data: ExperimentData) -> pd.DataFrame:
    """Per-problem Pass@1 (fraction correct, 0-1) at each table run's last step: one row per problem."""
    runs = data.runs
    if runs.empty or data.problems.empty:
        return pd.DataFrame(
            columns=["variant", "arm", "seed", "benchmark", "problem_id", "n", "correct", "score"]
        )
    final = runs.loc[runs["in_tables"].astype(bool), ["run_id", "final_step"]]
    pr = data.problems.merge(final, on="run_id")
    pr = pr[pr["step"] == pr["final_step"]].copy()
    pr["benchmark"] = pr["benchmark"].map(canonical_benchmark)
    pr["score"] = pr["correct"] / pr["n"]
    return pr.drop(columns=["final_step", "step"]).reset_index(drop=True)


def _columns(data: ExperimentData, fs: pd.DataFrame) -> tuple[list[str], list[str], bool, bool]:
    """(benchmark columns, benchmarks averaged in Avg, whether reported rows are comparable, whether
    Avg is over the synthetic levels of a paper spec because the paper benchmarks carry no signal)."""
    present = sorted(set(fs["benchmark"]), key=lambda b: (not b.startswith("level"), _natural(b)))
    levels = [b for b in present if b.startswith("level")]
    paper_like = bool(data.spec.get("paper_table")) and (
        not present or bool(set(present) & set(PAPER_TABLE_COLUMNS))
    )
    if paper_like and levels:
        return PAPER_TABLE_COLUMNS + [b for b in present if b not in PAPER_TABLE_COLUMNS], levels, True, True
    if paper_like:
        cols = PAPER_TABLE_COLUMNS + [b for b in present if b not in PAPER_TABLE_COLUMNS]
        avg = [b for b in PAPER_TABLE_COLUMNS if b in present] or present or list(PAPER_TABLE_COLUMNS)
        return cols, avg, True, False
    return present, present, False, False


def _natural(s: str) -> tuple:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", s))


def seed_table(fs: pd.DataFrame, columns: list[str], avg_over: list[str]) -> pd.DataFrame:
    """Pass@1 (%) per (variant, seed) x benchmark, plus ``avg`` over ``avg_over`` (NaN if one is missing)."""
    per = fs.groupby(["variant", "seed", "benchmark"])["score"].mean().mul(100).unstack("benchmark")
    per = per.reindex(columns=columns)
    per["avg"] = per[avg_over].mean(axis=1, skipna=False) if avg_over else NAN
    return per


def _problem_matrix(fs: pd.DataFrame, variant: str, bench: str) -> pd.DataFrame:
    sub = fs[(fs["variant"] == variant) & (fs["benchmark"] == bench)]
    return sub.pivot_table(index="seed", columns="problem_id", values="score", aggfunc="mean")


def paired(
    fs: pd.DataFrame, variant: str, ref: str, columns: list[str], avg_over: list[str]
) -> dict[str, Estimate]:
    """Difference (pp) of ``variant`` minus ``ref`` per benchmark and on Avg, over matched seeds and
    problems."""
    mats = {b: (_problem_matrix(fs, variant, b), _problem_matrix(fs, ref, b)) for b in columns}
    out: dict[str, Estimate] = {}

    def diff(b: str, seeds: list) -> np.ndarray:
        a, r = mats[b]
        a, r = a.reindex(seeds), r.reindex(seeds)
        probs = [p for p in a.columns.intersection(r.columns) if a[p].notna().all() and r[p].notna().all()]
        return 100 * (a[probs].to_numpy() - r[probs].to_numpy())

    for b in columns:
        seeds = sorted(set(mats[b][0].index) & set(mats[b][1].index))
        d = diff(b, seeds) if seeds else np.empty((0, 0))
        out[b] = paired_bootstrap([d]) if d.size else Estimate(NAN, NAN, NAN, 0)
    common = None
    for b in avg_over:
        s = set(mats[b][0].index) & set(mats[b][1].index)
        common = s if common is None else common & s
    ds = [diff(b, sorted(common)) for b in avg_over] if common else []
    ok = ds and all(d.size for d in ds)
    out["avg"] = paired_bootstrap(ds) if ok else Estimate(NAN, NAN, NAN, 0)
    return out


def _variants(data: ExperimentData, reference: str) -> pd.DataFrame:
    runs = data.runs
    if runs.empty:
        return pd.DataFrame(columns=["variant", "arm", "axes_label", "group_size", "order", "estimator"])
    v = runs[runs["in_tables"].astype(bool)].drop_duplicates("variant")
    v = v[["variant", "arm", "axes_label", "group_size", "order", "estimator"]].copy()
    v["_ref"] = v["arm"] != reference
    v["_g"] = pd.to_numeric(v["group_size"], errors="coerce").fillna(0)
    return (
        v.sort_values(["_ref", "arm", "_g", "axes_label"]).drop(columns=["_ref", "_g"]).reset_index(drop=True)
    )


def analyse(data: ExperimentData, reference: str | None = None, paper: dict | None = None) -> Analysis:
    """Compute every cell, every paired difference and the tables of the experiment's layout.

    ``reference`` None means the spec's ``report.reference``, else ``grpo``.
    """
    reference = reference or spec_reference(data) or "grpo"
    layout = choose_layout(data)
    fs = final_scores(data)
    cols, avg_over, paper_like, signal = _columns(data, fs)
    variants = _variants(data, reference)
    st = seed_table(fs, cols, avg_over) if len(fs) else pd.DataFrame()
    cells = {
        v: {c: bootstrap_mean(st.loc[v][c].to_numpy() if v in st.index else []) for c in cols + ["avg"]}
        for v in variants["variant"]
    }
    ref_of = {}
    for _, r in variants[variants["arm"] != reference].iterrows():
        match = variants[(variants["arm"] == reference) & (variants["axes_label"] == r["axes_label"])]
        if len(match):
            ref_of[r["variant"]] = match["variant"].iloc[0]
    tested = avg_over if signal else cols  # no tests on columns that carry no signal
    diffs = {v: paired(fs, v, ref, tested, avg_over) for v, ref in ref_of.items()}
    model = str(data.spec.get("model", {}).get("path", ""))
    rep = paper_rows(paper or load_paper(), layout, model) if paper_like else []
    if signal:  # the reported Avg averages the paper benchmarks, ours the levels: not one column
        rep = [dict(r, values={k: x for k, x in r["values"].items() if k != "avg"}) for r in rep]
    a = Analysis(layout, reference, cols, avg_over, variants, cells, diffs, ref_of, rep, fs)
    a.signal_levels = signal
    if signal:
        a.notes.append(
            "The paper benchmarks score about 0 at this scale and carry no signal: Avg and every verdict "
            "use the synthetic levels (" + ", ".join(bench_display(b) for b in avg_over) + "); the paper "
            "benchmark columns and the reported rows are shown for the layout only (a different model "
            "and scale: not a target)."
        )
    if data.spec.get("paper_table") and not paper_like:
        a.notes.append(
            f"The spec reproduces the paper's {layout}, but evaluates on other benchmarks; "
            "the reported numbers are not comparable and are left out."
        )
    if variants["arm"].ne(reference).any() and not ref_of:
        a.notes.append(f"Reference arm '{reference}' is not in the tables; no paired comparison.")
    a.tables = _build_tables(a)
    return a


def _headers(a: Analysis) -> dict[str, str]:
    return {**{c: bench_display(c) for c in a.columns}, "avg": a.avg_header}


def _reported(r: dict, lead: dict) -> Row:
    cells = {k: Estimate(float(v), NAN, NAN, 0) for k, v in r["values"].items()}
    return Row(r["method"], REPORTED, cells, lead, dict(r.get("flags") or {}))


def _method_table(a: Analysis, key: str, title: str, lead_cols: dict[str, str], by_g: bool) -> Table:
    """Variants x benchmarks with each matched reported row right below its reproduced row."""
    rows, used = [], set()
    for _, v in a.variants.iterrows():
        lead = {name: str(v[attr]) for name, attr in lead_cols.items()}
        rows.append(Row(v["arm"] if by_g else v["variant"], REPRODUCED, a.cells[v["variant"]], lead))
        for i, r in enumerate(a.paper):
            g_ok = not by_g or str(r.get("G")) == str(v["group_size"])
            if i not in used and g_ok and norm(v["arm"]) in map(norm, r.get("aliases", [])):
                used.add(i)
                rows.append(_reported(r, {n: str(r.get("G", "")) if n == "G" else "" for n in lead_cols}))
                break
    for i, r in enumerate(a.paper):
        if i not in used:
            rows.append(_reported(r, {n: str(r.get("G", "")) if n == "G" else "" for n in lead_cols}))
    cols = a.columns + ["avg"]
    return Table(key, title, list(lead_cols), cols, _headers(a), rows)


def _g_pivot(a: Analysis, key: str, title: str) -> Table:
    """Avg Pass@1 by group size (columns) and method (rows), as the paper's Table 2 reads."""
    v = a.variants
    gs = sorted(
        {int(g) for g in v["group_size"].dropna()} | {int(r["G"]) for r in a.paper if "avg" in r["values"]}
    )
    cols = [f"G={g}" for g in gs]
    rows = []
    for arm in dict.fromkeys(v["arm"]):
        sub = v[v["arm"] == arm]
        cells = {f"G={int(g)}": a.cells[name]["avg"] for name, g in zip(sub["variant"], sub["group_size"])}
        rows.append(Row(arm, REPRODUCED, cells))
    by_method: dict[str, Row] = {}
    for r in a.paper:
        if "avg" in r["values"]:
            row = by_method.setdefault(r["method"], Row(r["method"], REPORTED, {}))
            row.cells[f"G={r['G']}"] = Estimate(float(r["values"]["avg"]), NAN, NAN, 0)
            row.flags[f"G={r['G']}"] = (r.get("flags") or {}).get("avg", "")
    rows += list(by_method.values())
    avg = ", ".join(bench_display(b) for b in a.avg_over)
    return Table(key, f"{title} (Avg over {avg})", [], cols, {c: c for c in cols}, rows)


def comparison_table(a: Analysis) -> Table | None:
    """Paired differences (pp) of each arm against the reference arm at the same grid point."""
    if not a.diffs:
        return None
    rows = [Row(f"{v} - {a.ref_of[v]}", DIFFERENCE, d) for v, d in a.diffs.items()]
    return Table(
        "comparison",
        f"Paired difference vs {a.reference} (percentage points)",
        [],
        a.columns + ["avg"],
        _headers(a),
        rows,
    )


def _build_tables(a: Analysis) -> list[Table]:
    """The paper's layouts for paper specs; plain arm (x G) tables for any other experiment."""
    g = {"G": "group_size"}
    if a.layout == "table2":
        tables = [
            _g_pivot(a, "table2", "Table 2: Avg Pass@1 (%) by group size G"),
            _method_table(a, "table2_detail", "Table 2 (per benchmark): Pass@1 (%) by G and method", g, True),
        ]
    elif a.layout == "by_group_size":
        tables = [
            _g_pivot(a, "pass1_by_group_size", "Avg Pass@1 (%) by group size G"),
            _method_table(a, "pass1_by_group_size_detail", "Pass@1 (%) by G and arm", g, True),
        ]
    elif a.layout == "table3":
        title = "Table 3: data-ordering ablation, Pass@1 (%)"
        tables = [_method_table(a, "table3", title, {"data order": "order"}, by_g=False)]
    elif a.layout == "table1":
        tables = [_method_table(a, "table1", "Table 1: Pass@1 (%) by method", {}, by_g=False)]
    else:
        tables = [_method_table(a, "pass1_by_arm", "Pass@1 (%) by arm", {}, by_g=False)]
    comp = comparison_table(a)
    return [t for t in tables if t.rows] + ([comp] if comp else [])
