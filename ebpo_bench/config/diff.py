"""What changed between a run directory's resolved spec and the spec now: ``field.path: old -> new``.

Used by the runner to say which fields make it refuse a run, and to tell training changes (which
change the spec hash) from evaluation / logging changes (``load.NOT_HASHED``), which do not.
"""

from __future__ import annotations

import yaml

from ebpo_bench.config.load import NOT_HASHED
from ebpo_bench.config.spec import RunConfig
from ebpo_bench.results import RunPaths


def eval_field(change: str) -> bool:
    """Whether a ``spec_diff`` line is outside the spec hash (``eval.*``, ``log.*``)."""
    return change.split(".", 1)[0] in NOT_HASHED


def read_resolved(paths: RunPaths) -> dict:
    """A run directory's spec.resolved.yaml as a mapping ({} when missing or unreadable)."""
    try:
        return yaml.safe_load(paths.spec.read_text()) or {}
    except (FileNotFoundError, yaml.YAMLError):
        return {}


def spec_diff(old: dict, run: RunConfig) -> list[str]:
    """``field.path: old -> new`` for every field whose resolved value changed (missing = default)."""
    new = flatten(run.model_dump(mode="json"))
    before = flatten(old)
    keys = [k for k in new if k in before and before[k] != new[k]]
    keys += [k for k in before if k not in new]
    return [f"{k}: {before.get(k, '(unset)')!r} -> {new.get(k, '(unset)')!r}" for k in keys]


def flatten(d: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
