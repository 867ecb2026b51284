"""The ``paper_exact`` grader (the EBPO authors' eval rule) and the ``--preset paper`` wiring."""

from __future__ import annotations

import json

from ebpo_bench.eval import benchmarks as B
from ebpo_bench.eval.outputs import format_table, write_outputs
from ebpo_bench.eval.paper_exact import (
    PaperExactGrader,
    extract_paper_answer,
    make_grader,
    normalize_final_answer,
    paper_exact_correct,
)


def test_extraction_reads_the_second_to_last_match_of_the_last_300_characters():
    assert extract_paper_answer("work\nAnswer: 42") == "42"
    assert extract_paper_answer("Answer: 41\nmore\nANSWER : 42") == "41"  # several: the second-to-last
    assert extract_paper_answer("Answer: 7\n" + "x" * 300) == "[INVALID]"  # outside the last 300 chars
    assert extract_paper_answer("\\boxed{42}") == "[INVALID]"


def test_minerva_normalisation_hand_values():
    assert normalize_final_answer("$x = 5$") == "5"
    assert normalize_final_answer("25.0") == "25"
    assert normalize_final_answer("\\frac12") == "\\frac{1}{2}"
    assert normalize_final_answer("\\text{(B)}") == "(B)"
    assert normalize_final_answer("1,000") == "1000"
    assert normalize_final_answer("30^\\circ") == "30"
    assert normalize_final_answer("5 \\text{ cents}") == "5"
    assert normalize_final_answer("\\boxed{7}") == "7"


def test_exact_strings_are_stricter_than_math_verify():
    assert paper_exact_correct("Answer: 25", "25") == (True, "25")
    assert paper_exact_correct("Answer: $\\frac{1}{2}$", "\\frac12")[0]
    assert not paper_exact_correct("Answer: 1/2", "\\frac{1}{2}")[0]  # math-verify: equal
    assert not paper_exact_correct("Answer: 025", "25")[0]
    assert not paper_exact_correct("Answer: 0.5", "\\frac{1}{2}")[0]
    assert not paper_exact_correct("\\boxed{25}", "25")[0]  # no Answer: line


def test_grader_interface_and_scales():
    with make_grader("paper_exact", "answer_line") as g:
        res = g.score(["Answer: 3", "Answer: 4", "nothing"], ["3", "3", "3"])
    assert [r.correct for r in res] == [True, False, False] and [r.score for r in res] == [1.0, 0.0, 0.0]
    assert [r.reason for r in res] == ["correct", "wrong", "no_answer"] and res[2].extracted is None
    assert g.name == "paper_exact" and g.stats == {"checks": 3, "no_answer": 1}
    assert PaperExactGrader("plus_minus_one").score(["Answer: 1"], ["2"])[0].score == -1.0


def test_paper_preset_uses_the_authors_eval_prompt():
    prompt = B.render("dapo_eval", "What is 1+1?")
    assert prompt.startswith("Solve the following math problem step by step.")
    assert prompt.endswith("\n\nWhat is 1+1?") and "Remember" not in prompt  # the training prompt's line
    assert "Remember" in B.render("dapo", "What is 1+1?")
    assert B.PRESETS["paper"]["template"] == "dapo_eval" and B.PRESETS["paper"]["grader"] == "paper_exact"


def test_summary_and_table_name_the_grader(tmp_path):
    rows = [
        {"benchmark": "aime24", "problem_id": "1", "sample": 0, "extracted": "3", "score_correct": True}
        | {"grader": "paper_exact", "step": 0, "score": 1.0, "length": 3, "timed_out": False}
    ]
    summary = write_outputs(rows, tmp_path, settings={"grader": "paper_exact"}, harness="native")
    assert json.loads((tmp_path / "eval_summary.json").read_text())["grader"] == "paper_exact"
    assert "graded by paper_exact (the authors' exact rule)" in format_table(summary)
    assert json.loads((tmp_path / "eval.jsonl").read_text().splitlines()[0])["grader"] == "paper_exact"
