"""``paper_exact``: the EBPO authors' evaluation rule, so that reproduced rows are graded like the paper's.

The authors' eval script (``recipe/ebpo/ebpo_eval.py`` in their verl fork; ``ebpo-paper.md`` §3.5) grades a
response as follows, reproduced here in our own code:

1. keep only the last 300 characters of the response;
2. find every ``(?i)Answer\\s*:\\s*([^\\n]+)`` match there; with several matches take the SECOND-TO-LAST, with
   one take it, with none the answer is ``[INVALID]``;
3. normalise answer and gold with the Minerva rule (Lewkowycz et al. 2022, ``normalize_final_answer``):
   keep the text after the last ``=``, drop a final ``.0``, apply fixed substitutions (spaces and ``\\ ``
   removed, ``mbox`` -> ``text``, ...) and remove unit words and LaTeX spacing, unwrap ``$…$``,
   ``\\text{}``, ``\\textbf{}``, ``\\overline{}``, ``\\boxed{}``, expand ``\\fracab`` / ``\\sqrta``, drop
   ``$`` and the commas of a plain digit string;
4. correct iff the two normalised strings are EQUAL (no math-verify, no numeric tolerance).

This is far stricter than the ``math_verify`` grader (``1/2`` != ``\\frac{1}{2}``, ``25`` != ``025``), so
the two graders' numbers are not comparable; every eval row and summary records which one produced it.
The authors also prompt without a chat template and without the training prompt's closing sentence: that
prompt is the ``dapo_eval`` template, which ``--preset paper`` uses with this grader.

Deliberate deviation: OlympiadBench golds are our joined ``final_answer`` list (the authors take only its
first element; the two differ on the multi-answer items only).
"""

from __future__ import annotations

import re

from ebpo_bench.data.rewards import RewardResult

TAIL_CHARS = 300
_ANSWER_RE = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")
# Minerva's normalisation tables (Lewkowycz et al. 2022, appendix), applied in this order
_SUBSTITUTIONS = (
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
)
_REMOVED = (
    *["square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units"],
    "\\ldots",
    *[
        "sue",
        "points",
        "feet",
        "minutes",
        "digits",
        "cents",
        "degrees",
        "cm",
        "gm",
        "pounds",
        "meters",
        "meals",
        "edges",
        "students",
    ],
    *["childrentickets", "multiples"],
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    '"',
    "\\dots",
)
_UNWRAP = tuple(
    re.compile(p)
    for p in (
        r"(\\text\{)(.*?)(\})",
        r"(\\textbf\{)(.*?)(\})",
        r"(\\overline\{)(.*?)(\})",
        r"(\\boxed\{)(.*)(\})",
    )
)


def normalize_final_answer(answer: str) -> str:
    """Minerva's normalisation of a final answer (see the module docstring, step 3)."""
    s = answer.split("=")[-1]
    s = s[:-2] if s.endswith(".0") else s
    for before, after in _SUBSTITUTIONS:
        s = s.replace(before, after)
    for expr in _REMOVED:
        s = s.replace(expr, "")
    s = re.sub(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$", s)
    for pattern in _UNWRAP:
        s = pattern.sub("\\2", s)
    s = re.sub(r"(frac)([^{])(.)", "frac{\\2}{\\3}", s)
    s = re.sub(r"(sqrt)([^{])", "sqrt{\\2}", s)
    s = s.replace("$", "")
    if s.replace(",", "").isdigit():
        s = s.replace(",", "")
    return s.strip()


def extract_paper_answer(response: str) -> str:
    """The raw answer the authors' script reads: second-to-last ``Answer:`` match of the last 300 characters
    (the only one if there is one), else ``[INVALID]``."""
    matches = _ANSWER_RE.findall(response[-TAIL_CHARS:])
    if not matches:
        return "[INVALID]"
    return matches[-2] if len(matches) > 1 else matches[-1]


def paper_exact_correct(response: str, gold: str) -> tuple[bool, str]:
    """(correct, normalised prediction) under the authors' rule."""
    pred = normalize_final_answer(extract_paper_answer(response))
    return pred == normalize_final_answer(gold), pred


class PaperExactGrader:
    """The ``paper_exact`` grader with ``MathVerifier``'s interface (``score``, ``stats``, context manager).

    Pure string work in-process: no workers, no timeouts. ``extracted`` is the normalised prediction, or
    ``None`` for ``[INVALID]`` (no ``Answer:`` line in the last 300 characters).
    """

    name = "paper_exact"

    def __init__(self, scale: str = "zero_one") -> None:
        if scale not in ("zero_one", "plus_minus_one"):
            raise ValueError(f"unknown reward scale {scale!r}; expected 'zero_one' or 'plus_minus_one'")
        self.fail = -1.0 if scale == "plus_minus_one" else 0.0
        self._stats = dict.fromkeys(("checks", "no_answer"), 0)

    @property
    def stats(self) -> dict[str, int]:
        return dict(self._stats)

    def score(self, completions: list[str], golds: list[str]) -> list[RewardResult]:
        if len(completions) != len(golds):
            raise ValueError(f"{len(completions)} completions but {len(golds)} gold answers")
        out = []
        for text, gold in zip(completions, golds):
            self._stats["checks"] += 1
            invalid = not _ANSWER_RE.search(text[-TAIL_CHARS:])
            self._stats["no_answer"] += invalid
            ok, pred = paper_exact_correct(text, gold)
            reason = "no_answer" if invalid else ("correct" if ok else "wrong")
            out.append(RewardResult(1.0 if ok else self.fail, ok, None if invalid else pred, False, reason))
        return out

    def close(self) -> None:
        """Nothing to stop (kept for the ``MathVerifier`` interface)."""

    def __enter__(self) -> PaperExactGrader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_grader(grader: str, fmt: str):
    """``math_verify`` (``MathVerifier(fmt)``) or ``paper_exact`` (``PaperExactGrader``)."""
    if grader == "paper_exact":
        return PaperExactGrader()
    if grader == "math_verify":
        from ebpo_bench.data.rewards import MathVerifier

        return MathVerifier(fmt=fmt)
    raise ValueError(f"unknown grader '{grader}'; expected 'math_verify' or 'paper_exact'")
