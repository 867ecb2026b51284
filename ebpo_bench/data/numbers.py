"""Numbers in answers: units and percent stripped, scientific notation read as a number, a relative tolerance.

Used by the grading fast path (``ebpo_bench.data.answers``) before math-verify, for three failures of the
plain math-verify check:

- scientific notation: math-verify parses a gold ``4.5e33`` as LaTeX, i.e. 4.5 * e * 33 = 403.66 (e is
  Euler's number), so ``4.5 \\times 10^{33}`` grades wrong and ``403.66…`` right. ``parse_number`` reads
  ``m e k`` / ``m E k`` / ``m \\times 10^{k}`` / ``m \\cdot 10^{k}`` / ``m x 10^k`` / ``10^{k}`` as m * 10^k,
  and ``sci_to_latex`` rewrites e-notation as ``m \\times 10^{k}`` for what still goes to math-verify;
- units: a trailing unit is dropped from either side when a number remains: ``\\AA``, ``Å``,
  ``\\text{…}`` / ``\\mathrm{…}`` / ``\\mbox{…}`` (also ``\\text { days }``, Minerva's own spacing), a
  plain unit word (``6.4 days``, ``km/h``), degrees (``^\\circ``) and percent (``\\%``, ``%``), so that
  ``4.2\\%`` = 4.2 and ``8`` = ``8 \\%`` (percent is read as a unit both ways, never as a factor 1/100);
- rounding: math-verify compares floats after rounding to 6 decimals, so ``.0000672`` = ``0.0000670`` and
  ``6.62\\times10^{-34}`` = ``1\\times10^{-34}``. Two numbers here are equal iff
  |a - b| <= REL_TOL * max(|a|, |b|) with REL_TOL = 1e-4: values that differ in the third significant digit
  differ by at least 1e-3 relatively (0.01 / 9.99), so they can never be equated.

Deliberate limits: a comma is a thousands separator only in the ``1,234,567`` pattern (else ``1,2`` would be a
tuple); a fraction or an expression is not a number here and stays with math-verify.
"""

from __future__ import annotations

import math
import re

REL_TOL = 1e-4
_NUM = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN_RE = re.compile(rf"{_NUM}")
_THOUSANDS_RE = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_E_RE = re.compile(rf"({_NUM})[eE]([+-]?\d+)")
_POW_RE = re.compile(
    rf"(?:({_NUM})\s*(?:\\times|\\cdot|\\ast|\*|x|×|·)\s*)?10\s*\^\s*(?:\{{\s*([+-]?\d+)\s*\}}|([+-]?\d+))"
)
_SPACES_RE = re.compile(r"\\[,;:!> ]|~|\\quad|\\qquad")
_CMD_SPACE_RE = re.compile(r"\\(text|mathrm|mbox|textrm|operatorname)\s+\{")
_UNIT_GROUP_RE = re.compile(
    r"\\(?:text|mathrm|mbox|textrm)\{\s*([A-Za-z°/ .\-^{}0-9]*?)\s*\}(?:\s*\^\s*\{?\d\}?)?$"
)
_UNIT_TAIL_RE = re.compile(r"(?:\\AA|Å|\\mathring\{A\}|\^\s*\{?\\circ\}?|°|\\%|%|\\percent)\s*$")
#: a plain unit word after a number ("6.4 days", "50 km/h"); only where a plain number remains
_WORD_TAIL_RE = re.compile(r"\s+[A-Za-z]{2,12}(?:\s*/\s*[A-Za-z]{1,8})?(?:\^\{?\d\}?)?$")


def _clean(s: str) -> str:
    s = _SPACES_RE.sub(" ", s)
    s = _CMD_SPACE_RE.sub(lambda m: f"\\{m.group(1)}{{", s)  # "\text { days }" -> "\text{ days }"
    return " ".join(s.replace("{,}", ",").split()).strip()


def strip_units(s: str) -> str:
    """``s`` without trailing units / percent / degrees, as long as something with a digit remains; else
    ``s`` cleaned (spacing commands removed, ``\\text {`` joined)."""
    s = _clean(s).removesuffix(".").strip()
    while True:
        m = _UNIT_GROUP_RE.search(s) or _UNIT_TAIL_RE.search(s)
        if not m or m.start() == 0:
            return s
        rest = s[: m.start()].rstrip()
        if not re.search(r"\d", rest) or rest.endswith(("^", "_", "\\")):
            return s
        s = rest


def parse_number(s: str) -> float | None:
    """The value of a plain number (units stripped; scientific notation allowed), else ``None``."""
    s = strip_units(s.replace("$", ""))
    s = (s[: m.start()] if (m := _WORD_TAIL_RE.search(s)) else s).replace(" ", "")
    if _THOUSANDS_RE.fullmatch(s):
        s = s.replace(",", "")
    try:
        if _PLAIN_RE.fullmatch(s):
            return float(s)
        if m := _E_RE.fullmatch(s):
            return float(f"{m.group(1)}e{m.group(2)}")
        if m := _POW_RE.fullmatch(s):
            return float(f"{m.group(1) or 1}e{m.group(2) or m.group(3)}")
    except OverflowError:
        return None
    return None


def numbers_equal(a: float, b: float) -> bool:
    """Relative equality: |a - b| <= REL_TOL * max(|a|, |b|) (0 equals only 0)."""
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=0.0)


def compare_numbers(pred: str, gold: str) -> bool | None:
    """True / False when both sides are plain numbers (after units), else None (not decided here)."""
    p, g = parse_number(pred), parse_number(gold)
    if p is None or g is None or not (math.isfinite(p) and math.isfinite(g)):
        return None
    return numbers_equal(p, g)


def sci_to_latex(s: str) -> str:
    """E-notation numbers in ``s`` as LaTeX (``4.5e33`` -> ``4.5 \\times 10^{33}``), so that math-verify does
    not read e as Euler's number; other text unchanged."""
    return re.sub(
        rf"(?<![A-Za-z\\_^]){_E_RE.pattern}(?![A-Za-z])",
        lambda m: f"{m.group(1)} \\times 10^{{{int(m.group(2))}}}",
        s,
    )
