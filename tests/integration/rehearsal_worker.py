"""One RL step and one evaluation batch at Qwen3's vocabulary (151,936) on a tiny-width model, with peak RSS.

Usage: python rehearsal_worker.py OUT.json PROMPTS G TOKENS. Builds the run from a spec dict (tiny model
with ``vocab_size: 151936``, hidden 64, 2 layers, synthetic task), runs the trainer's own setup /
collect / update phases and an evaluation batch through the HF sampler, and records each phase's own
peak RSS (VmHWM, reset at the phase's start) together with the memory planner's numbers for the same run.
"""

import json
import resource
import sys
import time
from pathlib import Path


def rss_peak() -> float:
    """Peak RSS since the last ``reset_peak`` (VmHWM), else since the process started."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # Linux: KiB


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0), so a phase's peak is its own
    and not an earlier phase's; False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


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
    resettable = reset_peak()
    before, peak, seconds, overall = {}, {}, {}, [base]

    def phase(name, fn):
        # each phase's own peak: the kernel's mark is reset at its start, so an earlier phase's higher
        # peak (setup's model build, say) cannot be read as this phase's allocation
        reset_peak()
        before[name], t0 = rss_now(), time.perf_counter()
        result = fn()
        seconds[name], peak[name] = time.perf_counter() - t0, rss_peak()
        overall.append(peak[name])
        return result

    t = phase("setup", lambda: trainer.setup(run, paths, acc, log=lambda s: None))
    col, _ = phase("rollout", lambda: trainer.collect(t, 0))

    def update():
        adv, _ = t.estimator(col.rewards, prompt_ids=col.prompt_ids, lengths=col.lengths)
        trainer.update(t, col.batch, trainer.local_slice(t, adv).reshape(-1), 0)

    phase("update", update)
    exs = list(t.source.next(prompts))
    t.model.eval()
    enc = encode_prompts(t.tok, [e.prompt for e in exs], False)
    ev = phase("eval", lambda: t.backend.generate(enc, SamplingParams(G, 1.0, 1.0, T, logprobs=False)))
    t.verifier.close()
    res = {
        "rows": int(col.batch.response_ids.shape[0]),
        "generated_width": int(col.batch.response_ids.shape[1]),
        "eval_rows": int(ev.response_ids.shape[0]),
        "peak_reset_per_phase": resettable,
        "baseline_rss": base,
        "before": before,
        "peak": peak,
        "peak_overall": max(overall) if resettable else rss_peak(),
        "seconds": seconds,
        "plan": {**p.rows, "update": p.update, "rollout": p.rollout, "total": p.total},
    }
    Path(out).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
