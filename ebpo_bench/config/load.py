"""Load spec files, expand arms x grid x seeds into runs, and explain every error in one message.

``load_experiment(path)`` reads YAML, validates the base spec, every expanded run and every profile
(so an arm, grid or profile typo fails at load time, before anything imports torch) and returns an
``Experiment``. Errors are raised as one ``SpecError`` listing every problem found, one line each
(capped at ``MAX_ERRORS``), naming the file (and profile), the field path, what is wrong and what to
set instead (with the closest valid name for typos).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ebpo_bench.config.merge import deep_merge, fields_of, model_of, set_path
from ebpo_bench.config.overrides import apply_sets
from ebpo_bench.config.profiles import apply_profile, profile_names
from ebpo_bench.config.spec import ExperimentSpec, RunConfig
from ebpo_bench.errors import SpecError
from ebpo_bench.registry import suggest

__all__ = ["Experiment", "SpecError", "build_experiment", "deep_merge", "load_experiment", "read_yaml"]

#: short names of grid axes in run ids (``rollout.group_size: 4`` -> ``G4``)
AXIS_ABBREV = {"rollout.group_size": "G", "train.prompts_per_step": "P", "train.lr": "lr"}


#: at most this many error lines are reported per command (then "... and N more errors")
MAX_ERRORS = 20


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
    path: str | Path,
    overrides: dict | None = None,
    profile: str | None = None,
    sets: list[tuple[str, Any]] | None = None,
) -> Experiment:
    """Read, validate and expand a spec file (and every profile it declares); raise ``SpecError``
    listing every problem found (one line each, at most ``MAX_ERRORS``).

    ``sets`` are ``--set`` overrides (``overrides.parse_sets``), applied after the profile.
    """
    path = Path(path)
    data = read_yaml(path)
    raw = apply_profile(data, profile, str(path))
    if overrides:
        raw = deep_merge(raw, overrides)
    if sets:
        raw = apply_sets(raw, sets)
    exp, entries = _entries(raw, f"{path} [profile {profile}]" if profile else str(path), path)
    seen, errors = {k for k, _ in entries}, [line for _, line in entries]
    for other in profile_names(data):  # a typo in a profile fails now, naming the profile
        if other != profile:
            try:
                _, more = _entries(apply_profile(data, other, str(path)), f"{path} [profile {other}]")
            except SpecError as e:
                more = [(str(e), str(e))]
            errors += [line for k, line in more if k not in seen]  # not the base's errors again
    raise_errors(errors)
    assert exp is not None
    return exp


def build_experiment(raw: dict, source: str = "<spec>", path: Path | None = None) -> Experiment:
    exp, lines = experiment_errors(raw, source, path)
    raise_errors(lines)
    assert exp is not None
    return exp


def raise_errors(lines: list[str]) -> None:
    """Raise one ``SpecError`` holding every (distinct) error line, capped at ``MAX_ERRORS``."""
    lines = list(dict.fromkeys(lines))
    if not lines:
        return
    if len(lines) > MAX_ERRORS:
        lines = lines[:MAX_ERRORS] + [f"... and {len(lines) - MAX_ERRORS} more errors"]
    raise SpecError("\n".join(lines))


def experiment_errors(
    raw: dict, source: str, path: Path | None = None
) -> tuple[Experiment | None, list[str]]:
    """Validate the base spec and every expanded run; return the experiment (None on errors) and
    every error line. Errors of the base are not repeated for each run."""
    exp, entries = _entries(raw, source, path)
    return exp, [line for _, line in entries]


def _entries(raw: dict, source: str, path: Path | None = None) -> tuple[Experiment | None, list[tuple]]:
    """``experiment_errors`` with a key per line ((field path, error type), arm prefix left out) that
    tells repeats of one problem (per arm, run or profile) from new ones."""
    entries: list[tuple] = []
    spec = None
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as e:
        entries += _keyed(e, source, ExperimentSpec, "")
    arms, grid, seeds = _layout(raw, spec)
    grid_lines = _grid_path_errors(grid, source)
    if grid_lines:
        return None, entries + [(line, line) for line in grid_lines]
    runs = []
    for run_raw, prefix in _expand_raw(raw, arms, grid, seeds, bool(raw.get("arms"))):
        try:
            runs.append(RunConfig.model_validate(run_raw))
        except ValidationError as e:
            seen = {k for k, _ in entries}
            entries += [(k, line) for k, line in _keyed(e, source, RunConfig, prefix) if k not in seen]
    ids = [r.run_id for r in runs]
    if dup := {i for i in ids if ids.count(i) > 1}:
        line = f"{source}: duplicate run ids {sorted(dup)}; give arms distinct names or dedupe grid values"
        entries.append((line, line))
    if entries or spec is None:
        return None, entries
    return Experiment(path=path, spec=spec, runs=runs), []


def _keyed(err: ValidationError, source: str, root: Any, prefix: str) -> list[tuple]:
    keys = [(tuple(map(str, e["loc"])), e["type"]) for e in err.errors()]
    return list(zip(keys, validation_lines(err, source, root, prefix)))


def _layout(raw: dict, spec: ExperimentSpec | None) -> tuple[dict, dict, list]:
    """Arms, grid and seeds: from the validated spec, else what the raw mapping has of them."""
    if spec is not None:
        return spec.arms or {spec.advantage.type: {}}, dict(spec.grid), list(spec.seeds)
    arms = raw.get("arms") if isinstance(raw.get("arms"), dict) else {}
    adv = raw.get("advantage") if isinstance(raw.get("advantage"), dict) else {}
    arms = arms or {str(adv.get("type", "ebpo")): {}}
    arms = {a: o if isinstance(o, dict) else {} for a, o in arms.items()}
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    grid = {k: v for k, v in grid.items() if isinstance(v, list)}
    seeds = raw.get("seeds") if isinstance(raw.get("seeds"), list) and raw.get("seeds") else [0]
    return arms, grid, seeds[:1]


def _expand_raw(raw: dict, arms: dict, grid: dict, seeds: list, named_arms: bool):
    base = {k: v for k, v in raw.items() if k not in ("arms", "grid", "seeds")}
    axes = list(grid.items())
    for arm, override in arms.items():
        merged = deep_merge(base, override or {})
        for combo in itertools.product(*[vals for _, vals in axes]) if axes else [()]:
            point = copy.deepcopy(merged)
            values = {}
            for (axis, _), value in zip(axes, combo):
                set_path(point, axis, value)
                values[axis] = value
            for seed in seeds:
                rid = run_id(arm, values, seed)
                run = dict(point, seed=seed, arm=arm, run_id=rid, axes=values)
                yield run, f"arms.{arm}" if named_arms else ""


def run_id(arm: str, axes: dict, seed: int) -> str:
    """Stable run id: ``<arm>/<axis values>/seed<k>``, e.g. ``ebpo/G4/seed1``."""
    parts = [arm]
    for axis, value in axes.items():
        short = AXIS_ABBREV.get(axis, axis.rsplit(".", 1)[-1])
        parts.append(re.sub(r"[^A-Za-z0-9_.=-]", "_", f"{short}{value}"))
    return "/".join(parts + [f"seed{seed}"])


def _grid_path_errors(grid: dict, source: str) -> list[str]:
    lines = []
    for axis, values in grid.items():
        if axis in ("seeds", "seed"):
            lines.append(
                f"{source}: grid.{axis}: seeds are not a grid axis; list them in the top-level 'seeds'"
            )
            continue
        model: Any = RunConfig
        for part in axis.split("."):
            fields = fields_of(model)
            if fields is None or part not in fields:
                hint = suggest(part, fields or {})
                lines.append(f"{source}: grid: '{axis}' is not a spec field ('{part}' unknown).{hint}")
                break
            model = model_of(fields[part].annotation, None)
        if not values:
            lines.append(f"{source}: grid.{axis}: give at least one value")
    return lines


# ---------------------------------------------------------------- merging
#: sections that do not change what is trained (evaluation, logging, reporting): outside the spec hash
NOT_HASHED = ("eval", "log", "report")


def spec_hash(run: RunConfig) -> str:
    """sha256 of the resolved run config without ``NOT_HASHED`` (canonical JSON), first 16 hex digits."""
    return _hash({k: v for k, v in run.model_dump(mode="json").items() if k not in NOT_HASHED})


def eval_hash(run: RunConfig) -> str:
    """sha256 of the resolved ``eval`` section, first 16 hex digits."""
    return _hash(run.eval.model_dump(mode="json"))


def _hash(obj: Any) -> str:
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resolved_yaml(model: BaseModel) -> str:
    return yaml.safe_dump(model.model_dump(mode="json"), sort_keys=False, default_flow_style=None)


# ---------------------------------------------------------------- error messages
def _walk(root: Any, loc: tuple) -> tuple[Any, list[str]]:
    """Follow a pydantic error location; return the model at the end and the user-facing path."""
    model, path = root, []
    i = 0
    while i < len(loc):
        part = loc[i]
        fields = fields_of(model)
        if fields is not None and part in fields:
            path.append(str(part))
            ann = fields[part].annotation
            nxt = loc[i + 1] if i + 1 < len(loc) else None
            sub = model_of(ann, nxt)
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
    return "\n".join(dict.fromkeys(validation_lines(err, source, root, prefix)))


def validation_lines(err: ValidationError, source: str, root: Any, prefix: str = "") -> list[str]:
    """One ``file: field.path: problem; remedy`` line per pydantic error, in order."""
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        parent, path = _walk(root, loc[:-1]) if loc else (root, [])
        last = str(loc[-1]) if loc else ""
        full = ".".join(p for p in [prefix, *path, last] if p)
        lines.append(f"{source}: {_describe(e, parent, last, full)}")
    return lines


def _describe(e: dict, parent: Any, last: str, full: str) -> str:
    kind, ctx = e["type"], e.get("ctx", {})
    if kind == "extra_forbidden":
        fields = fields_of(parent) or {}
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
