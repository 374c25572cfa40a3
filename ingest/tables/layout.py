"""Read the data rows under a header into the table's figures.

Rows end at a note (备注…), a signature line, or a long run of empty rows
(sheets formatted down to row 1,048,576). The values are the 合计 row when
it equals the sum of the other rows, else that sum with a warning; then the
plausibility rules of reporting-table.md add their warnings.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from ingest.model import FIGURES, FRACTIONAL_FIGURES, Issue, Number, TableRow

from .figures import MAX_FIGURE, Figure, as_number, parse_figure
from .formulas import UnsupportedFormula, evaluate
from .grid import Formula, Grid, cell_text
from .header import MIN_GROUPS, Header, has_header_groups, label

logger = logging.getLogger(__name__)

# This many empty rows in a row end the data.
MAX_EMPTY_RUN = 50
_TOTAL = re.compile(r"合计|总计|小计|汇总|累计")
_END = re.compile(
    r"^(?:备注|注[:：1-9]|说明|填表说明|附注)"
    r"|填表人|填报人|审核人|负责人|联系电话|制表|(?:报送|填报|上报)(?:单位|时间|日期)"
)
_SERIAL = re.compile(r"^[\d.、()]*$")
_LONGEST_DIGITS = len(str(MAX_FIGURE))


@dataclass
class Rows:
    """What the rows under one header say."""

    rows: list[TableRow] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)
    last_row: int | None = None


def read_rows(grid: Grid, header: Header) -> Rows:
    result = Rows()
    empty_run = 0
    figure_columns = set(header.columns.values())
    label_columns = [col for col in range(header.left) if col not in figure_columns]

    for row in range(header.first_data_row, len(grid.rows)):
        if _ends_data(grid.rows[row]):
            break
        values, problems = _read_figures(grid, row, header)
        if values is None:
            empty_run += 1
            if empty_run >= MAX_EMPTY_RUN:
                break
            continue

        empty_run = 0
        row_label = _row_label(grid, row, label_columns)
        is_total = bool(row_label and _TOTAL.search(label(row_label)))
        cells = grid.range_name(row, header.left, row, header.right)
        result.rows.append(TableRow(cells, values, row_label, is_total))
        result.problems.extend(problems)
        result.last_row = row
    return result


def _row_label(grid: Grid, row: int, columns: list[int]) -> str | None:
    parts = []
    cells = grid.rows[row]
    for col in columns:
        text = cell_text(cells[col]).strip() if col < len(cells) else ""
        if text and not _SERIAL.match(text):
            parts.append(" ".join(text.split()))
    return " ".join(parts) or None


def _ends_data(cells: Sequence[object]) -> bool:
    """A note, a signature line or the next table's header ends the data."""
    first = next((value for value in cells if value not in (None, "")), None)
    if not isinstance(first, str) or not first.strip():
        return False
    if _is_end_label(first):
        return True
    strings = [value for value in cells if type(value) is str and value]
    return len(strings) >= MIN_GROUPS and has_header_groups(strings)


@lru_cache(maxsize=4096)
def _is_end_label(text: str) -> bool:
    return _END.search(label(text)) is not None


def _read_figures(
    grid: Grid, row: int, header: Header
) -> tuple[dict[str, Number] | None, list[Issue]]:
    """The row's figures, or None when the row has none at all."""
    values: dict[str, Number] = {}
    problems: list[Issue] = []
    seen_any = False

    cells = grid.rows[row]
    width = len(cells)
    for figure, col in header.ordered:
        raw = cells[col] if 0 <= col < width else None
        plain = _plain_number(raw, figure)
        if plain is not None:
            values[figure] = plain
            seen_any = True
            continue

        parsed = _parse_cell(grid, raw, figure)
        seen_any = seen_any or not _is_blank(raw)
        if parsed.error is not None:
            problems.append(_not_a_number(grid, row, col, raw, parsed.error))
        elif parsed.value is not None and parsed.value < 0:
            problems.append(_negative(grid, row, col, parsed.value))
        values[figure] = parsed.value if parsed.value is not None else 0

    return (values if seen_any else None), problems


def _plain_number(raw: object, figure: str) -> Number | None:
    """The cell's figure when it is a usable number as it stands, which most
    cells are; they skip the text parser and its checks."""
    if type(raw) is int:
        return raw if 0 <= raw <= MAX_FIGURE else None
    if type(raw) is str:
        # Word, CSV and HTML give text; plain ASCII digits are the usual case.
        plain = raw.isdigit() and raw.isascii() and len(raw) <= _LONGEST_DIGITS
        return int(raw) if plain and int(raw) <= MAX_FIGURE else None
    if type(raw) is not float or not 0 <= raw <= MAX_FIGURE:
        return None
    if raw.is_integer():
        return int(raw)
    return as_number(raw) if figure in FRACTIONAL_FIGURES else None


