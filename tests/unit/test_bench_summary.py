"""Benchmark bookkeeping: per-step rows from probe snapshots, summaries and the target verdicts."""

from __future__ import annotations

import pytest

from ebpo_bench.perf.probe import PHASES, PhaseProbe, step_rows
from ebpo_bench.perf.summary import quantile, render, summarise


def _snap(**kw: float) -> dict:
    return {**{p: 0.0 for p in PHASES}, "tokens": 0.0, **kw}


def test_step_rows_split_wall_into_phases_and_overhead():
    marks = [
        (0.0, _snap()),
        (1.0, _snap(generation=0.5, compute=0.3, tokens=10)),
        (3.0, _snap(generation=1.0, compute=1.0, reward=0.2, tokens=30)),
    ]
    rows = step_rows(marks)
    assert rows[0]["wall"] == 1.0 and rows[0]["overhead"] == pytest.approx(0.2) and rows[0]["tokens"] == 10
    assert rows[1]["generation"] == 0.5 and rows[1]["compute"] == pytest.approx(0.7)
    assert rows[1]["overhead"] == pytest.approx(2.0 - 0.5 - 0.7 - 0.2)


def test_probe_counts_only_the_outermost_call():
    probe = PhaseProbe()

    class Box:
        def inner(self):
            return 1

        def outer(self):
            return self.inner() + 1

    probe.wrap(Box, "inner", "compute")
    probe.wrap(Box, "outer", "generation")
    assert Box().outer() == 2 and Box().inner() == 1
    assert probe.totals["generation"] > 0 and probe.totals["compute"] > 0
    before = probe.totals["compute"]
    Box().outer()
    assert probe.totals["compute"] == before  # inner ran inside outer: charged to generation only
    probe.uninstall()
    assert "inner" in Box.__dict__ and Box.__dict__["inner"].__name__ == "inner"


def _run(wall: float, overhead: float, rss: float, n: int = 5) -> dict:
    row = {
        "wall": wall,
        "generation": wall / 2,
        "reward": 0.0,
        "advantage": 0.0,
        "compute": wall / 2 - overhead,
        "overhead": overhead,
        "tokens": 100.0,
    }
    return {"rows": [row] * n, "peak_rss_mb": rss, "threads": 2, "device": "cpu"}


def test_targets_report_met_and_missed():
    raw = {
        "ours": [_run(1.0, 0.05, 500)],
        "trl": [_run(2.0, 0.5, 600)],
        "estimators": [
            {
                "estimators": [
                    {"estimator": "ebpo", "P": 512, "G": 32, "median_s": 0.02, "max_s": 0.03},
                    {"estimator": "ebpo", "P": 512, "G": 4, "median_s": 0.001, "max_s": 0.001},
                ]
            }
        ],
    }
    s = summarise(raw, warmup=1)
    assert s["ours"]["steps"] == 4
    verdict = {t["target"].split(" ")[0] + t["target"].split(" ")[1]: t["met"] for t in s["targets"]}
    assert verdict == {"TRLstep": True, "ourpeak": True, "overhead≤": True, "everyestimator": False}
    md = render(
        {
            "summary": s,
            "config": {"spec": "x.yaml", "arm": "grpo", "seed": 1, "warmup": 1, "steps": 4},
            "created": "now",
            "provenance": {"host": "h"},
        }
    )
    assert "2.00×" in md and "**no**" in md and "| ebpo | 1.000 | 20.000 |" in md


def test_summary_needs_measured_steps():
    with pytest.raises(ValueError, match="increase --steps"):
        summarise({"ours": [_run(1.0, 0.1, 1, n=2)]}, warmup=2)
    assert quantile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
