"""The on-disk contract between trainer, evaluator and report (torch-free).

A run directory ``<root>/<experiment>/<run-id>/`` holds:

- ``spec.resolved.yaml``: the complete run config after the arm merge, every default visible;
- ``run.json``: status (running | completed | failed), spec hash, git commit and dirty flag,
  package versions, device, start/end times, last finished step, error text;
- ``metrics.jsonl``: one JSON object per training step, slash-namespaced keys (``train/...``,
  ``adv/...``, ``<estimator>/...``, ``time/...``);
- ``samples.jsonl``: a few rollouts per step, for reading;
- ``eval.jsonl``: one row per (step, benchmark, problem, sample); ``eval_summary.json``;
- ``checkpoints/``: the latest checkpoint (model, optimiser, RNG, estimator state, data position).

Every whole-file write is atomic (temp file + rename); JSONL logs are appended line by line and,
on resume, rewritten atomically without the rows past the checkpoint. A torn last line (a kill
mid-write) is skipped by ``read_jsonl`` and counted.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("ebpo-bench", "torch", "transformers", "accelerate", "math-verify", "lm_eval", "pydantic", "vllm")


@dataclass(frozen=True)
class RunPaths:
    """File names of one run directory."""

    dir: Path

    @property
    def spec(self) -> Path:
        return self.dir / "spec.resolved.yaml"

    @property
    def record(self) -> Path:
        return self.dir / "run.json"

    @property
    def metrics(self) -> Path:
        return self.dir / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.dir / "samples.jsonl"

    @property
    def eval(self) -> Path:
        return self.dir / "eval.jsonl"

    @property
    def eval_summary(self) -> Path:
        return self.dir / "eval_summary.json"

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"


def run_paths(root: str | Path, experiment: str, run_id: str) -> RunPaths:
    return RunPaths(Path(root) / experiment / run_id)


# ---------------------------------------------------------------- atomic writes
def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp makes 0600; give the mode open() would
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def process_umask() -> int:
    """The process umask, read without changing it where Linux reports it (/proc/self/status)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere: the only portable read is a set-and-restore
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def append_jsonl(path: Path, rows: Iterable[dict]) -> None:
    """Append rows (one JSON object per line) and flush them to disk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row, default=_json_default) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """Return (rows, number of unreadable lines); a missing file is ([], 0)."""
    if not path.exists():
        return [], 0
    rows, bad = [], 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


def rewrite_jsonl(path: Path, keep: Callable[[dict], bool]) -> int:
    """Atomically drop the rows for which ``keep`` is false (and torn lines); return rows kept."""
    rows, _ = read_jsonl(path)
    kept = [r for r in rows if keep(r)]
    atomic_write_text(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in kept))
    return len(kept)


# ---------------------------------------------------------------- run record
def read_record(paths: RunPaths) -> dict | None:
    try:
        return json.loads(paths.record.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def update_record(paths: RunPaths, **fields: Any) -> dict:
    """Merge ``fields`` into run.json (atomically) and return the new record."""
    rec = read_record(paths) or {}
    rec.update(fields)
    atomic_write_json(paths.record, rec)
    return rec


def provenance() -> dict:
    """Git commit and dirty flag, package versions, host and Python: for run.json and reports."""
    return {
        "git": git_state(),
        "packages": {p: _version(p) for p in PACKAGES},
        "python": platform.python_version(),
        "host": platform.node(),
        "platform": platform.platform(),
    }


def git_state() -> dict:
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
