"""Deep merge of spec mappings: arms onto the base spec, profiles onto both, overrides last.

A sub-mapping whose ``type`` differs from the base's (e.g. an arm switching ``advantage.type`` or
``loss.surrogate.type``) replaces that mapping instead of merging into it, because the other type's
knobs would not be valid there.
"""

from __future__ import annotations

import copy


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
