"""The files of one estimator-lab folder as frames, and the summaries shared by claims, figures and report.

Reads only what ``run_lab`` wrote (lab.json and the tidy CSVs); torch-free. Means are over seeds with
the standard error over seeds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


class Lab:
    """The files of one lab folder as frames."""

    def __init__(self, exp_dir: Path) -> None:
        self.record = json.loads((exp_dir / "lab.json").read_text())
        self.name = self.record.get("name", exp_dir.name)
        read = lambda k: (
            pd.read_csv(exp_dir / f"{k}.csv")
            if (exp_dir / f"{k}.csv").is_file()
            else pd.DataFrame(columns=["estimator", "G", "distribution", "order", "metric", "value", "seed"])
        )  # absent: empty
        self.stats, self.ref, self.penalty = read("estimator_stats"), read("reference"), read("penalty")
        self.learning, self.skipped = read("learning"), read("skipped")
        self.types = {k: v["type"] for k, v in self.record.get("estimators", {}).items()}
        self.estimators = list(self.types)

    def of_type(self, kind: str) -> list[str]:
        return [e for e, t in self.types.items() if t == kind]

    def reference(self, kind: str) -> str | None:
        """The estimator named ``kind`` (registry defaults), else the first of that type, else None."""
        return kind if kind in self.types else next(iter(self.of_type(kind)), None)

    def metric(self, name: str, frame: str = "stats") -> pd.DataFrame:
        df = getattr(self, frame)
        return df[df.metric == name]

    def prior_closed(self) -> pd.Series:
        """Closed-form prior errors (Prop. 3.8) per (distribution, metric)."""
        return (
            self.ref[self.ref.metric.astype(str).str.startswith("prior_mse_")]
            .groupby(["distribution", "metric"])
            .value.mean()
        )

    def cells(self) -> list[tuple[str, str]]:
        """(distribution, order) pairs of the stats sweep, in file order."""
        return list(
            self.stats[["distribution", "order"]].drop_duplicates().itertuples(index=False, name=None)
        )


def summarise(df: pd.DataFrame, by: list[str], col: str = "value") -> pd.DataFrame:
    """Mean, standard error over seeds and seed count per group."""
    g = df.groupby(by, sort=True)[col]
    out = pd.DataFrame({"mean": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count()), "n": g.count()})
    return out.reset_index()


def md_table(df: pd.DataFrame) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, (float, np.floating)) else str(v)
    rows = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    return "\n".join(rows + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in df.itertuples(index=False)])


def final_learning(lab: Lab) -> pd.DataFrame:
    """Per estimator and G: final success and entropy (mean and se over seeds)."""
    last = lab.learning[lab.learning.step == lab.learning.step.max()]
    return summarise(last, ["estimator", "G"], "success").merge(
        summarise(last, ["estimator", "G"], "entropy"),
        on=["estimator", "G", "n"],
        suffixes=("_success", "_entropy"),
    )
