"""``--set key.path=value`` overrides: parsed with YAML, checked against the spec schema, merged.

Each value is parsed as YAML (``1e-5`` is a float, ``[1, 2]`` a list, ``null`` None) and pydantic
validates the merged spec, so a value has exactly the type the spec field declares. A path must
name a spec field (``train.lr``) or a spec-level key (``seeds``, ``arms.<arm>.<field>``,
``grid.<axis>``, ``profiles.<name>.<field>``); an unknown one is refused with the closest name.

Overrides apply after ``--profile``, to the base spec and to every arm that sets the same field
itself, so ``--set train.lr=1e-5`` changes every run. The resolved spec of each run records the
result (``spec.resolved.yaml``, ``run --dry-run``).
"""

from __future__ import annotations

import copy
from typing import Any

import yaml

from ebpo_bench.config.merge import fields_of, model_of, set_path
from ebpo_bench.config.spec import ExperimentSpec
from ebpo_bench.errors import SpecError
from ebpo_bench.registry import suggest

#: spec-level keys whose sub-paths are free-form (arm names, grid axes, profile names)
FREE_KEYS = ("arms", "grid", "profiles", "seeds")


def parse_sets(items: list[str] | None) -> list[tuple[str, Any]]:
    """``["train.lr=1e-5", ...]`` -> ``[("train.lr", 1e-05), ...]``; raise SpecError on bad syntax or path."""
    out = []
    for item in items or []:
        path, eq, text = item.partition("=")
        path = path.strip()
        if not eq or not path:
            raise SpecError(f"--set {item!r}: expected key.path=value, e.g. --set train.lr=1e-5")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as e:
            raise SpecError(
                f"--set {item!r}: the value is not valid YAML ({getattr(e, 'problem', e)})"
            ) from None
        check_path(path)
        out.append((path, value))
    return out


def check_path(path: str) -> None:
    """Refuse a dotted path that is not a field of the spec schema (with a did-you-mean)."""
    parts = path.split(".")
    if parts[0] in FREE_KEYS:
        return
    model: Any = ExperimentSpec
    for i, part in enumerate(parts):
        fields = fields_of(model)
        if fields is None:
            return  # a free-form mapping (or a union resolved by its type): pydantic checks the value
        if part not in fields:
            where = ".".join(parts[:i]) or "the spec"
            hint = suggest(part, fields)
            raise SpecError(
                f"--set {path}: '{part}' is not a field of {where}.{hint} Fields: {', '.join(fields)}"
            )
        model = model_of(fields[part].annotation, None)


def apply_sets(raw: dict, sets: list[tuple[str, Any]]) -> dict:
    """``raw`` with every override set on the base and on each arm that sets that field itself."""
    out = copy.deepcopy(raw)
    for path, value in sets:
        set_path(out, path, copy.deepcopy(value))
        if path.split(".")[0] in FREE_KEYS:
            continue
        for override in (out.get("arms") or {}).values():
            if isinstance(override, dict) and _has_path(override, path):
                set_path(override, path, copy.deepcopy(value))
    return out


def _has_path(d: dict, dotted: str) -> bool:
    for key in dotted.split("."):
        if not isinstance(d, dict) or key not in d:
            return False
        d = d[key]
    return True
