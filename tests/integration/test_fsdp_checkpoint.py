"""FSDP2 checkpoints on 2 CPU processes: every rank writes its own shard, resume continues exactly, and
evaluation / export consolidate the shards (``fsdp_worker.py`` applies fully_shard itself: accelerate
turns FSDP on only with CUDA, so the trainer's FSDP launch itself is left to the GPU tier)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def test_sharded_checkpoint_per_rank_resume_and_consolidation(tmp_path):
    from transformers import AutoModelForCausalLM

    from ebpo_bench.train.checkpoint import SHARDS, model_weights
    from ebpo_bench.train.export import export_run

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", EBPO_BENCH_CACHE=str(tmp_path / "c"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", _port()]
    p = subprocess.run(
        [*cmd, str(HERE / "fsdp_worker.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for r in ranks:
        assert r["logp_max_diff"] < 1e-5  # the chunked head reads the gathered weight under FSDP2
        assert r["resumed"] == pytest.approx(r["continued"], abs=1e-6)
    assert ranks[0]["first_losses"] != ranks[1]["first_losses"]  # each rank trained on its own data

    ck = tmp_path / "run" / "checkpoints" / "step_000002"
    assert not (ck / "model.pt").exists()
    for part in ("model", "optim"):  # one file per rank, nothing gathered
        assert sorted(f.name for f in (ck / SHARDS / part).glob("*.distcp")) == [
            "__0_0.distcp",
            "__1_0.distcp",
        ]

    ref = torch.load(tmp_path / "reference_model.pt")
    got = model_weights(ck)
    assert set(got) == set(ref)
    assert all(torch.equal(got[k], ref[k]) for k in ref)
    assert not list(ck.parent.glob(".consolidate_*"))  # the temporary consolidation file is gone

    out = export_run(tmp_path / "run", tmp_path / "exported", step=2)
    back = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert all(torch.equal(back[k], ref[k]) for k in ref if k in back)
