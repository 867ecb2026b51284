"""Size estimates printed by ``run --dry-run``: steps, responses and generated tokens per run."""

from __future__ import annotations

from ebpo_bench.config.spec import RunConfig


def describe_runs(runs: list[RunConfig]) -> list[str]:
    """One line per run plus a total: steps, responses per step, token budget."""
    lines, total_tokens = [], 0
    for r in runs:
        responses = r.train.prompts_per_step * r.rollout.group_size
        tokens = r.train.steps * responses * r.rollout.max_new_tokens
        total_tokens += tokens
        lines.append(
            f"{r.run_id:<28} steps={r.train.steps:<5} P={r.train.prompts_per_step:<4} "
            f"G={r.rollout.group_size:<3} responses/step={responses:<6} max generated tokens={tokens:.2e}"
        )
    lines.append(f"total: {len(runs)} runs, at most {total_tokens:.2e} generated tokens")
    return lines
