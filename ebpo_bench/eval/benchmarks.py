"""Evaluation benchmarks: where each one's data lives, how a record becomes an ``Example``, sampling presets.

Every benchmark names its Hugging Face datasets id (the source where a hub is reachable), the local file under
the data directory (``../shared/data`` in this project; see its ``SOURCES.md``), the record fields, and a gold
normalisation. Problem text goes through the same prompt templates as training (``tasks/files.py``).

Gold answers are normalised the way each benchmark needs, so that every gold is a bare string that verifies
against itself through the reward's grading path:

- AIME / AMC: integer answers lose zero padding and a ``.0`` ("025" -> "25", 27.0 -> "27");
- OlympiadBench: ``final_answer`` (a JSON list, or its string form "['2']" parsed with ``ast.literal_eval``)
  has every ``$`` removed and several elements joined by ", "; the unit field is ignored (Qwen-eval does the
  same); a non-empty ``context`` is prepended to the question;
- Minerva (the 272 OCW problems, not lm-eval's MATH-with-Minerva-prompt): the content of the solution's last
  ``\\boxed{}``;
- GSM8K: the number after "####" with thousands separators removed;
- malformed golds are corrected at load time, each with a note (``gold_fixes.py``; Minerva item 5's
  ``np.arcsin(10/13)`` -> ``\\arcsin(10/13)``).

Deliberate choices: an explicit ``data_dir`` argument wins over ``$EBPO_BENCH_DATA`` (a command-line flag
beats the environment), which wins over ``../shared/data`` relative to the working directory, then to the
repository.
Hub loading (``source="hub"``) looks fields up case-insensitively; its field names are unverified offline.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebpo_bench.eval.gold_fixes import fix_gold, gold_notes
from ebpo_bench.registry import Registry

DATA_ENV = "EBPO_BENCH_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ("boxed", "dapo", "dapo_eval")
#: answer format the math_verify grader uses for each prompt template (see ``rewards.extract_answer``)
GRADE_FORMAT = {"boxed": "auto", "dapo": "answer_line", "dapo_eval": "answer_line"}
#: who decides correctness: math-verify (default) or the EBPO authors' exact rule (``paper_exact.py``)
GRADERS = ("math_verify", "paper_exact")

#: named sampling protocols; explicit arguments override them (``eval.command.resolve_settings``)
PRESETS: dict[str, dict[str, Any]] = {
    # the EBPO paper's eval script: T = 1.0, top-p 1.0, 20480 new tokens, 16 samples (OlympiadBench 4), its
    # eval prompt (DAPO's without the closing "Remember ..." line, no chat template) and its grading rule
    # (paper_exact: last 300 characters, Minerva normalisation, exact strings; ebpo-paper.md §3.5)
    "paper": dict(
        temperature=1.0,
        top_p=1.0,
        n=16,
        max_new_tokens=20480,
        template="dapo_eval",
        grader="paper_exact",
        n_overrides={"olympiadbench": 4},
    ),
    # Qwen / open-r1 / JSPO practice
    "qwen_eval": dict(temperature=0.6, top_p=0.95, n=16, max_new_tokens=20480),
    # one greedy sample, comparable to lm-eval and Qwen-eval defaults
    "greedy": dict(temperature=0.0, top_p=1.0, n=1, max_new_tokens=1024),
}


@dataclass(frozen=True)
class Benchmark:
    """One evaluation set.

    Attributes:
        name: Registry name (``aime24``).
        hf_id: Hugging Face datasets id, with ``hf_config`` / ``hf_split``.
        local_path: File relative to the data directory.
        problem: Record field(s) of the problem text, as documented (``"context + question"``).
        answer: Record field of the gold answer, as documented.
        id_field: Record field of a stable problem id; ``None`` uses the row index.
        paper_n: Samples per problem in the paper's protocol.
        problem_fn: Record -> problem text.
        gold_fn: Record -> normalised gold string.
        lmeval_task: lm-eval's own task of the same name, if it has one (for reference).
    """

    name: str
    hf_id: str
    hf_config: str | None
    hf_split: str
    local_path: str
    problem: str
    answer: str
    id_field: str | None
    problem_fn: Callable[[dict], str]
    gold_fn: Callable[[dict], str]
    paper_n: int = 16
    lmeval_task: str | None = None


BENCHMARKS: Registry[Benchmark] = Registry("benchmark")


def _field(rec: dict, name: str) -> Any:
    """``rec[name]``, else the first key equal to ``name`` ignoring case (hub copies capitalise fields)."""
    if name in rec:
        return rec[name]
    for k, v in rec.items():
        if k.lower() == name.lower():
            return v
    raise KeyError(f"record has no field '{name}' (fields: {', '.join(rec)})")


def integer_gold(value: Any) -> str:
    """Competition integer answers as canonical strings: "025" -> "25", 27.0 -> "27"; anything else
    unchanged."""
    text = str(value).strip()
    m = re.fullmatch(r"([+-]?)0*(\d+)(?:\.0+)?", text)
    if not m:
        return text
    sign = "-" if m.group(1) == "-" and m.group(2) != "0" else ""
    return sign + m.group(2)


def olympiad_gold(final_answer: Any) -> str:
    """OlympiadBench ``final_answer`` (list or "['2']" string) -> elements without ``$``, joined by ", "."""
    items = final_answer
    if isinstance(final_answer, str):
        try:
            items = ast.literal_eval(final_answer)
        except (ValueError, SyntaxError):
            items = [final_answer]
    if isinstance(items, str):
        items = [items]
    return ", ".join(str(s).replace("$", "").strip() for s in items)


def minerva_gold(solution: str) -> str:
    """Content of the last ``\\boxed{}`` of a Minerva solution."""
    from ebpo_bench.data.answers import extract_answer

    gold = extract_answer(solution, "boxed", max_chars=0)
    if gold is None:
        raise ValueError("Minerva solution without a \\boxed{} answer")
    return gold


def gsm8k_gold(answer: str) -> str:
    """The number after "####", without thousands separators."""
    return answer.rsplit("####", 1)[-1].strip().replace(",", "")


def _olympiad_problem(rec: dict) -> str:
    context = rec.get("context")
    question = _field(rec, "question")
    return f"{context.strip()}\n\n{question}" if context and str(context).strip() else question


def _plain(field: str) -> Callable[[dict], str]:
    return lambda rec: str(_field(rec, field))


def _add(b: Benchmark) -> None:
    BENCHMARKS.register(b.name)(b)


_add(
    Benchmark(
        "aime24",
        "Maxwell-Jia/AIME_2024",
        None,
        "train",
        "aime24/test.jsonl",
        "problem",
        "answer",
        "id",
        _plain("problem"),
        lambda r: integer_gold(_field(r, "answer")),
        lmeval_task="aime24",
    )
)
_add(
    Benchmark(
        "aime25",
        "math-ai/aime25",
        None,
        "test",
        "aime25/test.jsonl",
        "problem",
        "answer",
        None,
        _plain("problem"),
        lambda r: integer_gold(_field(r, "answer")),
        lmeval_task="aime25",
    )
)
_add(
    Benchmark(
        "amc23",
        "math-ai/amc23",
        None,
        "test",
        "amc23/test.jsonl",
        "problem",
        "answer",
        "id",
        _plain("problem"),
        lambda r: integer_gold(_field(r, "answer")),
    )
)
_add(
    Benchmark(
        "math500",
        "HuggingFaceH4/MATH-500",
        None,
        "test",
        "math500/test.jsonl",
        "problem",
        "answer",
        "unique_id",
        _plain("problem"),
        lambda r: str(_field(r, "answer")).strip(),
    )
)
_add(
    Benchmark(
        "olympiadbench",
        "Hothan/OlympiadBench",
        "OE_TO_maths_en_COMP",
        "train",
        "olympiadbench/test.jsonl",
        "context + question",
        "final_answer",
        "id",
        _olympiad_problem,
        lambda r: olympiad_gold(_field(r, "final_answer")),
        paper_n=4,
    )
)
_add(
    Benchmark(
        "minerva_math",
        "math-ai/minervamath",
        None,
        "test",
        "minerva_math/test.jsonl",
        "problem",
        "last \\boxed{} of solution",
        "idx",
        _plain("problem"),
        lambda r: minerva_gold(_field(r, "solution")),
    )
)
_add(
    Benchmark(
        "gsm8k",
        "openai/gsm8k",
        "main",
        "test",
        "gsm8k/test.jsonl",
        "question",
        "number after ####",
        None,
        _plain("question"),
        lambda r: gsm8k_gold(_field(r, "answer")),
        lmeval_task="gsm8k",
    )
)

#: the paper's evaluation set, `--benchmarks all` (gsm8k is an extra; the report's tables leave Minerva out)
PAPER_BENCHMARKS = ("aime24", "aime25", "amc23", "math500", "olympiadbench", "minerva_math")


def get_benchmark(name: str) -> Benchmark:
    """The registered benchmark; ``KeyError`` with a did-you-mean suggestion for an unknown name."""
    return BENCHMARKS.get(name)


def data_dir_candidates(data_dir: str | Path | None = None) -> list[Path]:
    """Data directories in the order they are tried (explicit argument, environment, defaults)."""
    if data_dir is not None:
        return [Path(data_dir)]
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV])]
    return [Path.cwd().parent / "shared" / "data", REPO_ROOT.parent / "shared" / "data"]


def resolve_data_dir(data_dir: str | Path | None = None) -> Path:
    """The first existing candidate data directory, else the first candidate (so errors name a real path)."""
    cands = data_dir_candidates(data_dir)
    return next((c for c in cands if c.is_dir()), cands[0]).resolve()


def local_file(name: str, data_dir: str | Path | None = None) -> Path:
    """Absolute path of a benchmark's local file; ``FileNotFoundError`` (one line) when it is absent."""
    bench = get_benchmark(name)
    path = resolve_data_dir(data_dir) / bench.local_path
    if not path.is_file():
        raise FileNotFoundError(
            f"benchmark '{name}': local file not found: {path} (set ${DATA_ENV} or the data_dir setting; "
            f"hub source: {bench.hf_id})"
        )
    return path


