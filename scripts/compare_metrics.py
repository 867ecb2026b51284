"""Compare the metrics rows of two results folders of the same experiment, ignoring wall-clock fields.

    python scripts/compare_metrics.py results_a/EXP results_b/EXP

For every run folder present in both (``<arm>/.../seed<k>``), reads ``metrics.jsonl`` and reports the
fields whose values differ in any step, leaving out timing and throughput fields (``time/*``,
``throughput/*``), which measure the machine, not the run. Exit status 0 when every other field is
identical in every row, 1 otherwise. Used to check that a refactoring left training unchanged
(docs/performance.md records one such check).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SKIP = ("time/", "throughput/")


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def compare(a: Path, b: Path) -> dict[str, list[str]]:
    """Run id -> differing fields (empty list: identical) for the runs both folders hold."""
    out = {}
    for ma in sorted(a.rglob("metrics.jsonl")):
        run = ma.parent.relative_to(a)
        mb = b / run / "metrics.jsonl"
        if not mb.exists():
            continue
        ra, rb = rows(ma), rows(mb)
        diff = set() if len(ra) == len(rb) else {"<row count>"}
        for x, y in zip(ra, rb):
            keys = {k for k in x.keys() | y.keys() if not k.startswith(SKIP)}
            diff |= {k for k in keys if x.get(k) != y.get(k)}
        out[str(run)] = sorted(diff)
    return out


def main() -> int:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    result = compare(a, b)
    if not result:
        print(f"no run folder is in both {a} and {b}")
        return 1
    for run, diff in result.items():
        n = len(rows(a / run / "metrics.jsonl"))
        print(f"{run}: {n} rows, " + ("identical" if not diff else f"differ in {', '.join(diff)}"))
    return int(any(result.values()))


if __name__ == "__main__":
    sys.exit(main())
