"""Gold answers that are malformed in the benchmark files, corrected at load time (each with its note).

A fix applies only while the file still holds the recorded malformed value (``old``), so a corrected or
changed data file is never altered silently. ``gold_notes`` lists the fixes for ``ls benchmarks``.
"""

from __future__ import annotations

#: benchmark -> problem id -> (gold in the file, gold used, why)
GOLD_FIXES: dict[str, dict[str, tuple[str, str, str]]] = {
    "minerva_math": {
        "5": (
            "np.arcsin(10/13)",
            "\\arcsin(10/13)",
            "the solution's \\boxed{} holds numpy code, not LaTeX; math-verify cannot parse it",
        ),
    },
}


def fix_gold(benchmark: str, problem_id: str, gold: str) -> str:
    """The corrected gold for a recorded malformed one, else ``gold`` unchanged."""
    old, new, _ = GOLD_FIXES.get(benchmark, {}).get(problem_id, (None, None, None))
    return new if gold == old else gold


def gold_notes(benchmark: str) -> list[str]:
    """One line per fix of a benchmark: ``id: 'old' -> 'new' (why)``."""
    return [
        f"{pid}: {old!r} -> {new!r} ({why})" for pid, (old, new, why) in GOLD_FIXES.get(benchmark, {}).items()
    ]
