"""Deep merge of spec mappings (arms onto the base spec, profiles onto both, overrides last) and the
schema walk that dotted field paths need.

A sub-mapping whose ``type`` differs from the base's (e.g. an arm switching ``advantage.type`` or
``loss.surrogate.type``) replaces that mapping instead of merging into it, because the other type's
knobs would not be valid there.
"""

from __future__ import annotations

import copy
import typing
from typing import Any

from pydantic import BaseModel


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


def fields_of(model: Any) -> dict | None:
    return getattr(model, "model_fields", None) if isinstance(model, type) else None


def model_of(annotation: Any, tag: Any) -> Any:
    """The pydantic model inside an annotation (unwrapping Optional/Annotated/Union, by tag)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    models = [m for a in typing.get_args(annotation) if (m := model_of(a, tag)) is not None]
    for m in models:
        if tag is not None and "type" in m.model_fields and m.model_fields["type"].default == tag:
            return m
    return models[0] if models else None
