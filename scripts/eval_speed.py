"""Time the evaluation of 100 problems x 4 samples with the tiny model on CPU (target: <= 2 minutes).

Runs ``ebpo-bench eval``'s body (``eval.command.run_eval``) on the embedded tiny model: sampling at T = 1.0
with the rollout backend, grading with the math-verify workers, writing eval.jsonl and eval_summary.json into
a temporary folder. Prints the wall time split into model build, generation + grading, and the total. A
benchmark, not a test: nothing is asserted. Needs ``../shared/data`` (or ``$EBPO_BENCH_DATA``).

    python scripts/eval_speed.py [--benchmark math500] [--problems 100] [--n 4] [--max-new-tokens 64]
                                    [--harness native|lm-eval] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
for _var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_var, "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--benchmark", default="math500")
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--harness", default="native", choices=["native", "lm-eval"])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from ebpo_bench.eval.command import run_eval

    with tempfile.TemporaryDirectory(prefix="ebpo_eval_speed_") as tmp:
        t0 = time.perf_counter()
        summary = run_eval(
            "tiny",
            [args.benchmark],
            n=args.n,
            temperature=1.0,
            top_p=1.0,
            max_new_tokens=args.max_new_tokens,
            limit=args.problems,
            harness=args.harness,
            out=Path(tmp),
            seed=0,
            quiet=True,
        )
        total = time.perf_counter() - t0
    m = summary["benchmarks"][args.benchmark]
    print(
        f"\n{m['problems']} problems x {m['n']} samples, <= {args.max_new_tokens} new tokens, {args.harness} "
        f"harness, {args.threads} torch threads"
    )
    print(f"model build + generation + grading + writing: {summary['seconds']:.1f} s")
    print(f"run_eval in all (data loading included): {total:.1f} s (target <= 120 s)")


if __name__ == "__main__":
    main()
