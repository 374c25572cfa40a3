"""Compute the simple formulas that were saved without a result.

openpyxl (and scripts built on it) write ``=SUM(B5:B8)`` with no cached
value; Excel fills it in on the next save, but units send such files as they
are. Plain sums, cell references, numbers and ``+``/``-`` between them are
computed from the grid; anything else is reported instead of guessed.
"""

from __future__ import annotations

import re

from .figures import parse_figure
from .grid import Formula, Grid, parse_a1

_TERM = re.compile(
    r"\s*([+-]?)\s*(?:SUM\(([^()]*)\)|(\$?[A-Z]{1,3}\$?\d+)|(\d+(?:\.\d+)?))\s*",
    re.IGNORECASE,
)
_MAX_DEPTH = 20


class UnsupportedFormula(ValueError):
    """The formula is not a plain sum or reference."""


def evaluate(grid: Grid, formula: Formula, figure: str, depth: int = 0) -> float:
    """The formula's result, reading referenced cells as ``figure``."""
    if depth > _MAX_DEPTH:
        raise UnsupportedFormula("formulas refer to each other in a circle")
    text = formula.text.lstrip("=").strip()
    total = 0.0
    position = 0

    while position < len(text):
        match = _TERM.match(text, position)
        if match is None or match.end() == position:
            raise UnsupportedFormula(f"cannot compute ={text}")
        sign = -1.0 if match.group(1) == "-" else 1.0
        total += sign * _term_value(grid, match, figure, depth)
        position = match.end()
    return total


def _term_value(grid: Grid, match: re.Match[str], figure: str, depth: int) -> float:
    arguments, reference, number = match.group(2), match.group(3), match.group(4)
    if number is not None:
        return float(number)
    if reference is not None:
        return _cell_value(grid, reference, figure, depth)
    return sum(_range_value(grid, part, figure, depth) for part in arguments.split(","))


def _range_value(grid: Grid, part: str, figure: str, depth: int) -> float:
    part = part.strip()
    if not part:
        return 0.0
    if "!" in part:
        raise UnsupportedFormula(f"refers to another sheet ({part})")
    first, _, last = part.partition(":")
    top, left = _parse(first)
    bottom, right = _parse(last) if last else (top, left)
    total = 0.0
    # A whole-column range (B:B written as B1:B1048576) stops at the grid.
    last_row = min(max(top, bottom), len(grid.rows) - 1)
    last_col = min(max(left, right), grid.width() - 1)
    for row in range(min(top, bottom), last_row + 1):
        for col in range(min(left, right), last_col + 1):
            total += _value_at(grid, row, col, figure, depth)
    return total


def _cell_value(grid: Grid, reference: str, figure: str, depth: int) -> float:
    row, col = _parse(reference)
    return _value_at(grid, row, col, figure, depth)


def _parse(reference: str) -> tuple[int, int]:
    try:
        return parse_a1(reference.strip())
    except ValueError as exc:
        raise UnsupportedFormula(str(exc)) from exc


def _value_at(grid: Grid, row: int, col: int, figure: str, depth: int) -> float:
    value = grid.value(row, col)
    if isinstance(value, Formula):
        return evaluate(grid, value, figure, depth + 1)
    # SUM ignores text, and a cell that is not a figure adds nothing.
    parsed = parse_figure(value, figure)
    return float(parsed.value) if parsed.value is not None else 0.0
