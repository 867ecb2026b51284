"""The body of ``ebpo-bench eval``: evaluate a model on local benchmark files with either harness.

``native`` samples with the rollout backend and grades with ``MathVerifier`` (``eval.sampling.evaluate``, the
path of in-training evaluation); ``lm-eval`` runs ``lm_eval.simple_evaluate`` on task YAMLs generated for the
same files, prompts and golds (``lmeval.py``), then grades its responses with the same verifier. Both write
``eval.jsonl`` (one row per benchmark, problem, sample) and ``eval_summary.json`` into the output folder and
print a table.

The model is ``tiny`` (the embedded random tiny model), a run directory (``spec.resolved.yaml`` + the latest
checkpoint) or a local transformers directory. Settings: explicit arguments override a named preset
(``benchmarks.PRESETS``), which overrides ``DEFAULTS`` (one greedy sample of up to 1024 tokens). More than
one sample at temperature 0 is refused (the samples would be identical), and ``max_new_tokens`` is capped
by the model's context with a one-line note. Each evaluation writes its own folder (``folders.py``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ebpo_bench.eval import benchmarks as B
from ebpo_bench.eval.folders import eval_folder, run_step
from ebpo_bench.eval.outputs import format_table, write_outputs

DEFAULTS: dict[str, Any] = dict(
    n=1, temperature=0.0, top_p=1.0, max_new_tokens=1024, template="boxed", grader="math_verify"
)
HARNESSES = ("native", "lm-eval")


def resolve_settings(
    benches: list[str],
    *,
    preset: str | None = None,
    n: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_new_tokens: int | None = None,
    template: str | None = None,
    grader: str | None = None,
) -> dict[str, Any]:
    """Sampling settings and prompt template with per-benchmark n: explicit argument > preset > ``DEFAULTS``.

    An explicit ``n`` applies to every benchmark; a preset's ``n_overrides`` (OlympiadBench 4 in ``paper``)
    apply only when ``n`` is not given.
    """
    base, overrides = dict(DEFAULTS), {}
    if preset is not None:
        if preset not in B.PRESETS:
            from ebpo_bench.registry import suggest

            raise KeyError(
                f"Unknown preset '{preset}'.{suggest(preset, B.PRESETS)} Available: {', '.join(B.PRESETS)}"
            )
        p = dict(B.PRESETS[preset])
        overrides = p.pop("n_overrides", {})
        base.update(p)
    explicit = dict(
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        template=template,
        grader=grader,
    )
    base.update({k: v for k, v in explicit.items() if v is not None})
    if base["grader"] not in B.GRADERS:
        raise ValueError(f"unknown grader '{base['grader']}'; expected one of {B.GRADERS}")
    if n is not None:
        overrides = {}
    base["n"] = {b: int(overrides.get(b, base["n"])) for b in benches}
    if base["temperature"] == 0 and max(base["n"].values(), default=1) > 1:
        k = max(base["n"].values())
        raise ValueError(
            f"--n {k} with temperature 0 (greedy) gives {k} identical samples per problem; "
            "pass --temperature (e.g. 0.6), a sampling --preset (qwen_eval, paper), or --n 1"
        )
    return base


def cap_new_tokens(max_new_tokens: int, model: Any, tok: Any, examples: dict[str, list], chat: bool) -> int:
    """``max_new_tokens`` capped so the longest prompt plus the response fits the model's context
    (printed as a one-line note when it applies)."""
    import sys

    from ebpo_bench.rollout import encode_prompt

    cfg = getattr(model, "config", None)
    ctx = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    if not ctx:
        return max_new_tokens
    longest = max((len(encode_prompt(tok, e.prompt, chat)) for v in examples.values() for e in v), default=0)
    room = max(1, int(ctx) - longest)
    if max_new_tokens > room:
        print(
            f"note: max_new_tokens {max_new_tokens} capped to {room}: the model's context is {ctx} tokens "
            f"and the longest prompt takes {longest}",
            file=sys.stderr,
        )
    return min(max_new_tokens, room)


def load_model(model: str) -> tuple[Any, Any, bool, str]:
    """``(model, tokenizer, chat_template, display name)`` for ``tiny``, a run directory or a model
    directory."""
    if model == "tiny":
        from ebpo_bench.models import tiny as tinymodel

        tok = tinymodel.build_tokenizer()
        return tinymodel.build_model(tok), tok, False, "tiny"
    path = Path(model)
    if (path / "spec.resolved.yaml").is_file():
        return _load_run(path)
    if (path / "config.json").is_file():
        from ebpo_bench.config.spec import ModelConfig
        from ebpo_bench.models.loading import load_policy

        m, tok = load_policy(ModelConfig(path=str(path)), None)
        return m, tok, False, path.resolve().name
    raise FileNotFoundError(
        f"model '{model}': not 'tiny', a run directory (with spec.resolved.yaml) or a model "
        f"directory (with config.json)"
    )


def _load_run(path: Path) -> tuple[Any, Any, bool, str]:
    import yaml

    from ebpo_bench.config.spec import RunConfig
    from ebpo_bench.models.loading import load_policy
    from ebpo_bench.train.checkpoint import latest_checkpoint, model_weights

    run = RunConfig.model_validate(yaml.safe_load((path / "spec.resolved.yaml").read_text()))
    model, tok = load_policy(run.model, run.task, log=lambda m: None)
    ck = latest_checkpoint(path / "checkpoints")
    if ck is None:
        raise FileNotFoundError(f"run '{path}': no checkpoint under {path / 'checkpoints'}")
    model.load_state_dict(model_weights(ck))
    name = "_".join(path.resolve().parts[-2:])
    return model, tok, run.model.chat_template, name


def evaluate_native(
    model: Any,
    tok: Any,
    examples: dict[str, list],
    *,
    n: dict[str, int],
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    chat_template: bool,
    template: str = "boxed",
    keep_text: bool = True,
    backend: Any = "hf",
    quiet: bool = True,
    step: int = 0,
    grader: str = "math_verify",
) -> list[dict]:
    """Eval rows of the native harness (``sampling.evaluate_suites``, each benchmark with its own n)."""
    from ebpo_bench.eval.sampling import evaluate_suites

    return evaluate_suites(
        model,
        tok,
        [(examples, B.GRADE_FORMAT[template])],
        n=n,
        label="eval",
        quiet=quiet,
        order=lambda exs: by_length(exs, tok, chat_template),
        grader=grader,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        chat_template=chat_template,
        keep_text=keep_text,
        step=step,
        backend=backend,
    )


def by_length(examples: list, tok: Any, chat_template: bool) -> list:
    """Examples sorted by prompt length in tokens, so each generation chunk pads little (on the byte-level
    tiny model, 100 MATH-500 prompts x 4 samples take about 4x less time than in file order)."""
    from ebpo_bench.rollout import encode_prompt

    return sorted(examples, key=lambda e: len(encode_prompt(tok, e.prompt, chat_template)))


def hflm(model: Any, tok: Any, examples: dict[str, list], max_new_tokens: int, batch_size: int = 64) -> Any:
    """lm-eval's ``HFLM`` around an in-memory model, set up to tokenise as the native harness does: no BOS
    added, and a context window large enough that no prompt is left-truncated."""
    from lm_eval.models.huggingface import HFLM

    longest = max(
        (len(tok(e.prompt, add_special_tokens=False)["input_ids"]) for v in examples.values() for e in v),
        default=0,
    )
    device = str(next(model.parameters()).device)
    return HFLM(
        pretrained=model,
        tokenizer=tok,
        batch_size=batch_size,
        max_length=longest + max_new_tokens + 8,
        add_bos_token=False,
        device=device,
    )


def run_eval(
    model: str,
    benchmarks: list[str] | str,
    *,
    n: int | None = None,
    preset: str | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    max_new_tokens: int | None = None,
    limit: int | None = None,
    data_dir: str | Path | None = None,
    harness: str = "native",
    out: Path | None = None,
    seed: int = 1234,
    quiet: bool = False,
    template: str | None = None,
    keep_text: bool = True,
    backend: str = "hf",
    grader: str | None = None,
    force: bool = False,
) -> dict:
    """Evaluate ``model`` on benchmarks; write ``eval.jsonl`` and ``eval_summary.json``; print a table.

    Args:
        model: ``tiny``, a run directory or a local transformers model directory.
        benchmarks: Names (or one comma-separated string; ``all`` = the paper's six).
        n, temperature, top_p, max_new_tokens: Sampling; ``None`` takes the preset's or the default value.
        preset: A name in ``benchmarks.PRESETS`` (``paper``, ``qwen_eval``, ``greedy``) or ``None``.
        limit: Only the first ``limit`` problems of each benchmark.
        data_dir: Data directory (see ``benchmarks.data_dir_candidates``).
        harness: ``native`` or ``lm-eval``.
        out: Output folder (default ``eval_folder``: one folder per run, step, benchmarks and settings).
            A folder that already holds an evaluation is refused unless ``force``.
        seed: Sampling seed.
        quiet: No progress bar (the table is printed anyway).
        template: Prompt template, ``boxed``, ``dapo`` or ``dapo_eval`` (the grader's answer format follows
            it); ``None`` takes the preset's (``dapo_eval``, the authors' eval prompt, for ``paper``) or
            ``boxed``.
        grader: ``math_verify`` or ``paper_exact`` (the authors' exact rule); ``None`` takes the preset's
            (``paper_exact`` for ``paper``) or ``math_verify``. Recorded in every row and in the summary.
        keep_text: Store responses in eval.jsonl (else a 16-hex-digit hash).
        backend: Rollout engine of the native harness, ``hf`` or ``vllm`` (engine options: the run's
            ``rollout.backend`` when ``model`` is a run directory with that engine, else its defaults).

    Returns:
        The summary written to ``eval_summary.json``: settings plus ``benchmarks`` (``evaluation.summarize``
        metrics per benchmark) and, for lm-eval, ``lm_eval`` (lm-eval's own aggregated metrics).
    """
    if harness not in HARNESSES:
        raise ValueError(f"unknown harness '{harness}'; expected one of {HARNESSES}")
    names = B.parse_names(benchmarks)
    settings = resolve_settings(
        names,
        preset=preset,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        template=template,
        grader=grader,
    )
    template, grader = settings["template"], settings["grader"]
    examples = B.load_benchmarks(names, data_dir, limit, template)  # fails fast, before the model loads
    t0 = time.perf_counter()
    policy, tok, chat, model_name = load_model(model)
    settings["max_new_tokens"] = cap_new_tokens(settings["max_new_tokens"], policy, tok, examples, chat)
    step = run_step(model)
    meta = dict(harness=harness, backend=backend, seed=seed, limit=limit, step=step)
    out = Path(out) if out is not None else eval_folder(model, model_name, names, settings, **meta)
    if (out / "eval_summary.json").exists() and not force:
        raise FileExistsError(
            f"{out} already holds an evaluation with these settings; pass --force to replace it or --out DIR"
        )
    _to_device(policy)
    kw = dict(
        temperature=settings["temperature"],
        top_p=settings["top_p"],
        max_new_tokens=settings["max_new_tokens"],
        seed=seed,
        chat_template=chat,
        template=template,
        keep_text=keep_text,
        grader=grader,
    )
    lm_metrics = None
    if harness == "native":
        engine = engine_for(model, backend)
        rows = evaluate_native(policy, tok, examples, n=settings["n"], quiet=quiet, backend=engine, **kw)
    else:
        from ebpo_bench.eval.lmeval import run_lmeval

        lm = hflm(policy, tok, examples, settings["max_new_tokens"])
        lm_metrics, rows = run_lmeval(
            lm,
            names,
            data_dir=data_dir,
            n=settings["n"],
            limit=limit,
            length_fn=lambda t: len(tok(t, add_special_tokens=False)["input_ids"]),
            **kw,
        )
    summary = write_outputs(
        rows,
        out,
        model=model,
        step=step,
        harness=harness,
        backend=backend if harness == "native" else None,
        settings=settings,
        seed=seed,
        limit=limit,
        data_dir=str(B.resolve_data_dir(data_dir)),
        lm_metrics=lm_metrics,
        seconds=time.perf_counter() - t0,
    )
    print(format_table(summary))
    return summary


def engine_for(model: str, backend: str) -> Any:
    """The engine config of this evaluation: a run directory's ``rollout.backend`` when it is engine
    ``backend``, else that engine's defaults."""
    import yaml

    from ebpo_bench.config.rollout import RolloutConfig, engine_config

    spec = Path(model) / "spec.resolved.yaml"
    rollout = (yaml.safe_load(spec.read_text()).get("rollout") or {}) if spec.is_file() else {}
    return engine_config(backend, RolloutConfig.model_validate(rollout).backend if rollout else None)


def _to_device(model: Any) -> None:
    import torch

    if torch.cuda.is_available() and hasattr(model, "cuda"):
        model.cuda()
