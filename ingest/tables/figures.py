"""Parse one figure cell as units write it.

A figure arrives as a number, as text with full-width digits, thousands
separators, padding or a unit suffix (``１２``, ``1,200``, ``12处``, ``3家``,
``6（处）``), or as a word or dash that means zero (``无``, ``/``, ``-``, ``—``).
Anything else, including a comma that is not a thousands separator (``42,5``
may be a decimal comma) and a count no unit could have, is not a figure.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import NamedTuple

from ingest.model import FRACTIONAL_FIGURES, Number

# Written where a unit has nothing to report; NFKC has already turned the
# full-width forms into these.
ZERO_WORDS: frozenset[str] = frozenset(
    {"无", "/", "\\", "-", "--", "—", "——", "–", "―", "─", "零", "没有", "暂无"}
)

# No unit in the district has this many of anything; a larger value is a
# slip (a phone number, an ID pasted in) rather than a figure.
MAX_FIGURE = 10_000_000

_UNIT = r"平方米|平米|m2|个|处|家|所|起|条|块|次|m"
# A number, then maybe its unit, bare or in brackets as the template's header
# writes it; commas only as thousands separators. Excel writes a large number
# it exports as text in E notation (1E+15), so that is read to be judged.
_WRITTEN = re.compile(
    r"(?P<number>[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+)"
    r"(?:[eE][+-]?\d+)?)"
    rf"\s*(?:{_UNIT}|\((?:{_UNIT})\))?"
)


class Figure(NamedTuple):
    """One cell read as a figure: ``value`` is None when it is blank;
    ``error`` says why the text is not a usable figure."""

    value: Number | None
    error: str | None = None


BLANK = Figure(None)
ZERO = Figure(0)


def normalize_text(text: str) -> str:
    """Full-width forms to ASCII and surrounding space removed."""
    return unicodedata.normalize("NFKC", text).strip()


def parse_figure(raw: object, figure: str) -> Figure:
    """Read ``raw`` (a cell value) as the figure named ``figure``."""
    if raw is None or raw == "":
        return BLANK
    if type(raw) is int:
        return _plausible(raw, figure)
    if isinstance(raw, bool):
        return Figure(None, "is not a number")
    if isinstance(raw, (int, float)):
        return _checked(float(raw), figure)
    if isinstance(raw, (dt.date, dt.time, dt.timedelta)):
        return Figure(None, "is a date, not a number")
    return _parse_text(str(raw), figure)


def _parse_text(raw: str, figure: str) -> Figure:
    text = normalize_text(raw)
    if not text:
        return BLANK
    if text in ZERO_WORDS:
        return ZERO

    written = _WRITTEN.fullmatch(text)
    if written is None:
        return Figure(None, "is not a number")
    return _checked(float(written["number"].replace(",", "")), figure)


def _checked(number: float, figure: str) -> Figure:
    if number != number or number in (float("inf"), float("-inf")):
        return Figure(None, "is not a number")
    if figure not in FRACTIONAL_FIGURES and not number.is_integer():
        return Figure(None, "is not a whole number")
    return _plausible(as_number(number), figure)


def _plausible(number: Number, figure: str) -> Figure:
    if abs(number) <= MAX_FIGURE:
        return Figure(number)
    kind = "area" if figure in FRACTIONAL_FIGURES else "count"
    return Figure(None, f"is not a plausible {kind}")


def as_number(number: float) -> Number:
    """An int when whole, else the float rounded to remove binary noise."""
    if type(number) is int:
        return number
    rounded = round(number, 6)
    if rounded.is_integer():
        return int(rounded)
    return rounded
