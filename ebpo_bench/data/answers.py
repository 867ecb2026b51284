"""Answer extraction, gold normalisation and the in-process math-verify check (no worker processes).

Extraction (``extract_answer``): the last ``\\boxed{…}`` / ``\\fbox`` / ``\\framebox`` (iterative brace
matching), the DAPO/Minerva ``Answer: …`` line (``ebpo-paper.md`` §3.5), or ``auto`` = boxed if present,
else the answer line. Equal normalised strings, two plain integers (``025`` = ``25``) and two plain numbers
(units and percent stripped, scientific notation read as a number, relative tolerance 1e-4; see
``ebpo_bench.data.numbers``) are decided on a fast path (``fast_path``); the rest goes to math-verify
``verify(gold, pred)`` (gold first, ``verify_answer``), both sides wrapped in ``\\boxed{}`` as verl does,
with units stripped and e-notation rewritten as ``m \\times 10^{k}`` (math-verify reads ``4.5e33`` as
4.5 * e * 33). Golds may be plain, in ``$…$``, boxed,
or an OlympiadBench list string (``"['2']"``): one element is used as is, several are joined with ``", "``
so math-verify compares them as a set/tuple (all are needed; ``canonical_gold``).

Deliberate limits and deviations: only the last ``max_chars`` (4096) characters are searched (verl's
``math_dapo`` reads the last 300; wider keeps long boxed answers, bounded keeps a 5 MB completion cheap);
answers over 1000 characters count as none; the answer line is the last *non-empty* ``Answer:`` match
(DAPO: the last match) with only ``$…$``, ``**`` and a trailing period stripped, not Minerva's
``normalize_final_answer``. Batch scoring with hard timeouts lives in ``ebpo_bench.data.rewards``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

from ebpo_bench.data.numbers import compare_numbers, sci_to_latex, strip_units

MAX_CHARS = 4096
MAX_ANSWER_CHARS = 1000
ANSWER_FORMATS = ("boxed", "answer_line", "auto")
_BOX_COMMANDS = ("\\boxed", "\\fbox", "\\framebox")
_ANSWER_RE = re.compile(r"answer\s*:\s*([^\n]+)", re.IGNORECASE)
_INT_RE = re.compile(r"[+-]?\d+")
_BRACE_TOKEN_RE = re.compile(r"\\.|[{}]", re.DOTALL)  # an escape (\{, \}, \\) is one token, never a group
_BRACE_STEP = {"{": 1, "}": -1}
_QUOTED_RE = re.compile(r"'([^']*)'|\"([^\"]*)\"")
_LIST_RE = re.compile(r"\[\s*(?:'[^']*'|\"[^\"]*\")(?:\s*,\s*(?:'[^']*'|\"[^\"]*\"))*\s*\]")
_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))


def _match_brace(text: str, open_at: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``open_at``, or -1. Iterative, so any depth is fine."""
    depth = 0
    for m in _BRACE_TOKEN_RE.finditer(text, open_at):
        depth += _BRACE_STEP.get(m.group(0), 0)
        if depth == 0:
            return m.start()
    return -1


def _last_boxed(text: str) -> str | None:
    """Content of the last box command in ``text``; ``None`` if there is none or it is unclosed."""
    start, name = max((text.rfind(cmd), cmd) for cmd in _BOX_COMMANDS)
    if start < 0:
        return None
    i = start + len(name)
    while i < len(text) and text[i] == " ":
        i += 1
    if i < len(text) and text[i] == "{":
        end = _match_brace(text, i)
        return None if end < 0 else text[i + 1 : end]
    if i > start + len(name) and name == "\\boxed":  # "\boxed 5": up to the next space or $
        return re.compile(r"[^\s$]*").match(text, i).group(0) or None  # type: ignore[union-attr]
    return None


def _strip_math(s: str) -> str:
    """Strip whitespace, ``**``, a trailing period and one enclosing ``$…$`` / ``\\(…\\)`` pair."""
    s = s.strip().strip("*").strip().removesuffix(".").rstrip()
    for left, right in _DELIMS:
        inner = s[len(left) : len(s) - len(right)]
        if len(s) >= len(left) + len(right) and s.startswith(left) and s.endswith(right) and "$" not in inner:
            return inner.strip().removesuffix(".").rstrip()
    return s


def _answer_line(text: str) -> str | None:
    """Content of the last non-empty ``Answer: …`` match (case-insensitive), cleaned."""
    for m in reversed(list(_ANSWER_RE.finditer(text))):
        content = _strip_math(m.group(1))
        content = _strip_math(_last_boxed(content) or content)
        if content:
            return content
    return None


