"""Scale profiles of a spec (``profiles:``) and the GPU-hour estimate printed by ``run --dry-run``.

A spec may carry ``profiles: {<name>: <partial spec>}``. ``ebpo-bench run SPEC --profile tiny``
applies one before validation:

- every top-level key of the profile except ``arms`` is deep-merged onto the base spec
  (``config.merge.deep_merge``, so a different ``type`` replaces the block);
- the same keys are merged onto each arm override *that sets that section itself* (so an arm that
  switches ``model.path`` is switched back to the tiny model too, while arms that do not touch a
  section keep inheriting it from the base);
- ``profile.arms.<arm>`` is merged last onto that arm (e.g. DAPO's overlong buffer in tokens);
  ``profile.drop_arms: [...]`` removes arms that have no tiny counterpart;
- the experiment name becomes ``<name>-<profile>``, so its results never mix with real-scale ones.

Without ``--profile`` the ``profiles`` block is ignored (removed before validation).

The GPU-hour estimate is a transparent rule of thumb, not a measurement: see ``gpu_hours``.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from ebpo_bench.config.merge import deep_merge
from ebpo_bench.errors import SpecError
from ebpo_bench.registry import suggest

PROFILES_KEY = "profiles"

#: assumed generation throughput, tokens per GPU-second, for an 8B model with a vLLM-class engine on
#: an H100/H200 at large batch (an assumption, not measured here; the hf backend is several x slower)
GEN_TOKENS_PER_GPU_S_8B = 10_000.0
#: assumed training throughput (policy fwd+bwd plus reference fwd), tokens per GPU-second, 8B model
TRAIN_TOKENS_PER_GPU_S_8B = 5_000.0
#: assumed mean response length as a fraction of the cap (reasoning models often run near it)
MEAN_LENGTH_FRACTION = 0.5


def profile_names(raw: dict) -> list[str]:
    """Names of the profiles a raw spec mapping declares."""
    return sorted((raw.get(PROFILES_KEY) or {}).keys())


def apply_profile(raw: dict, name: str | None, source: str = "<spec>") -> dict:
    """Return ``raw`` without its ``profiles`` block, with profile ``name`` applied (see the module
    docstring).

    Raises:
        SpecError: the profile does not exist or is not a mapping.
    """
    out = {k: copy.deepcopy(v) for k, v in raw.items() if k != PROFILES_KEY}
    if name is None:
        return out
    profiles = raw.get(PROFILES_KEY) or {}
    if name not in profiles:
        hint = suggest(name, list(profiles))
        have = ", ".join(profiles) or "none"
        raise SpecError(f"{source}: no profile '{name}'.{hint} Profiles in this spec: {have}")
    prof = profiles[name]
    if not isinstance(prof, dict):
        raise SpecError(f"{source}: profiles.{name}: must be a mapping of spec fields")
    common = {k: v for k, v in prof.items() if k not in ("arms", "drop_arms")}
    out = deep_merge(out, common)
    arms = {a: o for a, o in (out.get("arms") or {}).items() if a not in (prof.get("drop_arms") or [])}
    for arm, override in arms.items():
        override = dict(override or {})
        for section, value in common.items():
            if section in override and isinstance(override[section], dict) and isinstance(value, dict):
                override[section] = deep_merge(override[section], value)
            elif section in override:
                override[section] = copy.deepcopy(value)
        arms[arm] = deep_merge(override, (prof.get("arms") or {}).get(arm) or {})
    if "arms" in out:
        out["arms"] = arms
    out["name"] = f"{out.get('name', 'experiment')}-{name}"
    return out


def model_billions(path: str) -> float | None:
    """Parameter count in billions read from a model id (``Qwen/Qwen3-8B`` -> 8.0); None if unknown."""
    m = re.search(r"(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])", path.rsplit("/", 1)[-1])
    return float(m.group(1)) if m else None


def gpu_hours(run: Any) -> float | None:
    """Rough GPU hours of one run; None for the tiny model (a CPU run) or an unknown model size.

    GPU-s = tokens x (1 / gen + 1 / train) x (B / 8), with tokens = steps x P x G x max_new_tokens x
    ``MEAN_LENGTH_FRACTION`` (DAPO dynamic sampling may generate up to ``max_tries`` x that), and the
    8B throughputs ``GEN_TOKENS_PER_GPU_S_8B`` / ``TRAIN_TOKENS_PER_GPU_S_8B`` scaled linearly with
    the parameter count B. Evaluation is not counted.
    """
    if run.model.path == "tiny":
        return None
    b = model_billions(run.model.path)
    if b is None:
        return None
    tokens = (
        run.train.steps
        * run.train.prompts_per_step
        * run.rollout.group_size
        * run.rollout.max_new_tokens
        * MEAN_LENGTH_FRACTION
    )
    per_token = 1.0 / GEN_TOKENS_PER_GPU_S_8B + 1.0 / TRAIN_TOKENS_PER_GPU_S_8B
    return tokens * per_token * (b / 8.0) / 3600.0


def estimate_lines(runs: list[Any]) -> list[str]:
    """The dry run's summary: runs, optimiser steps, and the GPU-hour estimate with its assumptions."""
    steps = sum(r.train.steps for r in runs)
    hours = [gpu_hours(r) for r in runs]
    known = [h for h in hours if h is not None]
    lines = [f"runs: {len(runs)}; RL steps in all: {steps}"]
    if known:
        lines.append(
            f"GPU hours (ESTIMATE, not measured): about {sum(known):,.0f} in all, {max(known):,.0f} for the "
            f"largest run; assumes {GEN_TOKENS_PER_GPU_S_8B:,.0f} generated + "
            f"{TRAIN_TOKENS_PER_GPU_S_8B:,.0f} "
            f"trained tokens per GPU-second for an 8B model (scaled by size), responses at "
            f"{MEAN_LENGTH_FRACTION:.0%} of the cap, no evaluation (ebpo_bench/config/profiles.py)"
        )
    if len(known) < len(runs):
        lines.append(
            f"{len(runs) - len(known)} runs use the tiny model or an unknown size: CPU-scale, no GPU estimate"
        )
    return lines
