"""Report figures (issue #18): facets by G with one colour per arm, no structurally-zero or duplicate
panels, identical curves merged, CI notes; each written and readable (checked by eye too)."""

from __future__ import annotations

import json

import numpy as np
from doubles.result_folders import random_scores, write_run
from matplotlib.image import imread

from ebpo_bench.report import build_reports, load_experiment
from ebpo_bench.report.figures import _panel_keys


def sweep(root, seeds=(1,)):
    rng = np.random.default_rng(0)
    for arm in ("grpo", "grpo_bn", "ebpo"):
        for g in (2, 4, 8):
            for seed in seeds:
                d = write_run(
                    root / "gs",
                    arm,
                    seed,
                    random_scores(rng, ["level1", "level2"], 0.5),
                    g=g,
                    metrics={"loss/kl": 0.0},
                )
                # accuracy = reward under 0/1 rewards; grpo_bn's curves identical to grpo's
                rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
                for r in rows:
                    r["train/reward_mean"] = 0.1 * r["step"] + 0.01 * g + (0.05 if arm == "ebpo" else 0.0)
                    r["train/accuracy"] = r["train/reward_mean"]
                (d / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_training_curves_drop_zero_and_duplicate_panels_and_facet_by_g(tmp_path):
    sweep(tmp_path / "res")
    data = load_experiment(tmp_path / "res" / "gs")
    assert _panel_keys(data.metrics) == ["train/reward_mean", "groups/all_fail_frac", "ebpo/shrinkage"]
    md = build_reports(tmp_path / "res", tmp_path / "res" / "gs", tmp_path / "rep")[0].read_text()
    figs = tmp_path / "rep" / "gs" / "figures"
    img = imread(figs / "training_curves.png")
    assert img.shape[1] > 1.2 * img.shape[0]  # 3 G columns x 3 metric rows, not a 15-colour panel
    svg = (figs / "training_curves.svg").read_text()
    assert "grpo = grpo_bn (identical)" in svg or "grpo_bn = grpo (identical)" in svg
    assert "KL to reference" not in svg and "Training accuracy" not in svg
    fp = (figs / "final_pass1.svg").read_text()
    assert "no CI for" in fp and "1 seed" in fp
    assert "![training curves](figures/training_curves.png)" in md


def test_spec_report_smooth_sets_the_rolling_window(tmp_path):
    sweep(tmp_path / "res")
    for spec in (tmp_path / "res" / "gs").rglob("spec.resolved.yaml"):
        spec.write_text(spec.read_text() + "report: {smooth: 3}\n")
    build_reports(tmp_path / "res", tmp_path / "res" / "gs", tmp_path / "rep")
    svg = (tmp_path / "rep" / "gs" / "figures" / "training_curves.svg").read_text()
    assert "rolling mean over 3 steps" in svg  # 10 steps: the default window would be 1 (no smoothing)
