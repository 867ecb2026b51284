"""FSDP2 on 2 CPU processes (gloo), without accelerate: sharded checkpoints and the chunked-head log-probs.

Usage: torchrun --nproc_per_node 2 fsdp_worker.py OUT_DIR. accelerate enables FSDP only on CUDA, so this
worker applies ``torch.distributed.fsdp.fully_shard`` itself (per decoder layer, then the root, as
``configs/accelerate/8gpu_fsdp.yaml`` does) to the tiny model, and exercises the project's own functions on
real DTensor shards:

- ``train.logprobs.sequence_logprobs`` through the chunked LM head on the sharded model equals the
  unsharded model's (the head weight read after the forward must be the gathered one);
- two AdamW steps, ``checkpoint.save_sharded`` (every rank writes its own file), a third step; then a
  fresh sharded model + optimiser, ``checkpoint.load_sharded`` and the same third step: the same loss;
- rank 0 also writes the gathered full state dict (``full_states``) as the reference that the test
  compares ``checkpoint.model_weights`` and ``ebpo-bench export`` of the sharded checkpoint with.
"""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import yaml
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from ebpo_bench.config.load import build_experiment
from ebpo_bench.models.loading import load_policy
from ebpo_bench.train import checkpoint as C
from ebpo_bench.train.logprobs import sequence_logprobs

SPEC = {
    "name": "fsdp",
    "model": {"path": "tiny", "tiny": {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64}},
    "task": {"type": "synthetic", "topics": ["add"]},
}


def sharded_model(run, mesh):
    model, _ = load_policy(run.model, run.task, log=lambda s: None)
    for layer in model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model, torch.optim.AdamW(model.parameters(), lr=1e-2)


def step(model, opt, ids) -> float:
    attn = torch.ones_like(ids)
    logp, _ = sequence_logprobs(model, ids, attn, 4, 1.0, False, chunk=3)
    loss = -logp.mean()
    loss.backward()
    opt.step()
    opt.zero_grad()
    return loss.item()


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    run = build_experiment(SPEC).runs[0]
    batches = [
        torch.randint(4, 200, (3, 12), generator=torch.Generator().manual_seed(10 * rank + i))
        for i in range(3)
    ]

    plain, _ = load_policy(run.model, run.task, log=lambda s: None)
    model, opt = sharded_model(run, mesh)
    with torch.no_grad():
        lp_plain, _ = sequence_logprobs(
            plain, batches[0], torch.ones_like(batches[0]), 4, 1.0, False, chunk=3
        )
        lp_shard, _ = sequence_logprobs(
            model, batches[0], torch.ones_like(batches[0]), 4, 1.0, False, chunk=3
        )
    res = {"logp_max_diff": (lp_plain - lp_shard).abs().max().item()}

    losses = [step(model, opt, b) for b in batches[:2]]
    ck = out / "run" / "checkpoints" / "step_000002"
    C.save_sharded(model, opt, ck / C.SHARDS)
    model_sd, _ = C.full_states(model, opt)  # the reference, gathered once for the test only
    if rank == 0:
        torch.save(model_sd, out / "reference_model.pt")
        (out / "run" / "spec.resolved.yaml").write_text(yaml.safe_dump(run.model_dump(mode="json")))
    res["continued"] = step(model, opt, batches[2])

    fresh, fresh_opt = sharded_model(run, mesh)
    C.load_sharded(fresh, fresh_opt, ck / C.SHARDS)
    res["resumed"] = step(fresh, fresh_opt, batches[2])
    res["first_losses"] = losses
    (out / f"rank{rank}.json").write_text(json.dumps(res))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
