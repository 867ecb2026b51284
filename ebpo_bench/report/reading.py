"""The reading of one experiment: what its paired differences support, stated with the unit of every test.

Each arm is compared with the reference arm at the same grid point (difference of means, CI, p-value).
Every test says what it resamples: training seeds and problems, or problems only when an arm has
fewer than ``MIN_SEEDS`` seeds. Below that, no sentence claims that one arm beats another: a p-value
over problems with the seed fixed says two *runs* differ, not two methods; the reading says what the
data can and cannot say instead. It never interprets beyond the numbers.
"""

from __future__ import annotations

import numpy as np

from ebpo_bench.report.load import ExperimentData
from ebpo_bench.report.stats import Estimate
from ebpo_bench.report.tables import REPRODUCED, Analysis, bench_display, norm

MIN_SEEDS = 3  # fewer training seeds per arm: no directional claim about the arms


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def _s(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def unit(e: Estimate) -> str:
    """What the test of ``e`` resamples, in words: seeds and problems, or problems only."""
    if e.n >= MIN_SEEDS:
        return f"test unit: {_s(e.n, 'training seed')} x {_s(e.n_problems, 'problem')}, both resampled"
    return (
        f"test unit: problems only, {_s(e.n_problems, 'problem')}; {_s(e.n, 'training seed')}, so "
        "seed-to-seed variation is not measured"
    )


def _pp(e: Estimate) -> str:
    ci = f", 95% CI [{e.lo:+.1f}, {e.hi:+.1f}]" if np.isfinite(e.lo) else ""
    if e.n >= MIN_SEEDS:
        verdict = "significant at 5%" if e.significant else "not significant at 5%"
    else:
        verdict = "the run pair differs beyond problem sampling" if e.significant else "within problem noise"
    return f"{e.mean:+.1f} pp{ci}, {_p(e.p)}, {verdict} ({unit(e)})"


def evidence(a: Analysis) -> list[str]:
    """The first sentence of the reading when arms rest on fewer than ``MIN_SEEDS`` seeds."""
    ns = [e.n for c in a.cells.values() for e in c.values() if e.n]
    if not ns or min(ns) >= MIN_SEEDS:
        return []
    return [
        f"**Evidence level: {_s(min(ns), 'training seed')} per arm (fewer than {MIN_SEEDS}).** "
        "This report makes no claim that one arm is better than another: two training runs of the same "
        "arm can differ by several points, and that variation cannot be measured from so few seeds. "
        "What the data can say: how these particular runs scored, and whether two runs differ beyond the "
        "noise of sampling problems (p-values below are over problems with the seed fixed). Run at "
        f"least {MIN_SEEDS} seeds per arm for a directional comparison."
    ]


def reading(a: Analysis) -> list[str]:
    """Sentences stating what the paired differences and reported rows support, nothing more."""
    out: list[str] = evidence(a)
    if a.ref_of:
        out.append(f"{a.avg_header} = mean over " + ", ".join(bench_display(b) for b in a.avg_over) + ".")
    for v, ref in a.ref_of.items():
        d, e = a.diffs[v], a.diffs[v]["avg"]
        if not np.isfinite(e.mean):
            out.append(
                f"{v} - {ref}: no seeds and problems matched on every averaged benchmark; no Avg comparison."
            )
            continue
        seeds = ", ".join(f"{x:+.1f}" for x in e.per_seed)
        text = f"{v} - {ref} on {a.avg_header}: {_pp(e)}; per-seed differences: {seeds} pp"
        tested = [b for b in a.columns if b in d and np.isfinite(d[b].mean)]
        sig = [f"{bench_display(b)} ({d[b].mean:+.1f} pp, {_p(d[b].p)})" for b in tested if d[b].significant]
        if len(tested) > 1:
            word = "significant at 5%" if e.n >= MIN_SEEDS else "p < 0.05 over problems"
            text += f". Per benchmark, {word} on {len(sig)} of {len(tested)}"
            text += f": {', '.join(sig)}" if sig else ""
        out.append(text + ".")
    out += _claims(a)
    out += _versus_paper(a)
    return out


def _claims(a: Analysis) -> list[str]:
    """Whether 'EBPO beats the reference on average' holds, per EBPO arm (at each grid point).

    With fewer than ``MIN_SEEDS`` seeds the sentence says the data cannot decide, whatever the p-value.
    """
    out = []
    v = a.variants.set_index("variant")
    ebpo = [
        x
        for x in a.ref_of
        if np.isfinite(a.diffs[x]["avg"].mean)
        and (str(v.loc[x, "estimator"]) == "ebpo" or "ebpo" in norm(v.loc[x, "arm"]))
    ]
    for arm in dict.fromkeys(v.loc[ebpo, "arm"]):
        names = [x for x in ebpo if v.loc[x, "arm"] == arm]
        ref = a.reference
        few = [x for x in names if a.diffs[x]["avg"].n < MIN_SEEDS]
        if few:
            where = (
                ""
                if len(few) == len(names) == 1
                else " at " + ", ".join(v.loc[x, "axes_label"] or x for x in few)
            )
            n = min(a.diffs[x]["avg"].n for x in few)
            out.append(
                f"Whether {arm} beats {ref} on average cannot be decided here{where}: "
                f"{_s(n, 'seed')} per arm (fewer than {MIN_SEEDS}); the differences above describe "
                "these runs, not the methods."
            )
            names = [x for x in names if x not in few]
            if not names:
                continue
        groups: dict[str, list[str]] = {"holds": [], "not supported": [], "reversed": []}
        for x in names:
            e = a.diffs[x]["avg"]
            key = "not supported" if not e.significant else ("holds" if e.mean > 0 else "reversed")
            groups[key].append(v.loc[x, "axes_label"] or x)
        unit_txt = f" (test over {_s(min(a.diffs[x]['avg'].n for x in names), 'seed')} and problems)"
        if len(names) == 1:
            key = next(k for k, g in groups.items() if g)
            out.append(
                {
                    "holds": f"The claim that {arm} beats {ref} on average holds here at the 5% level"
                    f"{unit_txt}.",
                    "not supported": f"The claim that {arm} beats {ref} is not supported here: the average "
                    f"difference is not significant at 5%{unit_txt}.",
                    "reversed": f"The claim that {arm} beats {ref} does not hold here: {ref} is "
                    f"significantly better on average{unit_txt}.",
                }[key]
            )
            continue
        parts = [
            f"holds (significant at 5%) at {', '.join(groups['holds'])}" if groups["holds"] else "",
            f"is not supported (not significant) at {', '.join(groups['not supported'])}"
            if groups["not supported"]
            else "",
            f"does not hold ({ref} significantly better) at {', '.join(groups['reversed'])}"
            if groups["reversed"]
            else "",
        ]
        out.append(
            f"The claim that {arm} beats {ref} on average{unit_txt} " + "; ".join(p for p in parts if p) + "."
        )
    return out


def _versus_paper(a: Analysis) -> list[str]:
    """Reproduced Avg against the reported (paper) Avg of the row placed beside it, one sentence per arm."""
    by_arm: dict[str, list[str]] = {}
    for t in a.tables:
        for r, nxt in zip(t.rows, t.rows[1:]):
            if (
                r.source != REPRODUCED
                or nxt.source == REPRODUCED
                or "avg" not in r.cells
                or "avg" not in nxt.cells
            ):
                continue
            e, rep = r.cells["avg"], nxt.cells["avg"].mean
            if not np.isfinite(e.mean):
                continue
            where = (
                "no CI (n=1)"
                if not np.isfinite(e.lo)
                else ("inside" if e.lo <= rep <= e.hi else "outside") + " the 95% CI"
            )
            g = f"G={r.lead['G']}: " if r.lead.get("G") else ""
            by_arm.setdefault(f"{r.label} vs reported (paper) {nxt.label}", []).append(
                f"{g}{e.mean:.1f} vs {rep:.2f} ({e.mean - rep:+.1f} pp, {where})"
            )
    return [f"{k}, Avg: " + "; ".join(v) + "." for k, v in by_arm.items()]


def caveats(data: ExperimentData, a: Analysis) -> list[str]:
    """Warnings the numbers need: multiple tests, few seeds, disagreeing seeds, runs left out."""
    out = list(a.notes)
    n_tests = sum(np.isfinite(e.mean) for d in a.diffs.values() for e in d.values())
    if n_tests > 1:
        out.append(
            f"{n_tests} paired tests in this report; p-values are not adjusted for multiple comparisons, "
            "so about 1 in 20 null differences reads as significant."
        )
    mixed = [
        v
        for v, d in a.diffs.items()
        if 1 < d["avg"].n < 5 and len({np.sign(x) for x in d["avg"].per_seed}) > 1
    ]
    if mixed:
        out.append(
            f"{', '.join(mixed)}: the per-seed differences disagree in sign and there are fewer than "
            "5 seeds; no test can measure run-to-run variance from so few runs, so these p-values may be "
            "optimistic."
        )
    ns = [e.n for c in a.cells.values() for e in c.values() if e.n]
    if ns and min(ns) < 3:
        out.append(
            "Some cells rest on fewer than 3 seeds: the CI over seeds is absent (n=1) or too narrow to trust."
        )
    runs = data.runs
    if len(runs) and (~runs["in_tables"].astype(bool)).any():
        k = int((~runs["in_tables"].astype(bool)).sum())
        out.append(
            f"{k} run(s) are not in the tables (see Run status); failed runs left out can flatter an arm."
        )
    return out
