"""Find the table's header by its labels and map columns to the figures.

The header may stand at any row and column offset and usually has two rows:
group headings (安全疏散条件不足, 人员密集场所…) over sub-headings (发现, 整改,
拆除, 合计(平方米)…). Columns are mapped by group plus sub-heading, never by
position, because units add leading columns (序号, 单位, 学校类别).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache

from ingest.model import FIGURES

from .grid import Grid, cell_text

# Group keyword → group; checked in this order on the normalized label.
_GROUPS: tuple[tuple[str, str], ...] = (
    ("排查", "premises"),
    ("疏散", "evacuation"),
    ("栅栏", "barrier"),
    ("防盗网", "barrier"),
    ("广告牌", "barrier"),
    ("障碍", "obstruction"),
    ("堵塞", "obstruction"),
    ("标线", "lane"),
    ("演练", "drill"),
    ("培训", "training"),
)
_SUBS: tuple[tuple[str, str], ...] = (
    ("发现", "found"),
    ("整改", "fixed"),
    ("拆除", "removed"),
    ("平方米", "area"),
    ("面积", "area"),
    ("m2", "area"),
    ("合计", "area"),
    ("清理", "cleared"),
    ("划线", "painted"),
)
_FIGURE_OF: dict[tuple[str, str | None], str] = {
    ("premises", None): "premises_inspected",
    ("evacuation", "found"): "evacuation_found",
    ("evacuation", "fixed"): "evacuation_fixed",
    ("barrier", "found"): "barrier_found",
    ("barrier", "removed"): "barrier_removed",
    ("barrier", "area"): "barrier_area_m2",
    ("lane", None): "lane_marking_painted",
    ("lane", "painted"): "lane_marking_painted",
    ("obstruction", "found"): "obstruction_found",
    ("obstruction", "cleared"): "obstruction_cleared",
    ("drill", None): "drill_premises",
    ("training", None): "training_premises",
}

# A row is the group-heading row when it names this many groups.
MIN_GROUPS = 4
# A header is usable when this many of the eleven figures were mapped.
MIN_FIGURES = 6
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Header:
    """Where the header is and which column holds which figure."""

    top: int
    bottom: int
    columns: dict[str, int]

    @property
    def first_data_row(self) -> int:
        return self.bottom + 1

    @property
    def left(self) -> int:
        return min(self.columns.values())

    @property
    def right(self) -> int:
        return max(self.columns.values())

    @cached_property
    def ordered(self) -> list[tuple[str, int]]:
        """(figure, column) for all eleven figures; -1 for a missing column."""
        return [(figure, self.columns.get(figure, -1)) for figure in FIGURES]

    def missing(self) -> list[str]:
        return [figure for figure in FIGURES if figure not in self.columns]


# Labels repeat from file to file (every unit fills the same template), so
# normalizing each text once per process saves most of the header search.
@lru_cache(maxsize=4096)
def label(text: str) -> str:
    """A header label without spaces, line breaks or full-width forms."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


@lru_cache(maxsize=4096)
def group_of(text: str) -> str | None:
    for keyword, group in _GROUPS:
        if keyword in text:
            return group
    return None


@lru_cache(maxsize=4096)
def sub_of(text: str) -> str | None:
    for keyword, sub in _SUBS:
        if keyword in text:
            return sub
    return None


def find_header(grid: Grid, start: int = 0) -> Header | None:
    """The first header at or below row ``start``, or None."""
    for row in range(start, len(grid.rows)):
        if not has_header_groups(grid.rows[row]):
            continue
        header = _map_header(grid, row)
        if header is not None:
            return header
    return None


def has_header_groups(cells: Sequence[object]) -> bool:
    """Whether a row names enough groups to be a header's first row."""
    return _group_count(cells) >= MIN_GROUPS


def _group_count(cells: Sequence[object]) -> int:
    groups = set()
    for value in cells:
        if isinstance(value, str) and value:
            group = group_of(label(value))
            if group is not None:
                groups.add(group)
    return len(groups)


def _map_header(grid: Grid, top: int) -> Header | None:
    two_rows = _sub_count(grid, top + 1) >= 2
    bottom = top + 1 if two_rows else top
    width = grid.width()
    headings = _labels(grid.rows[top], width)
    subs = _labels(grid.rows[bottom], width) if two_rows else [""] * width
    columns: dict[str, int] = {}
    carried = ""

    for col, (heading, sub_text) in enumerate(zip(headings, subs)):
        if heading:
            carried = heading
        elif sub_of(sub_text) is not None:
            heading = carried

        figure = _figure_for(heading, sub_text)
        if figure is not None and figure not in columns:
            columns[figure] = col

    if len(columns) < MIN_FIGURES:
        return None
    return Header(top, bottom, columns)


def _labels(cells: Sequence[object], width: int) -> list[str]:
    """The row's cells as labels, padded to ``width``."""
    return [label(cell_text(value)) for value in cells] + [""] * (width - len(cells))


def _sub_count(grid: Grid, row: int) -> int:
    if row >= len(grid.rows):
        return 0
    count = 0
    for value in grid.rows[row]:
        if isinstance(value, str) and value and sub_of(label(value)) is not None:
            count += 1
    return count


def _figure_for(heading: str, sub_text: str) -> str | None:
    group = group_of(heading) or group_of(sub_text)
    if group is None:
        return None
    sub = sub_of(sub_text) if sub_text and sub_text != heading else None
    if sub is None and group in ("evacuation", "barrier", "obstruction"):
        # A one-row header writes group and sub-heading in one cell.
        sub = sub_of(heading)
    return _FIGURE_OF.get((group, sub)) or _FIGURE_OF.get((group, None))
