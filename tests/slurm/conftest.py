"""A real one-node SLURM cluster for the ``slurm`` tier (``scripts/slurm_local.sh``).

The tier runs only when ``EBPO_SLURM_TESTS=1`` (the slurm stage of ``.ci/run`` sets it) and ``sbatch``
exists; otherwise its tests skip, so the default ``pytest -m "not slow"`` never needs a scheduler. A
cluster already answering ``sinfo`` is used as it is; else one is started (as root) in a temp dir and
stopped at the end of the session by its pid files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "slurm_local.sh"


def _up(env: dict) -> bool:
    p = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True, timeout=30)
    return p.returncode == 0 and any(s in p.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory) -> dict:
    """Environment for the CLI and the SLURM client tools, with a cluster up."""
    if os.environ.get("EBPO_SLURM_TESTS") != "1":
        pytest.skip("slurm tier: set EBPO_SLURM_TESTS=1 (the slurm stage of .ci/run does)")
    if not shutil.which("sbatch"):
        pytest.skip("sbatch not found (scripts/slurm_local.sh install)")
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env["EBPO_BENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    started = None
    if not (env.get("SLURM_CONF") and _up(env)):
        if os.geteuid() != 0:
            pytest.skip("no SLURM cluster answers and starting one needs root")
        # not under pytest's tmp dir: munged (the munge user) cannot traverse its 0700 parents
        d = Path(os.environ.get("EBPO_SLURM_DIR") or tempfile.mkdtemp(prefix="ebpo-slurm-"))
        env.update(EBPO_SLURM_DIR=str(d), SLURM_CONF=str(d / "slurm.conf"))
        subprocess.run([str(SCRIPT), "start"], env=env, check=True, timeout=120)
        started = env
    yield env
    if started is not None:
        subprocess.run([str(SCRIPT), "stop"], env=started, check=False, timeout=120)
        if not os.environ.get("EBPO_SLURM_DIR"):
            shutil.rmtree(started["EBPO_SLURM_DIR"], ignore_errors=True)
