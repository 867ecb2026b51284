"""A sweep's record (``<results>/<experiment>/sweep.json``: which job runs which run) and what
``ebpo-bench status`` / ``cancel`` derive from it, the run folders and the scheduler (``squeue``,
``scancel``). Torch-free and submitit-free.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ebpo_bench.results import RunPaths, atomic_write_json, now, read_record

RECORD = "sweep.json"
ACTIVE = {"RUNNING", "COMPLETING", "CONFIGURING", "STAGE_OUT", "SIGNALING", "RESIZING"}


def read_sweep(exp_dir: Path) -> dict:
    try:
        return json.loads((exp_dir / RECORD).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def record_jobs(exp_dir: Path, launcher: str, expected: list[str], jobs: dict[str, str], **info) -> None:
    """Add ``run id -> job id`` entries (a resubmission replaces a run's entry) and the expected runs."""
    rec = read_sweep(exp_dir)
    runs = rec.get("runs", {})
    for run_id, job in jobs.items():
        runs[run_id] = {"job_id": job, "launcher": launcher, "submitted": now()}
    exp = list(dict.fromkeys([*rec.get("expected", []), *expected]))
    exp_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(exp_dir / RECORD, {**rec, **info, "expected": exp, "runs": runs})


def queue_states(job_ids: list[str]) -> dict[str, tuple[str, str]] | None:
    """job id -> (SLURM state, reason) for those still known to the scheduler; None without squeue."""
    if not shutil.which("squeue"):
        return None
    p = subprocess.run(["squeue", "-h", "-r", "-o", "%i|%T|%r"], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return None
    want, out = set(job_ids), {}
    for line in p.stdout.splitlines():
        jid, _, rest = line.strip().partition("|")
        state, _, reason = rest.partition("|")
        if jid in want:
            out[jid] = (state, reason)
    return out


@dataclass
class RunState:
    run_id: str
    state: str  # pending|running|requeued|completed|failed|cancelled|not started|<scheduler state>
    step: int
    total: int
    job: str
    detail: str

    def line(self, width: int) -> str:
        cells = f"{self.state:<11} {self.step:>6}/{self.total:<6} {self.job:<12}"
        return f"{self.run_id:<{width}}  {cells} {self.detail}"


def last_step(paths: RunPaths) -> int:
    """Steps done: the last metrics row's step + 1 (0 without rows)."""
    try:
        with open(paths.metrics, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 65536))
            lines = [x for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return int(json.loads(line)["step"]) + 1
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def last_log_line(run_dir: Path) -> str:
    logs = sorted((run_dir / "logs").glob("*.log"), key=lambda p: p.stat().st_mtime)
    if not logs:
        return ""
    with open(logs[-1], "rb") as f:
        f.seek(0, 2)
        f.seek(max(0, f.tell() - 8192))
        lines = [x.strip() for x in f.read().decode(errors="replace").splitlines() if x.strip()]
    return lines[-1][-160:] if lines else ""


def run_states(exp_dir: Path, runs: list, sweep: dict, queue: dict | None) -> list[RunState]:
    """One ``RunState`` per run (``runs``: expanded ``RunConfig``s) from run.json, logs and the queue."""
    out = []
    for run in runs:
        paths = RunPaths(exp_dir / run.run_id)
        rec = read_record(paths) or {}
        job = (sweep.get("runs", {}).get(run.run_id) or {}).get("job_id", "")
        q = (queue or {}).get(job)
        status = rec.get("status")
        if status == "completed":
            state = "completed"
        elif q and q[0] in ACTIVE:
            state = "running"
        elif q and q[0] in ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED"):
            state = "requeued" if status == "requeued" else "pending"
        elif q:
            state = q[0].lower()
        elif job in sweep.get("cancelled", []):
            state = "cancelled"
        elif status == "failed" or (job and queue is not None):
            state = "failed"  # diverged, or the job left the queue before the run completed
        else:
            state = status or "not started"
        detail = rec.get("error") if state == "failed" and rec.get("error") else last_log_line(paths.dir)
        if state == "failed" and not detail:
            detail = "the job left the queue before the run started"
        if state == "pending" and q:
            detail = f"({q[1]})" if q[1] and q[1] != "None" else detail
        out.append(RunState(run.run_id, state, last_step(paths), run.train.steps, job or "-", detail or ""))
    return out


def cancel_jobs(exp_dir: Path, job_ids: list[str]) -> list[str]:
    """``scancel`` the jobs still in the queue, note them in sweep.json; return those cancelled."""
    queue = queue_states(job_ids)
    if queue is None:
        from ebpo_bench.errors import UserError

        raise UserError("squeue/scancel not found: cancel needs the SLURM client tools on this machine")
    live = [j for j in job_ids if j in queue]
    if live:
        subprocess.run(["scancel", *live], check=True, timeout=60)
        rec = read_sweep(exp_dir)
        rec["cancelled"] = sorted({*rec.get("cancelled", []), *live})
        atomic_write_json(exp_dir / RECORD, rec)
    return live
