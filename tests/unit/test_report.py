"""`ebpo-bench report` on synthetic result folders built here: layouts, known cells, broken runs, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from doubles.result_folders import random_scores, write_run

from ebpo_bench.report import build_reports, load_experiment
from ebpo_bench.report.markdown import reading
from ebpo_bench.report.render import to_markdown
from ebpo_bench.report.tables import REPORTED, REPRODUCED, analyse, load_paper, paper_rows

ROOT = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- paper numbers
def test_paper_results_file_spot_checks():
    paper = load_paper()
    t1 = {(r["model"], r["method"]): r for r in paper["tables"]["table1"]["rows"]}
    assert t1[("Qwen3-8B", "GRPO")]["values"]["aime24"] == 50.21
    assert t1[("Qwen3-8B", "EBPO-topic")]["values"]["avg"] == 64.39
    assert t1[("Qwen3-14B", "DAPO")]["values"]["aime25"] == 51.46
    assert t1[("Qwen3-14B", "EBPO")]["flags"]["math500"] == "inferred"
    assert t1[("LLaMA3.1-8B", "EBPO")]["values"] == {"avg": 9.97}  # constraints only: no numbers invented
    t2 = paper["tables"]["table2"]["rows"]
    assert {r["G"] for r in t2} == {8, 16, 32}
    assert next(r for r in t2 if r["G"] == 16 and r["method"] == "DAPO")["values"]["amc23"] == 76.87
    for r in t2:
        if r["method"] == "EBPO":  # the paper gives no EBPO per-benchmark cell in Table 2
            assert set(r["values"]) == {"avg"} and r["flags"]["avg"] == "third-party"
    t3 = {(r["model"], r["method"]): r for r in paper["tables"]["table3"]["rows"]}
    assert t3[("Qwen3-14B", "EBPO-naive")]["values"]["math500"] == 72.08
    assert paper_rows(paper, "table1", "Qwen/Qwen3-14B")[0]["values"]["avg"] == 59.88
    assert paper_rows(paper, "table1", "meta-llama/Llama-3.1-8B")[0]["values"]["avg"] == 9.00
    assert paper_rows(paper, "table1", "Qwen/Qwen3-8B")[0]["values"]["avg"] == 58.72


# ---------------------------------------------------------------- known answers
def test_cells_and_paired_difference_known_answer(tmp_path):
    exp = tmp_path / "known"
    hand = {
        ("grpo", 1): {"level1": [[1, 1], [0, 0]], "level2": [[0, 0], [0, 0]]},  # 50, 0
        ("grpo", 2): {"level1": [[1, 0], [0, 0]], "level2": [[1, 0], [0, 0]]},  # 25, 25
        ("ebpo", 1): {"level1": [[1, 1], [1, 0]], "level2": [[1, 0], [0, 0]]},  # 75, 25
        ("ebpo", 2): {"level1": [[1, 1], [0, 0]], "level2": [[1, 1], [1, 1]]},  # 50, 100
    }
    for (arm, seed), s in hand.items():
        write_run(exp, arm, seed, s)
    a = analyse(load_experiment(exp))
    assert a.layout == "by_arm" and a.columns == ["level1", "level2"] and a.paper == []
    c = a.cells
    g1 = c["grpo"]["level1"]
    assert g1.mean == pytest.approx(37.5) and 25 <= g1.lo < g1.hi <= 50
    assert c["ebpo"]["level2"].mean == pytest.approx(62.5)
    assert (c["grpo"]["avg"].mean, c["grpo"]["avg"].lo, c["grpo"]["avg"].hi) == pytest.approx((25, 25, 25))
    assert c["ebpo"]["avg"].mean == pytest.approx(62.5) and c["ebpo"]["avg"].n == 2
    d = a.diffs["ebpo"]
    assert a.ref_of == {"ebpo": "grpo"}
    assert d["level1"].mean == pytest.approx(25.0) and d["level2"].mean == pytest.approx(50.0)
    assert d["avg"].mean == pytest.approx(37.5) and d["avg"].per_seed == pytest.approx((25.0, 50.0))
    md = to_markdown(a.tables[0])
    assert "| ebpo | reproduced | **62.5** [50.0, 75.0] n=2 |" in md
    assert "| grpo | reproduced | 37.5 [25.0, 50.0] n=2 |" in md


def test_reading_detects_a_planted_effect_and_not_a_null(tmp_path):
    rng = np.random.default_rng(0)
    levels = ["level1", "level2"]
    for seed in (1, 2, 3):
        base = random_scores(rng, levels, 0.3, problems=30)
        write_run(tmp_path / "effect", "grpo", seed, base)
        write_run(tmp_path / "effect", "ebpo", seed, random_scores(rng, levels, 0.9, problems=30))
        write_run(tmp_path / "null", "grpo", seed, base)
        write_run(tmp_path / "null", "ebpo", seed, base)
        write_run(tmp_path / "worse", "grpo", seed, random_scores(rng, levels, 0.9, problems=30))
        write_run(tmp_path / "worse", "ebpo", seed, base)
    text = "\n".join(reading(analyse(load_experiment(tmp_path / "effect"))))
    assert "Avg = mean over Level 1, Level 2." in text
    assert "ebpo - grpo on Avg: +" in text and ", significant at 5%" in text
    assert "beats grpo on average holds" in text
    text = "\n".join(reading(analyse(load_experiment(tmp_path / "worse"))))
    assert "ebpo - grpo on Avg: -" in text and "does not hold here: grpo is significantly better" in text
    null = analyse(load_experiment(tmp_path / "null"))
    assert null.diffs["ebpo"]["avg"].mean == 0.0 and null.diffs["ebpo"]["avg"].p == 1.0
    text = "\n".join(reading(null))
    assert "not significant at 5%" in text and "is not supported here" in text


# ---------------------------------------------------------------- broken runs
def test_broken_runs_are_loaded_as_far_as_valid_and_flagged(tmp_path):
    exp = tmp_path / "broken"
    rng = np.random.default_rng(1)
    lv = ["level1"]
    write_run(exp, "grpo", 1, random_scores(rng, lv, 0.5))
    write_run(exp, "grpo", 2, random_scores(rng, lv, 0.5))
    write_run(exp, "grpo", 3, random_scores(rng, lv, 0.5), run_json=False)
    write_run(exp, "ebpo", 1, random_scores(rng, lv, 0.5))
    write_run(exp, "ebpo", 2, random_scores(rng, lv, 0.5), status="failed", eval_step=5)
    torn = write_run(exp, "ebpo", 3, random_scores(rng, lv, 0.5))
    for name in ("metrics.jsonl", "eval.jsonl"):  # killed mid-write
        with open(torn / name, "a") as f:
            f.write('{"step": 10, "benchmark": "lev')
    with open(torn / "eval.jsonl", "a") as f:
        f.write(
            "\n" + json.dumps({"step": 10, "benchmark": "level1", "sample": 0, "score_correct": True}) + "\n"
        )
    bad = write_run(exp, "dapo", 1, None, spec=False)
    (bad / "run.json").write_text("{not json")
    (exp / "ebpo/seed1/checkpoints/step10").mkdir(parents=True)
    (exp / "ebpo/seed1/checkpoints/step10/run.json").write_text("{}")  # not a run

    data = load_experiment(exp)
    runs = data.runs.set_index("run_id")
    assert len(runs) == 7
    flags = {k: "; ".join(v) for k, v in runs["flags"].items()}
    assert "run.json missing" in flags["grpo/seed3"] and runs.loc["grpo/seed3", "in_tables"]
    assert "status failed: loss diverged at step 5" in flags["ebpo/seed2"]
    assert (
        "last evaluation at step 5 of 10" in flags["ebpo/seed2"] and not runs.loc["ebpo/seed2", "in_tables"]
    )
    assert "metrics.jsonl: 1 unreadable line(s)" in flags["ebpo/seed3"]
    assert "eval.jsonl: 2 unreadable or invalid row(s)" in flags["ebpo/seed3"]  # torn line + no problem_id
    assert (
        "run.json unreadable" in flags["dapo/seed1"] and "spec.resolved.yaml missing" in flags["dapo/seed1"]
    )
    assert "no evaluation rows" in flags["dapo/seed1"]
    assert set(data.metrics.loc[data.metrics["run_id"] == "ebpo/seed3", "step"]) == set(range(1, 7))
    a = analyse(data)
    assert a.cells["ebpo"]["level1"].n == 2 and a.cells["grpo"]["level1"].n == 3
    assert a.diffs["ebpo"]["level1"].n == 2  # seeds 1 and 3 matched

    report = build_reports(tmp_path, exp, out=tmp_path / "reports")[0].read_text()
    assert "## Run status" in report and "7 runs: 1 completed" not in report
    assert "| ebpo/seed2 | failed | 5 | no |" in report
    assert "1 run(s) are not in the tables" not in report and "2 run(s) are not in the tables" in report
    csv = (tmp_path / "reports/broken/tables/runs.csv").read_text()
    assert csv.count("\n") == 8


# ---------------------------------------------------------------- layouts and reported rows
def test_table2_layout_with_reported_rows_never_invents_ebpo_cells(tmp_path):
    exp = tmp_path / "gsweep"
    rng = np.random.default_rng(2)
    benches = ["aime24", "MATH-500"]
    for arm in ("grpo", "ebpo", "dapo"):
        for g in (4, 8):
            for seed in (1, 2):
                write_run(
                    exp,
                    arm,
                    seed,
                    random_scores(rng, benches, 0.5),
                    g=g,
                    paper_table="table2",
                    model="Qwen/Qwen3-8B",
                )
    a = analyse(load_experiment(exp))
    assert a.layout == "table2" and a.avg_over == ["math500", "aime24"]
    keys = [t.key for t in a.tables]
    assert keys == ["table2", "table2_detail", "comparison"]
    pivot = a.tables[0]
    assert pivot.columns == ["G=4", "G=8", "G=16", "G=32"]
    rep = {r.label: r for r in pivot.rows if r.source == REPORTED}
    assert rep["GRPO"].cells["G=8"].mean == 54.26 and rep["GRPO"].cells["G=4"].mean == 58.72
    assert rep["GRPO"].flags["G=4"] == "table1" and rep["EBPO"].cells["G=32"].mean == 62.41
    detail = a.tables[1]
    labels = [(r.label, r.source, r.lead["G"]) for r in detail.rows]
    i = labels.index(("ebpo", REPRODUCED, "8"))
    assert labels[i + 1] == ("EBPO", REPORTED, "8")
    assert set(detail.rows[i + 1].cells) == {"avg"}  # no per-benchmark EBPO number exists in the paper
    assert set(a.ref_of.items()) >= {("ebpo (G=8)", "grpo (G=8)"), ("dapo (G=4)", "grpo (G=4)")}
    md = to_markdown(pivot)
    assert "| EBPO | reported (paper) |" in md and "**65.54**\u2020" in md and "62.41\u2020" in md


def test_table1_reported_rows_beside_reproduced_with_bold_and_marks(tmp_path):
    exp = tmp_path / "t1"
    rng = np.random.default_rng(3)
    benches = ["math500", "aime24", "aime25", "amc23", "olympiadbench"]
    for seed in (1, 2):
        write_run(exp, "grpo", seed, random_scores(rng, benches, 0.3), paper_table="table1")
        write_run(exp, "ebpo", seed, random_scores(rng, benches, 0.8), paper_table="table1")
    a = analyse(load_experiment(exp))
    t = a.tables[0]
    assert [(r.label, r.source) for r in t.rows] == [
        ("grpo", REPRODUCED),
        ("GRPO", REPORTED),
        ("ebpo", REPRODUCED),
        ("EBPO-topic", REPORTED),
        ("Dr GRPO", REPORTED),
        ("DAPO", REPORTED),
        ("EntropyMech", REPORTED),
    ]
    md = to_markdown(t)
    assert "**89.53**" in md and "**76.80**\u2020" in md  # best reported AMC23 / MATH-500
    assert "| GRPO | reported (paper) | 65.60 | 50.21 | 42.29 | **89.53** | 45.99 | 58.72 |" in md
    assert "\u2020 third-party reading of the paper" in md


def test_table3_layout_and_synthetic_levels_drop_paper_rows(tmp_path):
    rng = np.random.default_rng(4)
    for seed in (1, 2):
        write_run(
            tmp_path / "abl",
            "ebpo-topic",
            seed,
            random_scores(rng, ["aime25"], 0.5),
            paper_table="table3",
            order="fixed",
        )
        write_run(
            tmp_path / "abl", "ebpo-naive", seed, random_scores(rng, ["aime25"], 0.5), paper_table="table3"
        )
        write_run(tmp_path / "syn", "grpo", seed, random_scores(rng, ["level1"], 0.5), paper_table="table1")
    a = analyse(load_experiment(tmp_path / "abl"), reference="ebpo-naive")
    t = a.tables[0]
    assert t.key == "table3" and t.lead == ["data order"]
    rows = [(r.label, r.source, r.lead.get("data order")) for r in t.rows]
    assert rows[:2] == [("ebpo-naive", REPRODUCED, "shuffle"), ("EBPO-naive", REPORTED, "")]
    assert rows[2] == ("ebpo-topic", REPRODUCED, "fixed") and rows[3][:2] == ("EBPO-topic", REPORTED)
    assert a.ref_of == {"ebpo-topic": "ebpo-naive"}
    assert any("not in the tables" in n for n in analyse(load_experiment(tmp_path / "abl")).notes)
    syn = analyse(load_experiment(tmp_path / "syn"))
    assert syn.paper == [] and any("not comparable" in n for n in syn.notes)


# ---------------------------------------------------------------- files, figures, reproducibility
def _two_experiments(root: Path) -> None:
    rng = np.random.default_rng(5)
    for arm in ("grpo", "ebpo"):
        for g in (2, 4):
            for seed in (1, 2):
                write_run(root / "gs", arm, seed, random_scores(rng, ["level1", "level2"], 0.5), g=g)
    write_run(root / "one", "ebpo", 1, random_scores(rng, ["level1"], 0.5))


def test_build_all_writes_reports_figures_and_index_reproducibly(tmp_path):
    from matplotlib.image import imread

    _two_experiments(tmp_path / "results")
    (tmp_path / "results" / "not-an-experiment").mkdir()
    out = tmp_path / "reports"
    paths = build_reports(tmp_path / "results", out=out, latex=True)
    assert paths == [out / "gs/report.md", out / "one/report.md", out / "index.md"]
    index = paths[-1].read_text()
    assert "[report](gs/report.md)" in index and "[report](one/report.md)" in index
    figs = out / "gs/figures"
    for name in ("training_curves", "final_pass1", "pass1_vs_group_size", "pass_at_k"):
        png = figs / f"{name}.png"
        assert png.stat().st_size > 10_000 and (figs / f"{name}.svg").stat().st_size > 10_000
        assert imread(png)[..., :3].std() > 0.05  # not a blank canvas
    report = paths[0].read_text()
    assert "![training curves](figures/training_curves.png)" in report
    assert "### Avg Pass@1 (%) by group size G" in report and "Provenance" in report
    assert "Table 2" not in report and "Layout: arms x benchmarks by group size G (no paper layout" in report
    assert "abc123def456 (8 runs)" in report
    assert (
        "ebpo (G=2) - grpo (G=2) on Avg: " in report
        and "Whether ebpo beats grpo on average cannot be decided here at G=2, G=4: 2 seeds" in report
    )
    assert (out / "gs/tables/pass1_by_group_size.tex").read_text().startswith("\\begin{tabular}")
    one = paths[1].read_text()
    assert "(n=1)" in one and "Some cells rest on fewer than 3 seeds" in one
    before = {p: p.read_bytes() for p in (out / "gs").rglob("*") if p.suffix in (".md", ".csv", ".svg")}
    build_reports(tmp_path / "results", out=out, latex=True)
    assert all(p.read_bytes() == b for p, b in before.items())


def test_report_never_imports_torch(tmp_path):
    rng = np.random.default_rng(6)
    for arm in ("grpo", "ebpo"):
        write_run(tmp_path / "results" / "q", arm, 1, random_scores(rng, ["level1"], 0.5))
    code = (
        "import sys; from pathlib import Path; from ebpo_bench.report import build_reports\n"
        f"p = build_reports(Path({str(tmp_path / 'results')!r}), out=Path({str(tmp_path / 'reports')!r}))\n"
        "assert p[0].exists()\n"
        "bad = [m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules]\n"
        "assert not bad, bad\nprint('OK')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stderr


def test_missing_experiment_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no experiment folder"):
        build_reports(tmp_path, tmp_path / "nope")