def render(template: str, problem: str) -> str:
    """The prompt for ``problem`` under a named template (``boxed`` or ``dapo``) from ``tasks/files.py``."""
    from ebpo_bench.data.tasks import files

    if template not in TEMPLATES:
        raise ValueError(f"unknown prompt template '{template}'; expected one of {TEMPLATES}")
    return files.TEMPLATES[template].format(problem=problem)  # str.format templates: literal braces doubled


def to_example(bench: Benchmark, rec: dict, index: int, template: str = "boxed"):
    """One record -> ``Example(id, prompt, answer)``; the id is the record's id field or the row index."""
    from ebpo_bench.data.tasks import Example

    pid = rec.get(bench.id_field) if bench.id_field else None
    pid = str(index if pid is None else pid)
    gold = fix_gold(bench.name, pid, bench.gold_fn(rec))  # malformed golds, each with a note (gold_fixes.py)
    return Example(id=pid, prompt=render(template, bench.problem_fn(rec)), answer=gold)


def load_benchmark(
    name: str,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    template: str = "boxed",
    source: str = "local",
) -> list:
    """The problems of a benchmark as ``Example``s, in file order.

    Args:
        name: Registered benchmark name.
        data_dir: Data directory (see ``data_dir_candidates``).
        limit: Keep only the first ``limit`` problems.
        template: Prompt template: ``boxed`` (default) or ``dapo``.
        source: ``local`` (the file under the data directory) or ``hub`` (``datasets.load_dataset``; needs a
            hub).

    Raises:
        KeyError: Unknown benchmark (with a suggestion).
        FileNotFoundError: The local file is missing (one line naming the benchmark and the path tried).
    """
    bench = get_benchmark(name)
    if source == "local":
        from ebpo_bench.data.tasks.files import load_records

        records = list(load_records(str(local_file(name, data_dir))))
    elif source == "hub":
        import datasets

        records = list(datasets.load_dataset(bench.hf_id, bench.hf_config, split=bench.hf_split))
    else:
        raise ValueError(f"unknown benchmark source '{source}'; expected 'local' or 'hub'")
    records = records[:limit] if limit is not None else records
    return [to_example(bench, rec, i, template) for i, rec in enumerate(records)]


