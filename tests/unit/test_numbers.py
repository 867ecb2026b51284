"""Grading of numbers: scientific notation, units, percent, tolerance, malformed golds
(ebpo_bench.data.numbers, answers.fast_path / score_one, eval.gold_fixes), with the failing items of
issue #18 taken from the real data."""

from __future__ import annotations

import re

import pytest

from ebpo_bench.data.answers import fast_path, score_one
from ebpo_bench.data.numbers import REL_TOL, compare_numbers, parse_number, sci_to_latex, strip_units
from ebpo_bench.eval.benchmarks import get_benchmark, load_benchmark, resolve_data_dir
from ebpo_bench.eval.gold_fixes import gold_notes

HAVE_DATA = (resolve_data_dir() / get_benchmark("minerva_math").local_path).is_file()
needs_data = pytest.mark.skipif(not HAVE_DATA, reason="benchmark data (../shared/data) not present")


@pytest.mark.parametrize(
    "text, value",
    [
        ("4.5e33", 4.5e33),
        ("4.5E33", 4.5e33),
        ("2.7778e-6", 2.7778e-6),
        ("4.5 \\times 10^{33}", 4.5e33),
        ("6.62\\times10^{-34}", 6.62e-34),
        ("3 \\cdot 10^8", 3e8),
        ("10^{-5}", 1e-5),
        (".0000672", 6.72e-5),
        ("1,234,567", 1234567.0),
        ("9.6 \\AA", 9.6),
        ("6.4 \\text { days }", 6.4),
        ("6.4 days", 6.4),
        ("166 \\text{cm}^2", 166.0),
        ("4.2\\%", 4.2),
        ("8 \\%", 8.0),
        ("30^\\circ", 30.0),
        ("5.4 \\text{ cents}", 5.4),
        ("1,2", None),  # a tuple, not a thousands separator
        ("2x", None),
        ("e", None),
        ("\\frac{1}{3}", None),
        ("\\text{Evelyn}", None),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == (None if value is None else pytest.approx(value, rel=1e-12))


def test_units_are_stripped_only_when_a_number_remains():
    assert strip_units("\\frac{270}7\\text{ degrees}") == "\\frac{270}7"
    assert strip_units("\\text{Evelyn}") == "\\text{Evelyn}"
    assert strip_units("x \\text{ cm}") == "x \\text{ cm}"
    assert sci_to_latex("4.5e33") == "4.5 \\times 10^{33}" and sci_to_latex("1e-5") == "1 \\times 10^{-5}"


def test_tolerance_cannot_equate_a_third_significant_digit():
    assert REL_TOL < 0.01 / 9.99  # the smallest relative gap between two values differing in digit 3
    assert compare_numbers("0.0000670", ".0000672") is False  # math-verify rounds both to 0.000067
    assert compare_numbers("1\\times10^{-34}", "6.62\\times10^{-34}") is False  # math-verify: both 0
    assert compare_numbers("9.99", "9.98") is False and compare_numbers("6.63", "6.62") is False
    assert compare_numbers("6.62e-34", "6.62 \\times 10^{-34}") is True
    assert compare_numbers("403.66", "4.5e33") is False  # 4.5 * e * 33 = 403.66 under a LaTeX reading
    assert compare_numbers("1/3", "0.33") is None  # not plain numbers: left to math-verify


@pytest.mark.parametrize(
    "gold, response, correct",
    [
        ("4.5e33", "\\boxed{4.5 \\times 10^{33}}", True),
        ("4.5e33", "\\boxed{403.6653}", False),
        ("4.5e33", "Answer: $4.5 \\cdot 10^{33}$ erg", True),
        ("1e-5", "\\boxed{\\frac{1}{100000}}", True),  # gold rewritten as LaTeX for math-verify
        ("6.62\\times10^{-34}", "\\boxed{6.62e-34}", True),
        ("\\frac{270}7\\text{ degrees}", "\\boxed{\\frac{270}{7}}", True),
        ("62.5%", "\\boxed{62.5}", True),
        ("0.5", "\\boxed{\\frac12}", True),
    ],
)
def test_score_one_numbers(gold, response, correct):
    assert score_one(response, gold) is correct


def test_fast_path_decides_numbers():
    assert fast_path("2.0", "2") is True and fast_path("4.5 \\times 10^{33}", "4.5e33") is True
    assert fast_path("\\frac12", "0.5") is None


@needs_data
def test_minerva_scientific_golds_grade_as_numbers():
    golds = {e.id: e.answer for e in load_benchmark("minerva_math")}
    sci = {k: g for k, g in golds.items() if re.fullmatch(r"[\d.]+e[+-]?\d+", g)}
    assert len(sci) == 58 and golds["1"] == "4.5e33"
    for k, g in sci.items():
        m, e = g.split("e")
        assert score_one(f"\\boxed{{{m} \\times 10^{{{int(e)}}}}}", g), k
        assert score_one(f"so $x = {m}\\times10^{{{int(e)}}}$.\nAnswer: {m} \\cdot 10^{{{int(e)}}}", g), k
        assert not score_one(f"\\boxed{{{float(m) * 2.718281828 * int(e):.4f}}}", g), k  # the Euler reading


@needs_data
def test_minerva_unit_styles_and_fixed_gold():
    golds = {e.id: e.answer for e in load_benchmark("minerva_math")}
    for k in ("9", "52", "234"):  # the solutions end "\boxed{x} \AA"
        assert score_one(f"\\boxed{{{golds[k]} \\AA}}", golds[k]), k
    assert score_one(f"\\boxed{{{golds['204']} \\text {{ days }}}}", golds["204"])  # Minerva's own spacing
    assert golds["5"] == "\\arcsin(10/13)" and any("np.arcsin" in n for n in gold_notes("minerva_math"))
    assert score_one("\\boxed{\\arcsin(10/13)}", golds["5"]) and score_one(
        "\\boxed{\\sin^{-1}(10/13)}", golds["5"]
    )
    assert not score_one("\\boxed{403.66}", golds["1"])


@needs_data
def test_olympiad_percent_both_ways_and_tiny_decimals():
    oly = {e.id: e.answer for e in load_benchmark("olympiadbench")}
    assert oly["2592"] == "4.2" and score_one("\\boxed{4.2\\%}", oly["2592"])  # unit field '%'
    assert oly["2276"] == "8 \\%" and score_one("\\boxed{8}", oly["2276"])
    m500 = {e.id: e.answer for e in load_benchmark("math500")}
    gold = m500["test/number_theory/598.json"]
    assert (
        gold == ".0000672"
        and not score_one("\\boxed{0.0000670}", gold)
        and score_one("\\boxed{6.72e-5}", gold)
    )
