"""The estimator lab through the real CLI: ``ebpo-bench run specs/estimator_lab.yaml && ebpo-bench report``.

Runs the shipped spec as users do (about half a minute on 2 cores) and checks that the report has the
figures, tables and the computed claims section the issue asks for, for every registered estimator.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES = (
    "mse_vs_group_size",
    "zero_signal_vs_group_size",
    "failure_penalty",
    "learning_success",
    "learning_entropy",
    "prior_error",
)


def cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebpo_bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab_results(tmp_path_factory) -> Path:
    """The shipped spec run once through the CLI (about a minute on 2 cores), shared by the tests here."""
    root = tmp_path_factory.mktemp("lab") / "results"
    p = cli("validate", "specs/estimator_lab.yaml")
    assert p.returncode == 0, p.stderr
    p = cli("run", "specs/estimator_lab.yaml", "--results", str(root), "--quiet")
    assert p.returncode == 0, p.stderr
    assert "estimator lab finished" in p.stdout
    return root


def test_shipped_lab_spec_runs_and_reports(lab_results, tmp_path):
    exp = lab_results / "estimator_lab"
    rec = json.loads((exp / "lab.json").read_text())
    assert rec["kind"] == "simulation" and rec["status"] == "completed"

    p = cli("report", str(exp), "--out", str(tmp_path / "reports"))
    assert p.returncode == 0, p.stderr
    out = tmp_path / "reports" / "estimator_lab"
    text = (out / "report.md").read_text()
    for needle in ("## Claims", "Thm 3.3", "Thm 3.2", "Cor 3.5", "Prop 3.6", "Prop 3.8", "all-success"):
        assert needle in text, needle
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").stat().st_size > 10_000, name
        assert (out / "figures" / f"{name}.svg").is_file(), name
    for table in ("metrics", "reference", "penalty", "learning_final", "claims"):
        assert (out / "tables" / f"{table}.csv").is_file(), table

    # every registered estimator, plus the spec's variants, in every sweep; 20 seeds of learning curves
    stats = pd.read_csv(exp / "estimator_stats.csv")
    learning = pd.read_csv(exp / "learning.csv")
    assert set(stats.estimator) == set(learning.estimator) == set(rec["estimators"])
    assert sorted(stats.G.unique()) == [2, 4, 8, 16, 32]
    assert learning.seed.nunique() >= 20


def test_report_of_all_experiments_keeps_the_lab_report(lab_results, tmp_path):
    """`ebpo-bench report` over a results root with a lab folder builds the lab report once and
    never overwrites it with an (empty) training-experiment report."""
    shutil.copytree(lab_results, tmp_path / "results")
    p = subprocess.run(
        [sys.executable, "-m", "ebpo_bench", "report"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("estimator_lab/report.md") == 1, p.stdout
    text = (tmp_path / "reports" / "estimator_lab" / "report.md").read_text()
    assert text.startswith("# Estimator lab")
