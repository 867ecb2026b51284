"""Load spec files, expand arms x grid x seeds into runs, and explain every error in one message.

``load_experiment(path)`` reads YAML, validates the base spec and every expanded run (so an arm
or grid typo fails at load time, before anything imports torch) and returns an ``Experiment``.
Errors are raised as ``SpecError`` whose text names the file, the field path, what is wrong and
what to set instead (with the closest valid name for typos).

Merge rule: arm overrides are deep-merged onto the base mapping; a sub-mapping whose ``type``
differs from the base's (e.g. an arm switching ``advantage`` from ebpo to grpo) replaces the base
mapping instead of merging into it, because the other type's knobs would not be valid there.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ebpo_bench.config.spec import ExperimentSpec, RunConfig
from ebpo_bench.registry import suggest

#: short names of grid axes in run ids (``rollout.group_size: 4`` -> ``G4``)
AXIS_ABBREV = {"rollout.group_size": "G", "train.prompts_per_step": "P", "train.lr": "lr"}


class SpecError(ValueError):
    """A spec problem, phrased for the user: file, field path, what is wrong, what to do."""


@dataclass(frozen=True)
class Experiment:
    """A validated spec file and its expanded runs."""

    path: Path | None
    spec: ExperimentSpec
    runs: list[RunConfig]

    @property
    def name(self) -> str:
        return self.spec.name

    def arms(self) -> list[str]:
        return sorted({r.arm for r in self.runs})


# ---------------------------------------------------------------- loading
def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise SpecError(f"{path}: no such file; check the path (shipped specs are in specs/)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(
            f"{path}:{where}: not valid YAML ({getattr(e, 'problem', e)}); fix the syntax"
        ) from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: the top level must be a mapping of spec fields, got {type(data).__name__}")
    return data


def load_experiment(
    path: str | Path, overrides: dict | None = None, profile: str | None = None
) -> Experiment:
    """Read, validate and expand a spec file; raise ``SpecError`` on any problem."""
    path = Path(path)
    from ebpo_bench.config.profiles import (
        apply_profile,
    )  # drops the spec's `profiles:` block, applies `profile` (ebpo_bench/config/profiles.py)

    raw = apply_profile(read_yaml(path), profile, str(path))
    if overrides:
        raw = deep_merge(raw, overrides)
    return build_experiment(raw, source=str(path), path=path)


def build_experiment(raw: dict, source: str = "<spec>", path: Path | None = None) -> Experiment:
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, source, ExperimentSpec)) from None
    _check_grid_paths(spec, source)
    runs = [_validate_run(run_raw, source, prefix) for run_raw, prefix in _expand_raw(raw, spec)]
    ids = [r.run_id for r in runs]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        raise SpecError(
            f"{source}: duplicate run ids {sorted(dup)}; give arms distinct names or dedupe grid values"
        )
    return Experiment(path=path, spec=spec, runs=runs)


def _validate_run(run_raw: dict, source: str, prefix: str) -> RunConfig:
    try:
        return RunConfig.model_validate(run_raw)
    except ValidationError as e:
        raise SpecError(format_validation_error(e, source, RunConfig, prefix=prefix)) from None


def _expand_raw(raw: dict, spec: ExperimentSpec):
    base = {k: v for k, v in raw.items() if k not in ("arms", "grid", "seeds")}
    arms = spec.arms or {spec.advantage.type: {}}
    axes = list(spec.grid.items())
    for arm, override in arms.items():
        merged = deep_merge(base, override or {})
        for combo in itertools.product(*[vals for _, vals in axes]) if axes else [()]:
            point = copy.deepcopy(merged)
            values = {}
            for (axis, _), value in zip(axes, combo):
                set_path(point, axis, value)
                values[axis] = value
            for seed in spec.seeds:
                rid = run_id(arm, values, seed)
                run = dict(point, seed=seed, arm=arm, run_id=rid, axes=values)
                yield run, f"arms.{arm}" if spec.arms else ""


def run_id(arm: str, axes: dict, seed: int) -> str:
    """Stable run id: ``<arm>/<axis values>/seed<k>``, e.g. ``ebpo/G4/seed1``."""
    parts = [arm]
    for axis, value in axes.items():
        short = AXIS_ABBREV.get(axis, axis.rsplit(".", 1)[-1])
        parts.append(re.sub(r"[^A-Za-z0-9_.=-]", "_", f"{short}{value}"))
    return "/".join(parts + [f"seed{seed}"])


def _check_grid_paths(spec: ExperimentSpec, source: str) -> None:
    for axis, values in spec.grid.items():
        if axis in ("seeds", "seed"):
            raise SpecError(
                f"{source}: grid.{axis}: seeds are not a grid axis; list them in the top-level 'seeds'"
            )
        model: Any = RunConfig
        for part in axis.split("."):
            fields = _fields_of(model)
            if fields is None or part not in fields:
                hint = suggest(part, fields or {})
                raise SpecError(f"{source}: grid: '{axis}' is not a spec field ('{part}' unknown).{hint}")
            model = _model_of(fields[part].annotation, None)
        if not values:
            raise SpecError(f"{source}: grid.{axis}: give at least one value")


# ---------------------------------------------------------------- merging
def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` with ``override`` merged in (see the module docstring for ``type``)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        old = out.get(key)
        if (
            isinstance(old, dict)
            and isinstance(value, dict)
            and old.get("type", value.get("type")) == value.get("type", old.get("type"))
        ):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def set_path(d: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def spec_hash(run: RunConfig) -> str:
    """sha256 of the resolved run config (canonical JSON), first 16 hex digits.

    ``report`` is left out: it changes how results are read, not what a run computes.
    """
    blob = json.dumps(run.model_dump(mode="json", exclude={"report"}), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolved_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, default_flow_style=None)


# ---------------------------------------------------------------- error messages
def _fields_of(model: Any) -> dict | None:
    return getattr(model, "model_fields", None) if isinstance(model, type) else None


def _model_of(annotation: Any, tag: Any) -> Any:
    """The pydantic model inside an annotation (unwrapping Optional/Annotated/Union, by tag)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [m for a in typing.get_args(annotation) if (m := _model_of(a, tag)) is not None]
    for m in models:
        if tag is not None and "type" in m.model_fields and m.model_fields["type"].default == tag:
            return m
    return models[0] if models else None