def _is_blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, str) and not raw.strip())


def _parse_cell(grid: Grid, raw: object, figure: str) -> Figure:
    if not isinstance(raw, Formula):
        return parse_figure(raw, figure)
    try:
        return parse_figure(evaluate(grid, raw, figure), figure)
    except UnsupportedFormula as exc:
        logger.info("%s: formula %s not computed: %s", grid.sheet, raw.text, exc)
        return Figure(None, f"the formula {raw.text} was saved without its result")


def _not_a_number(grid: Grid, row: int, col: int, raw: object, error: str) -> Issue:
    shown = raw.text if isinstance(raw, Formula) else _shown(raw)
    if isinstance(raw, Formula):
        advice = "open the file in Excel or WPS, save it and send it again"
        return Issue("not-a-number", f"{grid.cell_name(row, col)}: {error}; {advice}")
    return Issue("not-a-number", f'{grid.cell_name(row, col)}: "{shown}" {error}')


def _shown(raw: object) -> object:
    """A whole float as the person typed it: 1000000000000000, not ….0."""
    if type(raw) is float and raw.is_integer():
        return int(raw)
    return raw


def _negative(grid: Grid, row: int, col: int, value: Number) -> Issue:
    return Issue(
        "negative-value",
        f"{grid.cell_name(row, col)}: {value} is negative; "
        "figures cannot be below zero",
    )


def totals(rows: list[TableRow]) -> tuple[dict[str, Number], list[Issue]]:
    """The unit's values: the last 合计 row when it equals the sum of the
    data rows, otherwise that sum with a ``total-row-mismatch`` warning."""
    data = [row for row in rows if not row.is_total]
    total_rows = [row for row in rows if row.is_total]
    if not data:
        return (dict(total_rows[-1].values) if total_rows else _zeros()), []

    summed = _sum_rows(data)
    if not total_rows:
        return summed, []

    total = total_rows[-1]
    differing = [
        figure
        for figure in FIGURES
        if abs(float(total.values[figure]) - float(summed[figure])) > 1e-6
    ]
    if not differing:
        return dict(total.values), []
    details = ", ".join(
        f"{figure} {total.values[figure]} ≠ {summed[figure]}" for figure in differing
    )
    warning = Issue(
        "total-row-mismatch",
        f"{total.cells}: the {total.label or '合计'} row does not equal the sum "
        f"of the rows above it ({details}); the sum is used",
    )
    return summed, [warning]


def _sum_rows(rows: list[TableRow]) -> dict[str, Number]:
    sums: dict[str, Number] = dict.fromkeys(FIGURES, 0)
    for row in rows:
        for figure, value in row.values.items():
            sums[figure] += value
    return {figure: as_number(total) for figure, total in sums.items()}


def _zeros() -> dict[str, Number]:
    return {figure: 0 for figure in FIGURES}


# (code, larger figure, smaller figure, what is wrong)
_EXCEEDS: tuple[tuple[str, str, str, str], ...] = (
    ("fixed-exceeds-found", "evacuation_fixed", "evacuation_found",
     "整改 exceeds 发现 (安全疏散条件不足)"),
    ("removed-exceeds-found", "barrier_removed", "barrier_found",
     "拆除 exceeds 发现 (铁栅栏、防盗网、广告牌)"),
    ("cleared-exceeds-found", "obstruction_cleared", "obstruction_found",
     "清理 exceeds 发现 (消防车通道障碍物)"),
)


def plausibility(values: dict[str, Number]) -> list[Issue]:
    """The warnings of reporting-table.md on the unit's values."""
    warnings = []
    for code, larger, smaller, what in _EXCEEDS:
        if values[larger] > values[smaller]:
            message = f"{what}: {values[larger]} > {values[smaller]}"
            warnings.append(Issue(code, message))

    removed, area = values["barrier_removed"], values["barrier_area_m2"]
    if removed > 0 and area == 0:
        message = f"{removed} removed (拆除) but the area (平方米) is 0"
        warnings.append(Issue("removed-without-area", message))
    if area > 0 and removed == 0:
        message = f"area {area} 平方米 but nothing removed (拆除)"
        warnings.append(Issue("area-without-removal", message))
    return warnings
