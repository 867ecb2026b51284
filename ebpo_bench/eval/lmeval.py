"""Cross-check with lm-evaluation-harness: generated local task YAMLs and a ``simple_evaluate`` driver.

lm-eval's built-in math tasks load their data from the hub and it has no OlympiadBench task, so this module
writes one task per benchmark into a folder (``ebpo_<name>.yaml`` + ``ebpo_utils.py``): ``dataset_path: json``
with the absolute path of the local file, a ``process_docs`` that turns each record into the very prompt and
normalised gold the native harness uses (``benchmarks.to_example``), ``repeats: n`` with a ``take_first_k``
filter (lm-eval's default filter keeps only the first repeat), and a ``process_results`` that grades every
response with the reward's grading functions (``rewards.score_one``: the same extraction, fast path and
math-verify call as ``MathVerifier.score``, in-process). Metric ``math_verify`` is therefore avg@n.

For the integer-answer competitions (aime24, aime25, amc23) the tasks also report lm-eval's own AIME metric,
``exact_match`` (``lm_eval.tasks.aime.utils.process_results``: last ``\\boxed{}`` or ``$…$``, MATH string
normalisation, string equality) against the raw gold of the file, to show its documented differences:
zero-padded aime24 golds ("025") and float amc23 golds ("27.0") never equal a correct integer answer.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ebpo_bench.eval import benchmarks as B

#: benchmarks whose lm-eval task also reports lm-eval's own AIME string-equality metric
LM_EXACT_MATCH = ("aime24", "aime25", "amc23")
TASK_PREFIX = "ebpo_"
UTILS = "ebpo_utils"


def task_name(bench: str) -> str:
    return f"{TASK_PREFIX}{bench}"


def make_process_docs(bench: str, template: str = "boxed") -> Callable[[Any], Any]:
    """lm-eval ``process_docs`` for a benchmark: raw records -> docs with ``id, prompt, answer`` (normalised
    gold), ``raw_answer`` (the file's gold as a string) and ``grade_format`` (the grader's answer format)."""

    def process_docs(dataset: Any) -> Any:
        import datasets

        b = B.get_benchmark(bench)
        docs = []
        for i, rec in enumerate(dataset):
            ex = B.to_example(b, rec, i, template)
            raw = rec.get(b.answer) if b.answer in rec else ex.answer
            docs.append(
                {
                    "id": ex.id,
                    "prompt": ex.prompt,
                    "answer": ex.answer,
                    "raw_answer": str(raw),
                    "grade_format": B.GRADE_FORMAT[template],
                }
            )
        return datasets.Dataset.from_list(docs)

    return process_docs


def _responses(results: list) -> list[str]:
    """The n responses of a doc: ``take_first_k`` hands them over as one list inside ``results``."""
    return list(results[0]) if results and isinstance(results[0], (list, tuple)) else list(results)


def process_results(doc: dict, results: list) -> dict[str, float]:
    """``math_verify``: the fraction of the (n) responses our grader scores correct."""
    from ebpo_bench.data.answers import score_one

    results = _responses(results)
    return {
        "math_verify": sum(score_one(r, doc["answer"], doc["grade_format"]) for r in results) / len(results)
    }


def lm_exact_match(doc: dict, response: str) -> float:
    """lm-eval's own AIME grading of one response against the file's raw gold (string equality)."""
    from lm_eval.tasks.aime.utils import process_results as aime_process_results

    return float(aime_process_results({"answer": doc["raw_answer"]}, [response])["exact_match"])


def process_results_with_exact_match(doc: dict, results: list) -> dict[str, float]:
    """``math_verify`` plus lm-eval's AIME ``exact_match``, each averaged over the responses."""
    results = _responses(results)
    out = process_results(doc, results)
    out["exact_match"] = sum(lm_exact_match(doc, r) for r in results) / len(results)
    return out


def task_config(
    bench: str, *, data_dir: str | Path | None, n: int, temperature: float, top_p: float, max_gen_toks: int
) -> dict:
    """The YAML body of one task (without the ``!function`` entries, added by ``write_tasks``)."""
    metrics = ["math_verify"] + (["exact_match"] if bench in LM_EXACT_MATCH else [])
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": top_p}
        if temperature > 0
        else {"do_sample": False, "temperature": 0.0}
    )
    return {
        "task": task_name(bench),
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(B.local_file(bench, data_dir))}},
        "test_split": "test",
        "output_type": "generate_until",
        "doc_to_text": "prompt",  # a column name: lm-eval passes the text through untouched
        "doc_to_target": "answer",
        "repeats": n,
        "filter_list": [{"name": "all", "filter": [{"function": "take_first_k", "k": n}]}],
        "metric_list": [{"metric": m, "aggregation": "mean", "higher_is_better": True} for m in metrics],
        # until: [] -> lm-eval stops at the tokenizer's EOS only, as the native backend does
        "generation_kwargs": {"until": [], "max_gen_toks": max_gen_toks, **sampling},
        "num_fewshot": 0,
        "metadata": {"version": 1.0, "source": "ebpo-bench generated"},
    }


