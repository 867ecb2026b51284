"""Honest numbers in `ebpo-bench report` (issue #18): test units, < 3 seeds, layouts, roots, tiny scale,
bolding, the spec's reference arm and side-by-side comparison, on synthetic result folders."""

from __future__ import annotations

import numpy as np
import pytest
from doubles.result_folders import random_scores, write_run

from ebpo_bench.cli import main
from ebpo_bench.errors import UserError
from ebpo_bench.report import build_reports, load_experiment
from ebpo_bench.report.markdown import reading
from ebpo_bench.report.render import to_markdown
from ebpo_bench.report.tables import REPORTED, analyse

PAPER = ["math500", "aime24", "aime25", "amc23", "olympiadbench"]


def test_one_seed_states_the_unit_and_makes_no_directional_claim(tmp_path):
    rng = np.random.default_rng(0)
    write_run(tmp_path / "one", "grpo", 1, random_scores(rng, ["level1", "level2"], 0.2, problems=40))
    write_run(tmp_path / "one", "ebpo", 1, random_scores(rng, ["level1", "level2"], 0.9, problems=40))
    a = analyse(load_experiment(tmp_path / "one"))
    assert a.diffs["ebpo"]["avg"].p < 0.001  # the run pair differs far beyond problem noise ...
    text = "\n".join(reading(a))
    assert text.startswith("**Evidence level: 1 training seed per arm (fewer than 3).**")
    assert "test unit: problems only, 80 problems; 1 training seed, so seed-to-seed" in text
    assert "Whether ebpo beats grpo on average cannot be decided here: 1 seed per arm" in text
    assert "holds" not in text and "significant at 5%" not in text  # ... but no claim about the methods
    assert "1 seeds" not in text


def test_three_seeds_name_seeds_and_problems_as_the_unit(tmp_path):
    rng = np.random.default_rng(1)
    for seed in (1, 2, 3):
        write_run(tmp_path / "e", "grpo", seed, random_scores(rng, ["level1"], 0.2, problems=30))
        write_run(tmp_path / "e", "ebpo", seed, random_scores(rng, ["level1"], 0.9, problems=30))
    text = "\n".join(reading(analyse(load_experiment(tmp_path / "e"))))
    assert "Evidence level" not in text
    assert "test unit: 3 training seeds x 30 problems, both resampled" in text
    assert "holds here at the 5% level (test over 3 seeds and problems)" in text


def test_paper_layout_only_when_the_spec_declares_paper_table(tmp_path):
    rng = np.random.default_rng(2)
    for exp, pt in (("own", None), ("paper", "table1")):
        for arm in ("grpo", "ebpo"):
            write_run(tmp_path / "res" / exp, arm, 1, random_scores(rng, ["aime24"], 0.5), paper_table=pt)
    own, paper = (
        build_reports(tmp_path / "res", tmp_path / "res" / e, tmp_path / "rep")[0] for e in ("own", "paper")
    )
    md = own.read_text()
    assert "Table 1" not in md and "table1" not in md and "### Pass@1 (%) by arm" in md
    assert "Layout: arms x benchmarks (no paper layout: the spec declares no paper_table)" in md
    md = paper.read_text()
    assert "### Table 1: Pass@1 (%) by method" in md and "Layout: the paper's table1" in md


def test_a_results_root_is_refused_and_several_experiments_go_side_by_side(tmp_path, capsys):
    rng = np.random.default_rng(3)
    root = tmp_path / "results"
    for exp, p in (("a", 0.3), ("b", 0.7)):
        for arm in ("grpo", "ebpo"):
            for seed in (1, 2, 3):
                write_run(root / exp, arm, seed, random_scores(rng, ["level1"], p))
    with pytest.raises(
        UserError, match=r"holds the runs of 2 experiment\(s\) \(a, b\); it looks like a results root"
    ):
        build_reports(root, root, tmp_path / "rep")
    with pytest.raises(SystemExit) as e:
        main(["report", str(root), "--out", str(tmp_path / "rep")])
    assert e.value.code == 2 and "side by side" in capsys.readouterr().err
    paths = build_reports(root, [root / "a", root / "b"], tmp_path / "rep")
    assert [p.name for p in paths] == ["report.md", "report.md", "compare_a_b.md"]
    md = paths[-1].read_text()
    assert (
        "# Side by side: a, b" in md
        and "| a | Does EBPO beat GRPO? | grpo | Level 1 | 3 | [report](a/report.md) |" in md
    )
    assert "| ebpo - grpo |" not in md and "| ebpo | " in md and "## Reading: b" in md
    main(["report", str(root / "a"), str(root / "b"), "--out", str(tmp_path / "rep2")])
    assert (tmp_path / "rep2" / "compare_a_b.md").exists()


