"""GPU smoke test (one CUDA GPU, no network): sampler/trainer log-prob parity, rollout and update
throughput with the HF backend, and a 20-step CLI training run; when vLLM imports, the same parity
and throughput with the vLLM backend (sleep mode, a weight sync) and a 10-step vLLM CLI run.

Usage: python scripts/gpu_smoke.py OUT_DIR   (scripts/gpu_smoke.sh sets up the environment)
Prints one JSON object and writes OUT_DIR/gpu_smoke.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ebpo_bench import losses, tinymodel  # noqa: E402
from ebpo_bench.rollout import SamplingParams, make_backend  # noqa: E402
from ebpo_bench.train.trainer import sequence_logprobs  # noqa: E402

SIZES = {
    "tiny": dict(layers=2, hidden=128, heads=4, intermediate=512),
    "small": dict(layers=12, hidden=768, heads=12, intermediate=3072),
}


def throughput(name: str, dtype: torch.dtype, P: int = 64, G: int = 8, T: int = 64) -> dict:
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, seed=0, **SIZES[name]).to("cuda", dtype)
    prompts = [tok(f"{i}+{i % 7}=", add_special_tokens=False)["input_ids"] for i in range(P)]
    backend = make_backend("hf", model, tok)
    params = SamplingParams(G, 1.0, 1.0, T)
    backend.generate(prompts[:4], params)  # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    batch = backend.generate(prompts, params)
    torch.cuda.synchronize()
    t_roll = time.perf_counter() - t0
    ntok = int(batch.lengths.sum())
    ids = torch.cat([batch.prompt_ids, batch.response_ids], 1).cuda()
    attn = torch.cat([batch.prompt_mask, batch.response_mask.long()], 1).cuda()
    width = batch.response_ids.shape[1]
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, ids, attn, ids.shape[1] - width, 1.0, False)
    mask = batch.response_mask.cuda()
    diff = ((logp.float() - batch.old_logprobs.cuda()).abs() * mask).max().item()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    adv = torch.randn(ids.shape[0], device="cuda")
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for mb in torch.arange(ids.shape[0], device="cuda").chunk(4):
        lp, _ = sequence_logprobs(model, ids[mb], attn[mb], ids.shape[1] - width, 1.0, False)
        loss, _ = losses.policy_loss(
            losses.LossInputs(lp, batch.old_logprobs[mb.cpu()].cuda(), adv[mb], mask[mb])
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    t_upd = time.perf_counter() - t0
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    return {
        "model": name,
        "params_M": round(params_m, 1),
        "dtype": str(dtype),
        "rows": P * G,
        "tokens": ntok,
        "rollout_s": round(t_roll, 3),
        "rollout_tok_s": round(ntok / t_roll),
        "update_s": round(t_upd, 3),
        "update_tok_s": round(ntok / t_upd),
        "logprob_max_abs_diff": diff,
    }


def estimator_parity() -> dict:
    """Every registered estimator gives the same advantages on CUDA as on CPU."""
    from ebpo_bench import estimators as advantages

    g = torch.Generator().manual_seed(0)
    r = (torch.rand(64, 8, generator=g) < 0.4).float()
    lengths = torch.randint(1, 50, (64, 8), generator=g)
    ids = [f"p{i}" for i in range(64)]
    out = {}
    for name in advantages.available():
        cpu = advantages.make(name)(r, prompt_ids=ids, lengths=lengths)[0]
        gpu = advantages.make(name)(r.cuda(), prompt_ids=ids, lengths=lengths.cuda())[0].cpu()
        out[name] = float((cpu - gpu).abs().max())
    return out


def vllm_rollouts(name: str = "small", P: int = 64, G: int = 8, T: int = 64) -> dict:
    """The vLLM backend on the GPU (bf16): engine start, sampling throughput, log-prob parity with the
    trainer, and parity again after perturbing the policy and syncing it in (through a sleep / wake cycle)."""
    tok = tinymodel.build_tokenizer()
    model = tinymodel.build_model(tok, seed=0, **SIZES[name]).to("cuda", torch.bfloat16)
    prompts = [tok(f"{i}+{i % 7}=", add_special_tokens=False)["input_ids"] for i in range(P)]
    torch.cuda.empty_cache()  # vLLM sizes its share from the free memory
    t0 = time.perf_counter()
    backend = make_backend("vllm", model, tok, gpu_memory_utilization=0.3)
    t_init = time.perf_counter() - t0
    params = SamplingParams(G, 1.0, 1.0, T)
    backend.generate(prompts[:4], params)  # warm-up, then the engine sleeps
    t0 = time.perf_counter()
    batch = backend.generate(prompts, params, seed=0)  # wakes (reloading the weights), samples, sleeps
    t_roll = time.perf_counter() - t0
    diff = logprob_diff(model, batch)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    t0 = time.perf_counter()
    backend.sync_weights(model)
    t_sync = time.perf_counter() - t0
    after = backend.generate(prompts, params, seed=1)
    from ebpo_bench.rollout.vllm import release_engine

    release_engine()  # the CLI run below starts its own engine in another process
    ntok = int(batch.lengths.sum())
    return {
        "model": name,
        "dtype": "bf16",
        "init_s": round(t_init, 1),
        "rows": P * G,
        "tokens": ntok,
        "rollout_s": round(t_roll, 3),
        "rollout_tok_s": round(ntok / t_roll),
        "sync_s": round(t_sync, 3),
        "logprob_max_abs_diff": diff,
        "logprob_max_abs_diff_after_sync": logprob_diff(model, after),
    }


def logprob_diff(model, batch) -> float:
    """max |sampler log-prob - trainer log-prob| over valid tokens."""
    ids = torch.cat([batch.prompt_ids, batch.response_ids], 1).cuda()
    attn = torch.cat([batch.prompt_mask, batch.response_mask.long()], 1).cuda()
    with torch.no_grad():
        logp, _ = sequence_logprobs(model, ids, attn, batch.prompt_ids.shape[1], 1.0, False)
    mask = batch.response_mask.cuda()
    return ((logp.float() - batch.old_logprobs.cuda()).abs() * mask).max().item()


def vllm_spec(out: Path) -> Path:
    """The smoke spec with vLLM rollouts and evaluation, 10 steps (sleep mode on: CUDA)."""
    import yaml

    spec = yaml.safe_load((ROOT / "scripts" / "gpu_smoke_spec.yaml").read_text())
    spec.update(name="gpu_smoke_vllm", eval={**spec["eval"], "backend": "vllm"})
    spec["rollout"] = {**spec["rollout"], "backend": "vllm", "vllm": {"gpu_memory_utilization": 0.3}}
    spec["train"] = {**spec["train"], "steps": 10}
    path = out / "gpu_smoke_vllm.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def cli_run(out: Path, spec: Path = ROOT / "scripts" / "gpu_smoke_spec.yaml") -> dict:
    env = dict(os.environ, EBPO_BENCH_CACHE=str(out / "cache"), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    t0 = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "ebpo_bench", "run", str(spec), "--quiet", "--results", str(out / "results")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    rows = []
    name = "gpu_smoke_vllm" if spec.stem == "gpu_smoke_vllm" else "gpu_smoke"
    mfile = out / f"results/{name}/ebpo/seed1/metrics.jsonl"
    if mfile.exists():
        rows = [json.loads(x) for x in mfile.read_text().splitlines() if x.strip()]
    return {
        "rc": p.returncode,
        "seconds": round(time.perf_counter() - t0, 1),
        "steps": len(rows),
        "step_s_median": sorted(r["time/step"] for r in rows)[len(rows) // 2] if rows else None,
        "reward_first5": sum(r["train/reward_mean"] for r in rows[:5]) / 5 if len(rows) >= 5 else None,
        "reward_last5": sum(r["train/reward_mean"] for r in rows[-5:]) / 5 if len(rows) >= 5 else None,
        "stdout_tail": p.stdout[-1500:],
        "stderr_tail": p.stderr[-1500:] if p.returncode else "",
    }


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    res = {
        "gpu": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "vllm": None,
        "throughput": [],
    }
    for name in SIZES:
        for dtype in (torch.float32, torch.bfloat16):
            res["throughput"].append(throughput(name, dtype))
            print(json.dumps(res["throughput"][-1]), flush=True)
    res["estimator_cpu_vs_cuda_max_abs_diff"] = estimator_parity()
    res["cli_run"] = cli_run(out)
    try:
        import vllm  # noqa: F401

        res["vllm"] = vllm.__version__
    except ImportError as e:
        res["vllm"] = f"vllm not importable, skipped ({e})"
        print(res["vllm"], flush=True)
    else:
        try:
            res["vllm_rollouts"] = vllm_rollouts()
        except Exception as e:  # noqa: BLE001 - record it; the CLI run below may still tell more
            res["vllm_rollouts"] = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(res["vllm_rollouts"]), flush=True)
        res["cli_run_vllm"] = cli_run(out, vllm_spec(out))
    (out / "gpu_smoke.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "gpu_smoke_out"))