def _walk(root: Any, loc: tuple) -> tuple[Any, list[str]]:
    """Follow a pydantic error location; return the model at the end and the user-facing path."""
    model, path = root, []
    i = 0
    while i < len(loc):
        part = loc[i]
        fields = _fields_of(model)
        if fields is not None and part in fields:
            path.append(str(part))
            ann = fields[part].annotation
            nxt = loc[i + 1] if i + 1 < len(loc) else None
            sub = _model_of(ann, nxt)
            if (
                sub is not None
                and nxt is not None
                and "type" in sub.model_fields
                and sub.model_fields["type"].default == nxt
            ):
                i += 1  # skip the union tag pydantic puts in the location
            model = sub
        else:
            path.append(str(part))
            model = None
        i += 1
    return model, path


def format_validation_error(err: ValidationError, source: str, root: Any, prefix: str = "") -> str:
    """One message for a pydantic error: ``file: field.path: problem; remedy`` per problem."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        parent, path = _walk(root, loc[:-1]) if loc else (root, [])
        last = str(loc[-1]) if loc else ""
        full = ".".join(p for p in [prefix, *path, last] if p)
        lines.append(f"{source}: {_describe(e, parent, last, full)}")
    return "\n".join(dict.fromkeys(lines))


def _describe(e: dict, parent: Any, last: str, full: str) -> str:
    kind, ctx = e["type"], e.get("ctx", {})
    if kind == "extra_forbidden":
        fields = _fields_of(parent) or {}
        valid = ", ".join(f for f in fields if f != "type")
        return f"{full}: unknown field.{suggest(last, fields)} Valid fields here: {valid}"
    if kind == "union_tag_invalid":
        tags = re.findall(r"'([^']+)'", str(ctx.get("expected_tags", "")))
        tag = str(ctx.get("tag"))
        return f"{full}.type: unknown type '{tag}'.{suggest(tag, tags)} Available: {', '.join(tags)}"
    if kind == "union_tag_not_found":
        return f"{full}: 'type' is missing; set {full}.type (see `ebpo-bench ls`)"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'|(\d+)", str(ctx.get("expected", "")))
        opts = [a or b for a, b in choices]
        got = str(e.get("input"))
        return f"{full}: '{got}' is not allowed.{suggest(got, opts)} Choose one of: {', '.join(opts)}"
    if kind == "missing":
        return f"{full}: required field is missing; set it"
    msg = e["msg"].removeprefix("Value error, ")
    if kind == "value_error" or not last:
        return f"{full + ': ' if full else ''}{msg}"
    return f"{full}: {msg} (got {e.get('input')!r})"
