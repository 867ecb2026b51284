"""``ebpo-bench report``: the paper's tables, figures and an honest reading for your own runs.

Reads only files under ``results/`` (never the trainer: this package imports neither torch nor
transformers) and writes ``<out>/<experiment>/`` with ``report.md``, ``tables/`` (markdown, CSV,
LaTeX on request, and ``runs.csv``) and ``figures/`` (PNG + SVG). Modules:

- ``load``: run directories -> tidy frames, bad runs flagged;
- ``stats``: seed bootstrap, paired two-way bootstrap, pass@k;
- ``tables``: Table 1 / 2 / 3 layouts, reported (paper) rows, paired differences;
- ``render``: tables as markdown / CSV / LaTeX;
- ``figures``: training curves, final Pass@1, Pass@1 vs G, pass@k;
- ``reading``: the reading of the result (unit of every test, no claim from fewer than 3 seeds);
- ``markdown``: report.md and index.md;
- ``compare``: ``ebpo-bench report A B``: several experiments side by side.

A folder whose runs belong to several experiments (a results root given as one experiment) is
refused, never merged: ``check_one_experiment``.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from ebpo_bench.errors import UserError
from ebpo_bench.report.load import ExperimentData, find_experiments, load_experiment
from ebpo_bench.report.render import to_frame, to_latex, to_markdown
from ebpo_bench.report.tables import Analysis, analyse, load_paper

__all__ = [
    "build_reports",
    "build_experiment_report",
    "load_experiment",
    "analyse",
    "ExperimentData",
    "Analysis",
]


def check_one_experiment(data: ExperimentData) -> None:
    """Refuse a folder whose runs belong to several experiments (or to one in a sub-folder).

    Raises:
        UserError: naming the experiments found and the commands that report them.
    """
    d, names = data.dir, data.names
    nested = len(names) == 1 and names[0] != d.name and (d / names[0]).is_dir()
    if len(names) > 1 or nested:
        shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
        raise UserError(
            f"{d} holds the runs of {len(names)} experiment(s) ({shown}); it looks like a results root, "
            "and merging experiments into one report would mix unrelated runs. Report one: "
            f"`ebpo-bench report {d / names[0]}`; all, one report each: `ebpo-bench report --results {d}`; "
            f"side by side: `ebpo-bench report {' '.join(str(d / n) for n in names[:2])}`."
        )


def build_experiment_report(
    exp_dir: Path,
    out: Path,
    *,
    reference: str | None = None,
    latex: bool = False,
    paper: dict | None = None,
) -> tuple[Path, ExperimentData]:
    """Build ``out/<experiment>/report.md`` for one experiment folder; return (path, loaded data).

    ``reference`` None: the spec's ``report.reference``, else ``grpo``.
    """
    from ebpo_bench.report.figures import make_figures  # matplotlib only when a report is really built
    from ebpo_bench.report.markdown import write_report

    data = load_experiment(exp_dir)
    check_one_experiment(data)
    a = analyse(data, reference=reference, paper=paper)
    out_dir = out / data.name
    for sub in ("tables", "figures"):  # stale files of an earlier layout must not linger
        shutil.rmtree(out_dir / sub, ignore_errors=True)
    tdir = out_dir / "tables"
    tdir.mkdir(parents=True, exist_ok=True)
    written = []
    for t in a.tables:
        files = [tdir / f"{t.key}.md", tdir / f"{t.key}.csv"]
        files[0].write_text(f"{t.title}\n\n{to_markdown(t)}\n")
        to_frame(t).to_csv(files[1], index=False)
        if latex:
            files.append(tdir / f"{t.key}.tex")
            files[2].write_text(to_latex(t))
        written.append((t, files))
    runs = data.runs.copy()
    if len(runs):
        runs["flags"] = runs["flags"].map("; ".join)
        runs.drop(columns=["axes"]).to_csv(tdir / "runs.csv", index=False)
    figs = make_figures(data, a, out_dir / "figures") if len(data.runs) else {}
    return write_report(data, a, written, figs, out_dir), data


def build_reports(
    results_root: Path,
    experiment_dir: Path | list[Path] | None = None,
    out: Path | None = None,
    *,
    reference: str | None = None,
    latex: bool = False,
) -> list[Path]:
    """Build the report of one experiment, or of every experiment under ``results_root`` plus an index.

    Args:
        results_root: the results folder (``results/``); used when ``experiment_dir`` is None.
        experiment_dir: one experiment folder (``results/<experiment>``), or None for all; a list of
            several builds each report plus ``out/compare_<A>_<B>....md`` side by side.
        out: reports folder (default ``reports``); each experiment goes to ``out/<experiment>/``.
        reference: arm every other arm is compared with (paired differences); None: the spec's
            ``report.reference``, else ``grpo``.
        latex: also write each table as a LaTeX tabular.

    Returns:
        The report.md paths written, followed by ``out/index.md`` when building all.

    Raises:
        FileNotFoundError: ``experiment_dir`` (or ``results_root`` when building all) does not exist.
        UserError: an experiment folder holds the runs of several experiments.
    """
    from ebpo_bench.report.markdown import write_index

    out = Path(out) if out is not None else Path("reports")
    paper = load_paper()
    if experiment_dir is not None:
        exps = [Path(e) for e in (experiment_dir if isinstance(experiment_dir, list) else [experiment_dir])]
        for exp in exps:
            if not exp.is_dir():
                raise FileNotFoundError(f"no experiment folder {exp}; expected results/<experiment>")
        built = [build_experiment_report(e, out, reference=reference, latex=latex, paper=paper) for e in exps]
        if len(built) == 1:
            return [built[0][0]]
        from ebpo_bench.report.compare import write_comparison

        analyses = [(data, analyse(data, reference=reference, paper=paper), p) for p, data in built]
        return [p for p, _ in built] + [write_comparison(analyses, out)]
    root = Path(results_root)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder {root}; run an experiment first (ebpo-bench run <spec>)")
    paths, entries = [], []
    for exp in find_experiments(root):
        try:
            path, data = build_experiment_report(exp, out, reference=reference, latex=latex, paper=paper)
        except Exception as e:  # one unreadable experiment must not hide the reports of the others
            print(f"report of {exp.name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            entries.append({"name": exp.name, "error": f"{type(e).__name__}: {e}"})
            continue
        paths.append(path)
        runs = data.runs
        entries.append(
            {
                "name": data.name,
                "description": data.spec.get("description", ""),
                "runs": len(runs),
                "in_tables": int(runs["in_tables"].astype(bool).sum()) if len(runs) else 0,
                "link": path.relative_to(out).as_posix(),
            }
        )
    paths.append(write_index(entries, out))
    return paths
