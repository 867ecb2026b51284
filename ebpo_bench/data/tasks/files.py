"""Training and evaluation problems from local files (or, for users with a network, the HF hub).

Supported inputs: ``.jsonl``, ``.json`` (a JSON list of objects), ``.parquet`` and a folder written
by ``datasets``' ``save_to_disk`` (a ``Dataset``, or a ``DatasetDict`` with a split chosen).
Records become ``Example``s through a field mapping and a prompt template. pandas and datasets
are imported only when a parquet file or a ``save_to_disk`` folder is read.

The two named templates are prompt formats from the literature, in our own constants:
``DAPO_TEMPLATE`` is the DAPO-Math-17k prompt that EBPO's training kept (ebpo-paper.md §3.1; the
answer is read from a final ``Answer:`` line), ``BOXED_TEMPLATE`` the common "reason step by step,
answer in \\boxed{}" instruction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ebpo_bench.data.tasks.base import Example

DAPO_TEMPLATE = (
    "Solve the following math problem step by step. The last line of your response should be of the "
    "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
    "{problem}\n\n"
    'Remember to put your answer on its own line after "Answer:".'
)
#: the authors' EVAL prompt (their eval script): the DAPO instruction without the closing "Remember ..." line
DAPO_EVAL_TEMPLATE = (
    "Solve the following math problem step by step. The last line of your response should be of the "
    "form Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n{problem}"
)
BOXED_TEMPLATE = "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}."
TEMPLATES = {
    "dapo": DAPO_TEMPLATE,
    "dapo_eval": DAPO_EVAL_TEMPLATE,
    "boxed": BOXED_TEMPLATE,
    "raw": "{problem}",
}


def load_records(path: str | Path, *, split: str | None = None) -> list[dict]:
    """Read every record of a data file or ``save_to_disk`` folder as a dict.

    Args:
        path: a ``.jsonl``, ``.json`` (JSON list), ``.parquet`` file or a ``save_to_disk`` folder.
        split: the split to read from a ``DatasetDict`` folder; may be omitted when it has one
            split. Ignored for files.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: an unsupported format, a malformed file, or an ambiguous ``DatasetDict``.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"data file not found: {path} (looked at {p.resolve()})")
    if p.is_dir():
        return _load_disk_folder(p, split)
    suffix = p.suffix.lower()
    if suffix == ".jsonl":
        return _load_jsonl(p)
    if suffix == ".json":
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(
                f"{p}: a .json data file must hold a list of objects (use .jsonl for one object per line)"
            )
        return data
    if suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(p).to_dict(orient="records")
    raise ValueError(
        f"{p}: unsupported data format '{suffix}'; use .jsonl, .json, .parquet or a save_to_disk folder"
    )


def _load_jsonl(p: Path) -> list[dict]:
    out = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: not valid JSON ({e.msg})") from None
    return out


def _load_disk_folder(p: Path, split: str | None) -> list[dict]:
    if not any((p / name).exists() for name in ("dataset_dict.json", "state.json")):
        raise ValueError(
            f"{p}: a folder must be written by datasets' save_to_disk (no dataset_dict.json or state.json)"
        )
    import datasets

    ds = datasets.load_from_disk(str(p))
    if isinstance(ds, datasets.DatasetDict):
        splits = list(ds)
        if split is None and len(splits) == 1:
            split = splits[0]
        if split not in ds:
            raise ValueError(
                f"{p}: holds splits {splits}; choose one with split=... or point at its subfolder "
                f"(e.g. {p / splits[0]})"
            )
        ds = ds[split]
    return ds.to_list()


def _field(record: dict, name: str, source: str, row: int) -> Any:
    try:
        return record[name]
    except KeyError:
        raise KeyError(
            f"field '{name}' not found in {source} (row {row}); fields: {', '.join(map(str, record))}"
        ) from None


def _answer_text(value: Any) -> str:
    # some datasets store a one-element answer list; the verifier wants the answer itself
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return str(value)


def records_to_examples(
    records: Iterable[dict],
    *,
    prompt_field: str,
    answer_field: str,
    id_field: str | None = None,
    template: str = "{problem}",
    source: str = "records",
) -> list[Example]:
    """Map records to ``Example``s (see ``load_examples``); ``source`` names them in errors."""
    out = []
    for i, rec in enumerate(records):
        problem = str(_field(rec, prompt_field, source, i))
        try:
            prompt = template.format(**{**rec, "problem": problem})
        except KeyError as e:
            raise KeyError(
                f"prompt template field {e} not found in {source} (row {i}); "
                f"fields: {', '.join(map(str, rec))}"
            ) from None
        answer = _answer_text(_field(rec, answer_field, source, i))
        ex_id = str(_field(rec, id_field, source, i)) if id_field else str(i)
        out.append(Example(id=ex_id, prompt=prompt, answer=answer))
    return out


def load_examples(
    path: str | Path,
    *,
    prompt_field: str,
    answer_field: str,
    id_field: str | None = None,
    template: str = "{problem}",
    max_examples: int | None = None,
    split: str | None = None,
) -> list[Example]:
    """Load problems from a local file or ``save_to_disk`` folder as ``Example``s.

    Args:
        path: see ``load_records``.
        prompt_field: the record field with the problem text.
        answer_field: the record field with the gold answer (converted with ``str``; a
            one-element list is unwrapped).
        id_field: the record field with a stable id; ``None`` uses the row index.
        template: ``str.format`` template of the prompt; ``{problem}`` is the prompt field and any
            other ``{name}`` a record field (literal braces doubled: ``{{}}``). See
            ``DAPO_TEMPLATE`` and ``BOXED_TEMPLATE``.
        max_examples: keep only the first N records.
        split: the split of a ``DatasetDict`` folder.

    Returns:
        One ``Example`` per record, in file order (``level``/``topic`` unset).

    Raises:
        FileNotFoundError: the path does not exist.
        KeyError: a field is missing; the message names it, the file and the fields present.
    """
    records = load_records(path, split=split)
    if max_examples is not None:
        records = records[:max_examples]
    return records_to_examples(
        records,
        prompt_field=prompt_field,
        answer_field=answer_field,
        id_field=id_field,
        template=template,
        source=str(path),
    )


def load_hf(
    dataset_id: str,
    split: str,
    *,
    prompt_field: str,
    answer_field: str,
    id_field: str | None = None,
    template: str = "{problem}",
    max_examples: int | None = None,
) -> list[Example]:
    """Load problems from the Hugging Face hub with ``datasets.load_dataset`` (needs the network).

    Arguments as in ``load_examples``; ``dataset_id`` is a hub id such as
    ``"BytedTsinghua-SIA/DAPO-Math-17k"``. Never called by the tests.
    """
    import datasets

    ds = datasets.load_dataset(dataset_id, split=split)
    if max_examples is not None:
        ds = ds.select(range(min(max_examples, len(ds))))
    return records_to_examples(
        ds.to_list(),
        prompt_field=prompt_field,
        answer_field=answer_field,
        id_field=id_field,
        template=template,
        source=f"{dataset_id} [{split}]",
    )
