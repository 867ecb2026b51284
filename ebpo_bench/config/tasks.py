"""Training task specs, a discriminated union on ``type`` (dispatch: ``ebpo_bench/data/tasks``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from ebpo_bench.config.base import Cfg as _Cfg


class SyntheticTaskConfig(_Cfg):
    """Offline arithmetic task family with difficulty levels and topics (ebpo_bench/tasks/synthetic.py)."""

    type: Literal["synthetic"] = "synthetic"
    topics: list[Literal["add", "sub", "mul"]] = Field(["add", "sub", "mul"], min_length=1)
    train_levels: list[Annotated[int, Field(ge=1, le=5)]] = Field([1, 2, 3, 4], min_length=1)
    eval_levels: list[Annotated[int, Field(ge=1, le=5)]] = Field([1, 2, 3, 4, 5])
    eval_per_level: int = Field(
        100, ge=1, description="Held-out problems per level (fixed, disjoint from training)."
    )
    seed: int = Field(0, description="Seed of the problem generator (held-out splits do not depend on it).")


class FileTaskConfig(_Cfg):
    """Training prompts from a local JSONL / JSON / parquet file or a save_to_disk folder."""

    type: Literal["file"] = "file"
    path: str = Field(description="Path to the data file or folder.")
    prompt_field: str = Field("problem", description="Record field holding the problem text.")
    answer_field: str = Field("answer", description="Record field holding the gold answer.")
    id_field: str | None = Field(None, description="Record field holding a stable id (default: row index).")
    template: Literal["boxed", "dapo", "raw"] = Field(
        "boxed", description="Prompt template around the problem."
    )
    max_examples: int | None = Field(None, ge=1, description="Use only the first N records.")


class HFTaskConfig(FileTaskConfig):
    """Training prompts from a Hugging Face datasets id (needs the network)."""

    type: Literal["hf"] = "hf"  # type: ignore[assignment]
    path: str = Field(description="datasets id, e.g. 'BytedTsinghua-SIA/DAPO-Math-17k'.")
    split: str = Field("train", description="Dataset split.")


TaskConfig = Annotated[SyntheticTaskConfig | FileTaskConfig | HFTaskConfig, Field(discriminator="type")]
