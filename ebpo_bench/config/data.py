"""How training prompts are ordered (``data.order``) and the knobs of each order."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer

from ebpo_bench.config.base import Cfg as _Cfg


class DifficultyOrderConfig(_Cfg):
    """The difficulty pre-pass of ``data.order: difficulty`` (ebpo_bench/data/orderings.py)."""

    estimator: Literal["prepass", "level"] = Field(
        "prepass",
        description="'prepass': the base model's pass rate over n_samples (the paper's EBPO-diff); "
        "'level': the task's own level label as a cheap proxy (synthetic task only, not the paper's method).",
    )
    n_samples: int = Field(16, ge=1, description="Samples per prompt in the pre-pass (paper: 16).")
    temperature: float = Field(1.0, gt=0, description="Pre-pass sampling temperature (paper: 1.0).")
    max_new_tokens: int | None = Field(
        None, ge=1, description="Pre-pass length cap (None: rollout.max_new_tokens)."
    )
    chunk: int = Field(
        64, ge=1, description="Prompts per resumable pre-pass chunk (appended to the cache file)."
    )
    strata: int = Field(
        1, ge=1, description="Quantile bins of pass rate, hard-ordered easy -> hard; shuffled within a bin."
    )
    seed: int = Field(0, description="Sampling seed of the pre-pass.")


class TopicOrderConfig(_Cfg):
    """Topic grouping of ``data.order: topic``: labels from the data, else clustered text."""

    field: str | None = Field(
        "topic", description="Example attribute / record field with a topic label; None forces clustering."
    )
    n_clusters: int = Field(
        10, ge=1, description="Clusters when the data has no labels (later authors' code: 10)."
    )
    embedding: Literal["hashed_ngrams", "sentence_transformers"] = Field(
        "hashed_ngrams",
        description="Text features for clustering: offline hashed character n-grams, or "
        "sentence-transformers all-MiniLM-L6-v2 (authors' revision code; needs that package and its "
        "weights).",
    )


class DataConfig(_Cfg):
    """How training prompts are ordered (orthogonal to the task)."""

    order: Literal["shuffle", "difficulty", "topic", "fixed"] = Field(
        "shuffle",
        description="Random order per seed; easy -> hard by pass rate; topic-contiguous; or file order.",
    )
    pool_size: int = Field(
        1024,
        ge=1,
        description="Synthetic task only: size of the finite prompt pool that non-shuffle orders sort.",
    )
    difficulty: DifficultyOrderConfig = Field(default_factory=DifficultyOrderConfig)
    topic: TopicOrderConfig = Field(default_factory=TopicOrderConfig)

    @model_serializer(mode="wrap")
    def _relevant_only(self, handler: Any) -> dict:
        # Knobs of the other orders are left out of resolved specs and spec hashes: they change no
        # number there, and runs saved before these orders existed keep their hash (no --force needed).
        out = handler(self)
        keep = {
            "shuffle": (),
            "fixed": (),
            "difficulty": ("pool_size", "difficulty"),
            "topic": ("pool_size", "topic"),
        }
        return {k: v for k, v in out.items() if k == "order" or k in keep[self.order]}