def write_tasks(
    benches: list[str],
    out_dir: str | Path,
    *,
    data_dir: str | Path | None = None,
    template: str = "boxed",
    n: int | dict[str, int] = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_gen_toks: int = 1024,
) -> dict[str, str]:
    """Write ``ebpo_<bench>.yaml`` per benchmark and ``ebpo_utils.py`` into ``out_dir``.

    Args:
        benches: Benchmark names.
        out_dir: Folder for the task files (pass it to ``TaskManager(include_path=...)`` or
            ``--include_path``).
        data_dir: Data directory (absolute file paths go into the YAMLs).
        template: Prompt template (``boxed`` | ``dapo``).
        n: Samples per problem, one for all or per benchmark.
        temperature, top_p, max_gen_toks: Generation settings (temperature 0 = greedy).

    Returns:
        ``{benchmark: task name}``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    utils = [
        "# generated by ebpo_bench.eval.lmeval.write_tasks",
        "from ebpo_bench.eval.lmeval import (",
        "    make_process_docs, process_results, process_results_with_exact_match)",
        "",
    ]
    names = {}
    for b in benches:
        k = n[b] if isinstance(n, dict) else n
        cfg = task_config(
            b, data_dir=data_dir, n=k, temperature=temperature, top_p=top_p, max_gen_toks=max_gen_toks
        )
        results_fn = "process_results_with_exact_match" if b in LM_EXACT_MATCH else "process_results"
        body = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True)
        body += f"process_docs: !function {UTILS}.docs_{b}\nprocess_results: !function {UTILS}.{results_fn}\n"
        (out / f"{task_name(b)}.yaml").write_text(body)
        utils.append(f"docs_{b} = make_process_docs({b!r}, {template!r})")
        names[b] = task_name(b)
    (out / f"{UTILS}.py").write_text("\n".join(utils) + "\n")
    return names


def run_lmeval(
    lm: Any,
    benches: list[str],
    *,
    data_dir: str | Path | None = None,
    template: str = "boxed",
    n: int | dict[str, int] = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 1024,
    limit: int | None = None,
    seed: int = 1234,
    chat_template: bool = False,
    keep_text: bool = True,
    step: int = 0,
    task_dir: str | Path | None = None,
    length_fn: Callable[[str], int] | None = None,
    grader: str = "math_verify",
) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Run ``lm_eval.simple_evaluate`` on generated local tasks.

    Args:
        lm: An lm-eval ``LM`` (``HFLM(pretrained=model, tokenizer=tok)`` or ``scripted.scripted_lm``).
        task_dir: Where to write the task files (default: a temporary folder, removed afterwards).
        length_fn: Response length for the eval rows (default: whitespace words; pass a token counter).
        Other arguments as in ``write_tasks`` / ``eval.command.run_eval``.

    Returns:
        ``({benchmark: lm-eval metrics}, eval rows)``; the rows have the native harness's schema, graded by
        ``MathVerifier.score``, plus ``lm_exact_match`` for the tasks in ``LM_EXACT_MATCH``.
    """
    if task_dir is None:
        with tempfile.TemporaryDirectory(prefix="ebpo_lmeval_") as tmp:
            return run_lmeval(
                lm,
                benches,
                data_dir=data_dir,
                template=template,
                n=n,
                temperature=temperature,
                top_p=top_p,
                max_new_tokens=max_new_tokens,
                limit=limit,
                seed=seed,
                chat_template=chat_template,
                keep_text=keep_text,
                step=step,
                task_dir=tmp,
                length_fn=length_fn,
                grader=grader,
            )
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    names = write_tasks(
        benches,
        task_dir,
        data_dir=data_dir,
        template=template,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_gen_toks=max_new_tokens,
    )
    out = simple_evaluate(
        model=lm,
        tasks=list(names.values()),
        task_manager=TaskManager(include_path=str(task_dir), include_defaults=False),
        limit=limit,
        log_samples=True,
        apply_chat_template=chat_template,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        bootstrap_iters=0,
    )
    metrics = {
        b: {k.split(",")[0]: v for k, v in out["results"][t].items() if "," in k and "stderr" not in k}
        for b, t in names.items()
    }
    rows = lmeval_rows(
        out["samples"],
        names,
        template=template,
        keep_text=keep_text,
        step=step,
        length_fn=length_fn,
        grader=grader,
    )
    return metrics, rows


def lmeval_rows(
    samples: dict[str, list[dict]],
    names: dict[str, str],
    *,
    template: str,
    keep_text: bool,
    step: int,
    length_fn: Callable[[str], int] | None = None,
    grader: str = "math_verify",
) -> list[dict]:
    """Eval rows (one per benchmark, problem, sample) from lm-eval's logged samples, graded by our
    verifier (``grader``: math_verify or paper_exact)."""
    from ebpo_bench.eval.paper_exact import make_grader

    length_fn = length_fn or (lambda t: len(t.split()))
    flat: list[tuple[str, dict, int, str]] = []
    for bench, task in names.items():
        for s in sorted(samples.get(task, []), key=lambda s: s["doc_id"]):
            texts = (
                s["filtered_resps"][0] if isinstance(s["filtered_resps"][0], list) else s["filtered_resps"]
            )
            flat += [(bench, s["doc"], j, t) for j, t in enumerate(texts)]
    with make_grader(grader, B.GRADE_FORMAT[template]) as ver:
        graded = ver.score([t for *_, t in flat], [doc["answer"] for _, doc, _, _ in flat])
    rows = []
    for (bench, doc, j, text), res in zip(flat, graded):
        row = {
            "step": step,
            "benchmark": bench,
            "problem_id": doc["id"],
            "sample": j,
            "response": text if keep_text else hashlib.sha256(text.encode()).hexdigest()[:16],
            "extracted": res.extracted,
            "score": res.score,
            "score_correct": bool(res.correct),
            "length": int(length_fn(text)),
            "timed_out": res.timed_out,
            "grader": ver.name,
        }
        if bench in LM_EXACT_MATCH:
            row["lm_exact_match"] = lm_exact_match(doc, text)
        rows.append(row)
    return rows
