"""The policy model's spec block: which weights, their precision, the embedded tiny model's shape and its
warm start. Torch-free, like every spec module."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ebpo_bench.config.base import Cfg as _Cfg


class TinyModelConfig(_Cfg):
    """Shape of the embedded tiny causal LM (built locally, no download)."""

    layers: int = Field(2, ge=1, description="Transformer layers.")
    hidden: int = Field(128, ge=8, description="Hidden size.")
    heads: int = Field(4, ge=1, description="Attention heads (hidden must be divisible by it).")
    intermediate: int = Field(512, ge=8, description="MLP width.")
    init_seed: int = Field(0, description="Seed of the random initialisation (shared by every arm and seed).")
    vocab_size: int | None = Field(
        None,
        ge=260,
        description="Embedding rows; None = the byte tokenizer's 260. Larger (e.g. Qwen3's 151936) adds "
        "never-prompted rows the model can still sample: memory rehearsals at a real vocabulary.",
    )


class WarmStartConfig(_Cfg):
    """Short supervised phase before RL, cached on disk by content hash and shared by every run."""

    steps: int = Field(600, ge=1, description="Supervised optimiser steps.")
    batch_size: int = Field(64, ge=1, description="Examples per supervised step.")
    lr: float = Field(1e-3, gt=0, description="AdamW learning rate of the warm start.")
    levels: list[int] = Field([1, 2], min_length=1, description="Synthetic-task levels trained on.")
    seed: int = Field(0, description="Seed of the warm start's data and initial weights.")


class ModelConfig(_Cfg):
    """The policy model."""

    path: str = Field(
        "tiny",
        description="'tiny' for the embedded tiny model, else a local transformers directory or a hub id.",
    )
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="Used when path is 'tiny'.")
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Master weights dtype (AdamW updates these). For bf16 compute keep float32 here and set "
        "mixed_precision: bf16.",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no",
        description="accelerate mixed precision: bf16 compute (autocast; FSDP2 MixedPrecisionPolicy) over "
        "float32 master weights and optimiser state; the reference model is then held in bf16.",
    )
    allow_bf16_master_weights: bool = Field(
        False,
        description="Accept dtype: bfloat16 under AdamW (bf16 master weights: updates much smaller than "
        "the weight, e.g. at lr 1e-6, are rounded away).",
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory in the update.")
    chat_template: bool = Field(False, description="Wrap prompts in the tokenizer's chat template.")
    warm_start: WarmStartConfig | None = Field(
        None, description="Supervised warm start on the synthetic task (tiny model only)."
    )

    @model_validator(mode="after")
    def _master_weights(self) -> ModelConfig:
        if self.dtype == "bfloat16" and not self.allow_bf16_master_weights:
            raise ValueError(
                "dtype: bfloat16 keeps bf16 master weights and AdamW state (updates at lr 1e-6 are "
                "mostly rounded away); set model.dtype: float32 with model.mixed_precision: bf16, or "
                "model.allow_bf16_master_weights: true"
            )
        return self
