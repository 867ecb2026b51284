"""Spec blocks of held-out evaluation, the results root and the report (none of them enters the training
hash: ``config/load.py`` NOT_HASHED)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ebpo_bench.config.base import Cfg as _Cfg
from ebpo_bench.config.rollout import engine_config


class EvalConfig(_Cfg):
    """Held-out evaluation (per difficulty level for the synthetic task)."""

    every: int = Field(0, ge=0, description="Evaluate every N steps during training (0 = only at the end).")
    n_samples: int = Field(4, ge=1, description="Samples per problem (avg@n, pass@k for k <= n).")
    temperature: float = Field(1.0, ge=0, description="0 means greedy decoding.")
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int | None = Field(None, ge=1, description="Defaults to rollout.max_new_tokens.")
    backend: str = Field(
        "hf",
        description="Sampling engine of held-out evaluation (`ebpo-bench ls backends`): with the same type "
        "as rollout.backend it takes those options (one vLLM engine serves both), else its defaults.",
    )
    seed: int = Field(1234, description="Sampling seed of the evaluation, separate from training seeds.")
    keep_text: bool = Field(True, description="Store response text in eval.jsonl (else a hash).")
    benchmarks: list[str] = Field(
        default_factory=list,
        description="Math benchmarks to evaluate on (`ebpo-bench ls benchmarks`), besides synthetic levels.",
    )
    limit: int | None = Field(None, ge=1, description="Only the first N problems of each benchmark.")
    template: Literal["boxed", "dapo"] = Field(
        "boxed", description="Benchmark prompt template (its answer format is graded)."
    )
    data_dir: str | None = Field(
        None, description="Local benchmark copies (else $EBPO_BENCH_DATA, else ../shared/data)."
    )

    @model_validator(mode="after")
    def _greedy_single(self) -> EvalConfig:
        if self.temperature == 0 and self.n_samples > 1:
            raise ValueError(
                f"n_samples={self.n_samples} with temperature 0 (greedy) gives identical samples; "
                "set eval.temperature > 0 or eval.n_samples: 1"
            )
        return self

    @field_validator("benchmarks")
    @classmethod
    def _known_benchmarks(cls, names: list[str]) -> list[str]:
        from ebpo_bench.eval.benchmarks import BENCHMARKS

        for name in names:
            try:
                BENCHMARKS.get(name)
            except KeyError as e:  # pydantic reports ValueErrors, with the registry's "did you mean"
                raise ValueError(e.args[0]) from None
        return names

    @field_validator("backend")
    @classmethod
    def _known_engine(cls, name: str) -> str:
        engine_config(name)  # ValueError with a did-you-mean for an unknown engine
        return name


class OutputConfig(_Cfg):
    root: str = Field("results", description="Results root; runs go to <root>/<name>/<run-id>/.")


class ReportConfig(_Cfg):
    reference: str | None = Field(
        None, description="Arm the report compares every other arm with (default grpo; --reference wins)."
    )
    smooth: int | None = Field(
        None, ge=1, description="Rolling-mean window of training curves in steps (default: steps / 25)."
    )
