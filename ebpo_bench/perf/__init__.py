"""``ebpo-bench bench``: our trainer against TRL's GRPOTrainer on the same work, step by step.

The parent process is torch-free: it runs each measurement in a fresh worker process
(``ebpo_bench.perf.worker``) back to back — ours and TRL alternate when ``repeats`` > 1 — so
every peak RSS belongs to one trainer and neither inherits the other's caches. Then it summarises
(``bench.summary``) and writes ``<out>/<name>.json`` (every step's row) and ``<out>/<name>.md``
(the table and the targets), both atomically.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ebpo_bench.perf.summary import render, summarise
from ebpo_bench.results import atomic_write_json, atomic_write_text, now, provenance

KINDS = ("ours", "trl", "floor", "estimators")


class BenchError(RuntimeError):
    """TRL missing or a worker failed; the message names it (with the tail of the worker's output)."""


def run_bench(
    spec: str,
    *,
    arm: str,
    seed: int,
    steps: int,
    warmup: int,
    repeats: int,
    kinds: list[str],
    out: Path,
    name: str,
    profile: str | None,
    threads: int | None,
    log: Callable[[str], None] = print,
) -> dict:
    """Run the measurements and write the JSON + markdown result; return the result dict."""
    if "trl" in kinds:
        _require_trl()
    cfg = {
        "spec": spec,
        "arm": arm,
        "seed": seed,
        "steps": steps,
        "warmup": warmup,
        "profile": profile,
        "threads": threads,
    }
    order = []
    for rep in range(repeats):
        pair = [k for k in ("ours", "trl") if k in kinds]
        order += pair if rep % 2 == 0 else pair[::-1]
    order += [k for k in ("floor", "estimators") if k in kinds]
    raw: dict[str, list[dict]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "cfg.json"
        cfg_path.write_text(json.dumps(cfg))
        for i, kind in enumerate(order, 1):
            log(
                f"[{i}/{len(order)}] {kind}"
                + ("" if kind == "estimators" else f": {warmup} warm-up + {steps} measured steps")
            )
            raw.setdefault(kind, []).append(_worker(kind, cfg_path, Path(tmp) / f"{kind}-{i}.json"))
    prov = provenance()
    prov["packages"]["trl"] = _trl_version()
    result = {
        "config": cfg,
        "created": now(),
        "wall_s": time.perf_counter() - started,
        "provenance": prov,
        "raw": raw,
        "summary": summarise(raw, warmup),
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{name}.json", result)
    atomic_write_text(out / f"{name}.md", render(result))
    return result


def _worker(kind: str, cfg_path: Path, out: Path) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "ebpo_bench.perf.worker", kind, str(cfg_path), str(out)],
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not out.exists():
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise BenchError(f"bench worker '{kind}' failed (exit {proc.returncode}):\n{tail}")
    return json.loads(out.read_text())


def _trl_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("trl")
    except PackageNotFoundError:
        return None


def _require_trl() -> None:
    from importlib.util import find_spec

    if find_spec("trl") is None:
        raise BenchError(
            'bench: TRL is not installed; install the benchmark extra with pip install -e ".[bench]" '
            "or leave it out with --only ours,floor,estimators"
        )
