"""The base of every spec model: unknown keys are refused and a validated config is immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Cfg(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
