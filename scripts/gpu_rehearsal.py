"""GPU tier: memory rehearsal with a Qwen3-0.6B-shaped random model at 4096 response tokens.

Usage: python3 scripts/gpu_rehearsal.py OUT_DIR [TOKENS]. Builds a random Qwen3ForCausalLM with the
real 0.6B shapes (28 layers, hidden 1024, vocabulary 151,936) and the tiny byte tokenizer, saves it
to OUT_DIR/qwen3_0.6b_random (no download), then runs one RL step of 8 prompts x G = 4 x TOKENS
(default 4096) through the trainer's own setup / collect / update phases with bf16 compute over fp32
master weights and gradient checkpointing, plus one evaluation batch. Peak CUDA memory per phase is
written to OUT_DIR/gpu_rehearsal.json beside the memory planner's numbers (config/memory.py).
"""

import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from transformers import Qwen3Config, Qwen3ForCausalLM

from ebpo_bench.config.load import build_experiment
from ebpo_bench.config.memory import Launch, plan
from ebpo_bench.models import tiny as tinymodel
from ebpo_bench.results import RunPaths
from ebpo_bench.rollout import SamplingParams, encode_prompts
from ebpo_bench.train import trainer


def build(out: Path) -> Path:
    tok = tinymodel.build_tokenizer()
    cfg = Qwen3Config(
        vocab_size=151_936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28,
        num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
        max_position_embeddings=40_960, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    d = out / "qwen3_0.6b_random"
    Qwen3ForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def main(out: Path, T: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    path = build(out)
    raw = {
        "name": "gpu_rehearsal",
        "model": {"path": str(path), "mixed_precision": "bf16", "gradient_checkpointing": True},
        "task": {"type": "synthetic", "topics": ["add"], "train_levels": [1, 2]},
        "rollout": {"group_size": 4, "max_new_tokens": T, "max_prompt_tokens": 64,
                    "backend": {"type": "hf", "max_batch": 32}},
        "train": {"prompts_per_step": 8, "lr": 1e-6, "max_tokens_per_microbatch": 4 * (T + 64),
                  "samples_per_step": 0},
        "eval": {"n_samples": 4},
    }  # fmt: skip
    run = build_experiment(raw).runs[0]
    p = plan(run, Launch())
    acc = Accelerator(mixed_precision="bf16")
    paths = RunPaths(out / "run")
    paths.dir.mkdir(parents=True, exist_ok=True)
    res: dict = {"tokens": T, "plan": {**p.rows, "update": p.update, "rollout": p.rollout}}
    t = trainer.setup(run, paths, acc, log=print)
    mark = lambda name, t0: res.update(
        {name: torch.cuda.max_memory_allocated(), name + "_s": time.time() - t0}
    )  # noqa: E731
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    col, _ = trainer.collect(t, 0)
    mark("rollout_peak", t0)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    adv, _ = t.estimator(col.rewards, prompt_ids=col.prompt_ids, lengths=col.lengths)
    trainer.update(t, col.batch, trainer.local_slice(t, adv).reshape(-1), 0)
    mark("update_peak", t0)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    exs = t.source.next(8)
    t.backend.generate(
        encode_prompts(t.tok, [e.prompt for e in exs], False), SamplingParams(4, 1.0, 1.0, T, False)
    )
    mark("eval_peak", t0)
    res["generated_width"] = int(col.batch.response_ids.shape[1])
    t.verifier.close()
    (out / "gpu_rehearsal.json").write_text(json.dumps(res, indent=1))
    print(
        json.dumps(
            {k: (v / 2**30 if isinstance(v, float) and v > 1e6 else v) for k, v in res.items() if k != "plan"}
        )
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 4096)