def test_tiny_profile_uses_the_synthetic_levels_and_bolds_no_zero_ties(tmp_path):
    rng = np.random.default_rng(4)
    exp = tmp_path / "paper_table1-tiny"
    zeros = {b: [[0, 0]] * 2 for b in PAPER}
    for seed in (1, 2, 3):
        write_run(
            exp,
            "grpo",
            seed,
            {**zeros, **random_scores(rng, ["level1", "level2"], 0.2, 20, 2)},
            paper_table="table1",
        )
        write_run(
            exp,
            "ebpo",
            seed,
            {**zeros, **random_scores(rng, ["level1", "level2"], 0.8, 20, 2)},
            paper_table="table1",
        )
    a = analyse(load_experiment(exp))
    assert a.signal_levels and a.avg_over == ["level1", "level2"] and a.avg_header == "Avg (synthetic levels)"
    assert a.diffs["ebpo"]["avg"].mean > 30 and a.diffs["ebpo"]["avg"].significant
    assert all("avg" not in r.cells for r in a.tables[0].rows if r.source == REPORTED)
    text = "\n".join(reading(a))
    assert "Avg (synthetic levels) = mean over Level 1, Level 2." in text
    assert "ebpo - grpo on Avg (synthetic levels): +" in text and "vs reported (paper)" not in text
    assert any("carry no signal" in n for n in a.notes)
    assert set(a.diffs["ebpo"]) == {"level1", "level2", "avg"} and "significant at 5% on 2 of 2" in text
    md = to_markdown(a.tables[0])
    assert "**0.0**" not in md and "| Avg (synthetic levels) |" in md
    assert "| ebpo | reproduced | 0.0 [0.0, 0.0] n=3 |" in md


def test_table2_detail_bolds_the_best_per_group_size(tmp_path):
    rng = np.random.default_rng(5)
    exp = tmp_path / "gs"
    p = {("grpo", 4): 0.9, ("ebpo", 4): 0.1, ("grpo", 8): 0.1, ("ebpo", 8): 0.9}
    for (arm, g), q in p.items():
        for seed in (1, 2):
            write_run(
                exp, arm, seed, random_scores(rng, ["aime24"], q, problems=20), g=g, paper_table="table2"
            )
    detail = next(t for t in analyse(load_experiment(exp)).tables if t.key == "table2_detail")
    md = to_markdown(detail).splitlines()
    row = {(ln.split("|")[1].strip(), ln.split("|")[2].strip()): ln for ln in md if "reproduced" in ln}
    assert "**" in row[("grpo", "4")] and "**" in row[("ebpo", "8")]  # best at each G, not overall
    assert "**" not in row[("ebpo", "4")].split("|")[5]


def test_spec_report_reference_sets_the_reference_arm(tmp_path):
    rng = np.random.default_rng(6)
    exp = tmp_path / "abl"
    for seed in (1, 2, 3):
        for arm in ("ebpo-topic", "ebpo-naive"):
            write_run(
                exp,
                arm,
                seed,
                random_scores(rng, ["aime25"], 0.5),
                paper_table="table3",
                extra_spec={"report": {"reference": "ebpo-naive"}},
            )
    a = analyse(load_experiment(exp))
    assert a.reference == "ebpo-naive" and a.ref_of == {"ebpo-topic": "ebpo-naive"}
    assert analyse(load_experiment(exp), reference="ebpo-topic").reference == "ebpo-topic"  # --reference wins


def test_spec_report_block_validates_and_leaves_the_spec_hash_alone(tmp_path):
    from ebpo_bench.config.load import load_experiment as load_spec
    from ebpo_bench.config.load import spec_hash

    exp = load_spec("specs/topic_ablation.yaml")
    assert exp.spec.report.reference == "ebpo_naive"
    run = exp.runs[0]
    assert spec_hash(run) == spec_hash(
        run.model_copy(update={"report": run.report.model_copy(update={"reference": "x"})})
    )
