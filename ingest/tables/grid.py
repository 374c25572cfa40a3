"""A sheet (or a Word/HTML table) as a plain grid of cell values.

Every reader turns its format into ``Grid``s so that finding the header and
reading the rows is written once. A merged cell holds its value in its
top-left position and ``""`` elsewhere, as spreadsheet libraries give it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from functools import lru_cache

CellValue = str | int | float | bool | dt.date | dt.datetime | dt.time | dt.timedelta | None


@dataclass(frozen=True)
class Formula:
    """A formula cell saved without its result (openpyxl writes these)."""

    text: str


@dataclass
class Grid:
    """One sheet or table: ``rows[r][c]`` is the cell at row r, column c
    (0-based, A1 is ``rows[0][0]``). ``preamble`` is text that stood above
    the table outside any cell (paragraphs of a Word document)."""

    sheet: str | None
    rows: list[list[CellValue | Formula]]
    preamble: list[str] = field(default_factory=list)

    def value(self, row: int, col: int) -> CellValue | Formula:
        if row < 0 or row >= len(self.rows):
            return None
        cells = self.rows[row]
        return cells[col] if 0 <= col < len(cells) else None

    def text(self, row: int, col: int) -> str:
        """The cell as text, dates written the Chinese way."""
        return cell_text(self.value(row, col))

    def width(self) -> int:
        return max((len(cells) for cells in self.rows), default=0)

    def cell_name(self, row: int, col: int) -> str:
        return self.qualify(a1(row, col))

    def range_name(self, top: int, left: int, bottom: int, right: int) -> str:
        return self.qualify(f"{a1(top, left)}:{a1(bottom, right)}")

    def qualify(self, reference: str) -> str:
        return reference if self.sheet is None else f"{self.sheet}!{reference}"


def cell_text(value: object) -> str:
    if type(value) is str:
        return value
    if value is None:
        return ""
    if isinstance(value, Formula):
        return value.text
    if isinstance(value, dt.datetime | dt.date):
        return f"{value.year}年{value.month}月{value.day}日"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@lru_cache(maxsize=256)
def column_letters(col: int) -> str:
    letters = ""
    col += 1
    while col:
        col, remainder = divmod(col - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters


def a1(row: int, col: int) -> str:
    return f"{column_letters(col)}{row + 1}"


def parse_a1(reference: str) -> tuple[int, int]:
    """``"B5"`` → (4, 1); ``$`` anchors are ignored."""
    reference = reference.replace("$", "").upper()
    split = len(reference) - len(reference.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    letters, digits = reference[:split], reference[split:]
    if not letters or not digits.isdigit():
        raise ValueError(f"not a cell reference: {reference!r}")
    col = 0
    for letter in letters:
        col = col * 26 + ord(letter) - 64
    return int(digits) - 1, col - 1