def load_benchmarks(
    names: list[str], data_dir: str | Path | None = None, limit: int | None = None, template: str = "boxed"
) -> dict[str, list]:
    """``{name: examples}`` for several benchmarks (what ``eval.sampling.evaluate`` takes)."""
    return {n: load_benchmark(n, data_dir, limit, template) for n in names}


def parse_names(text: str | list[str]) -> list[str]:
    """Comma-separated names (or a list) -> validated names; ``all`` = the paper's six benchmarks."""
    items = text.split(",") if isinstance(text, str) else [s for t in text for s in t.split(",")]
    names = [s.strip() for s in items if s.strip()]
    if names == ["all"]:
        return list(PAPER_BENCHMARKS)
    for n in names:
        get_benchmark(n)
    return names


def ls_lines(data_dir: str | Path | None = None) -> list[str]:
    """One line per benchmark for ``ebpo-bench ls benchmarks`` (torch-free, no file is read)."""
    root = resolve_data_dir(data_dir)
    out = []
    for name in BENCHMARKS.names():
        b = BENCHMARKS.get(name)
        here = "present" if (root / b.local_path).is_file() else "missing"
        out.append(
            f"{name:<14} {b.local_path:<26} ({here})  hub: {b.hf_id}  paper n={b.paper_n}  gold: {b.answer}"
        )
        out[-1] += "".join(f"; gold fixed at load time: {note}" for note in gold_notes(name))
    return out
