"""Estimator-lab verdicts with noise thresholds, the policy setup in the report, the U-shaped pool and the
stationarity caveat (issue #18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ebpo_bench.lab.claims import claim_entropy, claim_mse, claim_no_help
from ebpo_bench.lab.frames import Lab
from ebpo_bench.lab.report import build_lab_report
from ebpo_bench.lab.runlab import run_lab
from ebpo_bench.lab.spec import load_lab_spec

ROOT = Path(__file__).resolve().parents[2]
EST = {"eb": {"type": "ebpo", "options": {}}, "eb_raw": {"type": "ebpo", "options": {"adv_norm": "none"}}}


def hand_lab(tmp_path: Path, gap: float, raw_gap: float = 0.3) -> Path:
    """A lab folder with learning curves only: eb's final entropy = grpo's + gap (+ seed noise)."""
    d = tmp_path / f"lab{gap}"
    d.mkdir()
    spec = {"policy": {"outcomes": 4, "optimizer": "sgd", "lr": 10.0, "seeds": 8, "steps": 2}}
    est = {**EST, "grpo": {"type": "grpo", "options": {}}, "grpo_bn": {"type": "grpo_bn", "options": {}}}
    rec = {"name": d.name, "kind": "simulation", "status": "completed", "estimators": est, "spec": spec}
    (d / "lab.json").write_text(json.dumps(rec))
    rng, rows = np.random.default_rng(0), []
    for g in (2, 4):
        for seed in range(8):
            base = 0.6 + 0.05 * rng.standard_normal()
            for step, frac in ((0, 0.0), (1, 0.5), (2, 1.0)):
                ent = {"grpo": base, "grpo_bn": base - 0.1, "eb": base + gap, "eb_raw": base + raw_gap}
                for e, h in ent.items():
                    rows.append(
                        {
                            "estimator": e,
                            "G": g,
                            "seed": seed,
                            "step": step,
                            "success": 0.5 + 0.3 * frac,
                            "entropy": 1.3 - (1.3 - h) * frac + 0.001 * rng.standard_normal(),
                        }
                    )
    pd.DataFrame(rows).to_csv(d / "learning.csv", index=False)
    return d


def test_entropy_verdict_needs_a_gap_beyond_noise_and_counts_z_scored_ebpo_only(tmp_path):
    tiny = claim_entropy(Lab(hand_lab(tmp_path, 0.003)))
    assert tiny["verdict"] == "not supported"  # 0.003 nats is below the threshold (1% of log 4 = 0.014)
    assert "noise threshold 0.014" in tiny["evidence"][0]
    assert any(e.startswith("not counted (unnormalised") and "eb_raw" in e for e in tiny["evidence"])
    big = claim_entropy(Lab(hand_lab(tmp_path, 0.2)))
    assert big["verdict"] == "supported" and "at 2 of 2 G" in big["evidence"][0]


def test_report_states_the_policy_setup_and_the_learning_rate_effect(tmp_path):
    text = build_lab_report(hand_lab(tmp_path, 0.2), tmp_path / "rep").read_text()
    setup = text[text.index("## Policy simulation setup") : text.index("## Claims")]
    assert "K = 4 answers" in setup and "SGD with lr 10.0" in setup and "8 seeds" in setup
    assert "multiplies the learning rate" in setup and "not an estimator ranking" in setup
    assert "Example: grpo_bn differs from grpo only in its normalisation" in setup


def test_u_shaped_pool_is_where_ebpo_does_not_help(tmp_path):
    spec = {
        "name": "u",
        "kind": "simulation",
        "estimators": {"registered": False, "variants": {"eb": {"type": "ebpo"}, "gm": {"type": "grpo"}}},
        "distributions": {
            "ushaped": {"type": "beta", "a": 0.1, "b": 0.1},
            "uniform": {"type": "beta", "a": 1, "b": 1},
        },
        "stats": {
            "group_sizes": [2, 8],
            "prompts_per_batch": 64,
            "pool_size": 256,
            "batches": 4,
            "seeds": 3,
            "orders": ["shuffled"],
        },
        "penalty": {"enabled": False},
        "policy": {"enabled": False},
    }
    lab = Lab(run_lab(load_lab_spec(spec), tmp_path / "results", quiet=True))
    mse = claim_mse(lab)
    assert mse["verdict"] == "partly supported"
    assert any(e.startswith("NOT lower: eb on ushaped/shuffled at G=2, 8") for e in mse["evidence"])
    assert any("stationary" in e and "e.g. spo" in e and "1.0 times" in e for e in mse["evidence"])
    no_help = claim_no_help(lab)
    assert no_help["verdict"] == "observed"
    line = next(e for e in no_help["evidence"] if e.startswith("eb on ushaped/shuffled"))
    ratio = float(line.split("G=2: ")[1].split(" ")[0])
    assert 1.3 < ratio < 2.0 and "S_plug" in line and "uniform" not in " ".join(no_help["evidence"])


def test_shipped_spec_has_the_u_shaped_pool():
    spec = load_lab_spec(ROOT / "specs" / "estimator_lab.yaml")
    u = spec.distributions["ushaped"]
    assert (u.type, u.a, u.b) == ("beta", 0.1, 0.1)


def test_identical_curves_are_merged_into_one_labelled_line():
    from ebpo_bench.lab.figures import _label, merged

    a, b = np.array([1.0, 0.5]), np.array([1.0, 0.4])
    groups = merged({"grpo": a, "rloo": b, "opo": a.copy(), "grpo_bn": a + 1e-13})
    assert groups == [["grpo", "opo", "grpo_bn"], ["rloo"]] and _label(groups[0]) == "grpo = opo = grpo_bn"