def extract_with_status(text: str, fmt: str, max_chars: int) -> tuple[str | None, str]:
    """(answer, status) with status ``ok``, ``no_answer`` or ``too_long``."""
    if fmt not in ANSWER_FORMATS:
        raise ValueError(f"unknown answer format {fmt!r}; expected one of {ANSWER_FORMATS}")
    tail = text[-max_chars:] if max_chars > 0 else text
    answer = _last_boxed(tail) if fmt != "answer_line" else None
    if answer is None and fmt != "boxed":
        answer = _answer_line(tail)
    if not answer or not answer.strip():
        return None, "no_answer"
    return (None, "too_long") if len(answer) > MAX_ANSWER_CHARS else (answer.strip(), "ok")


def extract_answer(text: str, fmt: str = "auto", max_chars: int = MAX_CHARS) -> str | None:
    """Extract the final answer from a completion in linear time; ``None`` if absent or over 1000
    characters.

    Args:
        text: The completion.
        fmt: ``"boxed"`` (last ``\\boxed{}`` / ``\\fbox{}``, nested braces allowed), ``"answer_line"`` (last
            ``Answer: …``; ``$…$`` and a trailing period stripped) or ``"auto"`` (boxed if present, else the
            line).
        max_chars: Only the last ``max_chars`` characters are searched, a deliberate bound like verl's
            last-300-characters rule; ``<= 0`` searches everything.
    """
    return extract_with_status(text, fmt, max_chars)[0]


def canonical_gold(gold: str | Sequence[str]) -> str:
    """Gold as one bare string (no ``$``, no box): ``"['2']"`` -> ``"2"``; several elements joined by
    ``", "``."""
    items = [gold] if isinstance(gold, str) else list(gold)
    # a list of *strings* only: "[0,1]" stays an interval
    if isinstance(gold, str) and _LIST_RE.fullmatch(gold.strip()):
        # read verbatim, not with ast.literal_eval, which turns the "\f" of a hand-written "['$\frac12$']"
        # into a form feed; only the doubled backslashes of repr() are undone
        items = [(a or b).replace("\\\\", "\\") for a, b in _QUOTED_RE.findall(gold)]
    return ", ".join(_strip_math(_last_boxed(s) or s) for s in items)


def fast_path(pred: str, gold: str) -> bool | None:
    """True / False when decidable without math-verify (equal normalised strings, two plain integers),
    else None."""
    p, g = (" ".join(_strip_math(s).split()) for s in (pred, gold))
    if p == g and p:
        return True

    def canon(s: str) -> str:  # digit strings, not int(): no 4300-digit limit; "-007" -> "-7", "-0" -> "0"
        digits = s.lstrip("+-").lstrip("0") or "0"
        return "-" + digits if s[0] == "-" and digits != "0" else digits

    if not (_INT_RE.fullmatch(p) and _INT_RE.fullmatch(g)):
        return compare_numbers(p, g)
    return canon(p) == canon(g)


def verify_answer(gold: str, pred: str, timeout: int | None = 5) -> bool:
    """math-verify equivalence of a canonical gold (``canonical_gold``) and an extracted answer; no fast path.
    ``timeout`` is math-verify's own ``signal.alarm`` timeout (main thread only) or ``None``."""
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    gold, pred = (sci_to_latex(strip_units(s)) for s in (gold, pred))
    gold_parsed = parse(f"\\boxed{{{gold}}}", [LatexExtractionConfig()], parsing_timeout=timeout)
    # a bare "1/2" is an expression, not LaTeX
    pred_config = [LatexExtractionConfig(), ExprExtractionConfig()]
    pred_parsed = parse(f"\\boxed{{{pred}}}", pred_config, parsing_timeout=timeout)
    return bool(gold_parsed and pred_parsed and verify(gold_parsed, pred_parsed, timeout_seconds=timeout))


def score_one(completion: str, gold: str, fmt: str = "auto") -> bool:
    """Correctness of one completion, in-process (math-verify's own timeout when on the main thread)."""
    pred, _ = extract_with_status(completion, fmt, MAX_CHARS)
    if pred is None:
        return False
    gold = canonical_gold(gold)
    if (decided := fast_path(pred, gold)) is not None:
        return decided
    on_main = threading.current_thread() is threading.main_thread()
    return verify_answer(gold, pred, timeout=5 if on_main else None)
