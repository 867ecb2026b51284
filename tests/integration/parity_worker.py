"""Run under ``accelerate launch --multi_gpu --num_processes N`` (gloo on a CPU-only machine): each rank
holds a slice of known rewards, gathers them through the trainer's own ``gather_groups`` and runs stateful
estimators for a few steps; every rank saves what it computed to OUT/rank<r>.pt."""

import sys

import torch
from accelerate import Accelerator

from ebpo_bench import estimators as advantages
from ebpo_bench.train.trainer import gather_groups

ESTIMATORS = {
    "ebpo_cum": ("ebpo", {"prior_scope": "cumulative"}),
    "ebpo_ema": ("ebpo", {"prior_scope": "ema"}),
    "spo": ("spo", {}),
    "jspo": ("jspo", {}),
    "grpo": ("grpo", {}),
}


def full_batch(step: int, P: int = 8, G: int = 4):
    g = torch.Generator().manual_seed(step)
    rewards = (torch.rand(P, G, generator=g) < torch.rand(P, 1, generator=g)).float()
    lengths = torch.randint(1, 20, (P, G), generator=g)
    ids = [f"p{(step * 3 + i) % 11}" for i in range(P)]  # prompts recur across steps (SPO state)
    return rewards, lengths, ids


def main(out: str) -> None:
    acc = Accelerator(cpu=True)
    ests = {k: advantages.make(n, **o) for k, (n, o) in ESTIMATORS.items()}
    record = {k: [] for k in ests}
    for step in range(4):
        R, L, ids = full_batch(step)
        lp = R.shape[0] // acc.num_processes
        sl = slice(acc.process_index * lp, (acc.process_index + 1) * lp)
        rew, cor, lens, gids = gather_groups(acc, R[sl], R[sl] > 0, L[sl], ids[sl])
        for k, est in ests.items():
            adv, metrics = est(rew, prompt_ids=gids, lengths=lens)
            record[k].append({"adv": adv, "metrics": metrics})
    torch.save(
        {"record": record, "state": {k: e.state_dict() for k, e in ests.items()}},
        f"{out}/rank{acc.process_index}.pt",
    )
    acc.wait_for_everyone()
    acc.end_training()  # destroys the gloo group; without it a rank can abort at interpreter exit


if __name__ == "__main__":
    main(sys.argv[1])
