"""One RL step and one evaluation batch at Qwen3's vocabulary (151,936) on a tiny-width model, with peak RSS.

Usage: python rehearsal_worker.py OUT.json PROMPTS G TOKENS. Builds the run from a spec dict (tiny model
with ``vocab_size: 151936``, hidden 64, 2 layers, synthetic task), runs the trainer's own setup /
collect / update phases and an evaluation batch through the HF sampler, and records the peak RSS
(``ru_maxrss``) after each phase together with the memory planner's numbers for the same run.
"""

import json
import resource
import sys
import time
from pathlib import Path


def rss_peak() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux: KiB


def rss_now() -> float:
    with open("/proc/self/statm") as f:
        import os

        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main(out: str, prompts: int, G: int, T: int) -> None:
    import torch
    from accelerate import Accelerator

    from ebpo_bench.config.load import build_experiment
    from ebpo_bench.config.memory import Launch, plan
    from ebpo_bench.results import RunPaths
    from ebpo_bench.rollout import SamplingParams, encode_prompts
    from ebpo_bench.train import trainer

    torch.set_num_threads(1)
    raw = {
        "name": "rehearsal",
        "model": {"path": "tiny", "tiny": {"layers": 2, "hidden": 64, "heads": 4, "intermediate": 256,
                                           "vocab_size": 151936}},
        "task": {"type": "synthetic", "topics": ["add"], "train_levels": [1, 2]},
        "rollout": {"group_size": G, "max_new_tokens": T, "max_prompt_tokens": 32,
                    "backend": {"type": "hf", "max_batch": prompts * G}},
        "train": {"prompts_per_step": prompts, "mini_batches": 1, "lr": 1e-4, "logprob_chunk_tokens": 256,
                  "max_tokens_per_microbatch": prompts * G * (T + 32) // 2, "samples_per_step": 0},
        "eval": {"n_samples": G},
    }  # fmt: skip
    run = build_experiment(raw).runs[0]
    p = plan(run, Launch())
    base = rss_now()
    acc = Accelerator(cpu=True)
    paths = RunPaths(Path(out).parent / "run")
    paths.dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    t = trainer.setup(run, paths, acc, log=lambda s: None)
    after_setup = rss_peak()
    before_rollout = rss_now()
    col, _ = trainer.collect(t, 0)
    t1 = time.perf_counter()
    after_rollout = rss_peak()
    before_update = rss_now()
    adv, _ = t.estimator(col.rewards, prompt_ids=col.prompt_ids, lengths=col.lengths)
    trainer.update(t, col.batch, trainer.local_slice(t, adv).reshape(-1), 0)
    t2 = time.perf_counter()
    after_update = rss_peak()
    exs = [e for e in t.source.next(prompts)]
    t.model.eval()
    ev = t.backend.generate(
        encode_prompts(t.tok, [e.prompt for e in exs], False), SamplingParams(G, 1.0, 1.0, T, logprobs=False)
    )
    t3 = time.perf_counter()
    t.verifier.close()
    res = {
        "rows": int(col.batch.response_ids.shape[0]),
        "generated_width": int(col.batch.response_ids.shape[1]),
        "eval_rows": int(ev.response_ids.shape[0]),
        "baseline_rss": base,
        "before_rollout": before_rollout,
        "before_update": before_update,
        "peak_after_setup": after_setup,
        "peak_after_rollout": after_rollout,
        "peak_after_update": after_update,
        "peak_after_eval": rss_peak(),
        "seconds": {"setup+rollout": t1 - t0, "update": t2 - t1, "eval": t3 - t2},
        "plan": {**p.rows, "update": p.update, "rollout": p.rollout, "total": p.total},
    }
    Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
