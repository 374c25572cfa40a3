"""The values that travel through ingest: issues, attachments, tables.

These are plain data; every step of ingest takes and returns them, and the
store turns them into rows.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

# The eleven figures of the table, in the template's column order
# (../shared/domain/reporting-table.md).
FIGURES: tuple[str, ...] = (
    "premises_inspected",
    "evacuation_found",
    "evacuation_fixed",
    "barrier_found",
    "barrier_removed",
    "barrier_area_m2",
    "lane_marking_painted",
    "obstruction_found",
    "obstruction_cleared",
    "drill_premises",
    "training_premises",
)

# Only the removed area may be fractional; the rest are counts.
FRACTIONAL_FIGURES: frozenset[str] = frozenset({"barrier_area_m2"})

Number = int | float


@dataclass(frozen=True)
class Issue:
    """A warning or a problem, with a code of the JSON contract
    (../shared/samples/README.md) and a message for a person."""

    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class MonthHint:
    """An explicit month found somewhere (title, 报送时间, subject, file
    name); the year is None when the text did not say it."""

    month: int
    year: int | None = None
    source: str = ""

    def __str__(self) -> str:
        if self.year is None:
            return f"--{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True)
class ReportedOn:
    """The 报送时间 as written; year or day may be missing."""

    month: int
    day: int | None = None
    year: int | None = None

    def __str__(self) -> str:
        year = "-" if self.year is None else f"{self.year:04d}"
        if self.day is None:
            return f"{year}-{self.month:02d}"
        return f"{year}-{self.month:02d}-{self.day:02d}"

    def as_date(self) -> dt.date | None:
        if self.year is None or self.day is None:
            return None
        return dt.date(self.year, self.month, self.day)


@dataclass
class Attachment:
    """One file found in a mail, possibly inside an archive or a forwarded
    mail. ``filename`` is the decoded original name, for display."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"
    container: str | None = None


@dataclass
class TableRow:
    """One data row (or the total row) of a table."""

    cells: str
    values: dict[str, Number]
    label: str | None = None
    is_total: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "cells": self.cells,
            "label": self.label,
            "is_total": self.is_total,
            "values": self.values,
        }


@dataclass
class Table:
    """What one statistics table says: who, when, and the eleven figures.

    ``values`` are the unit's totals: the 合计 row when it equals the sum of
    the data rows, otherwise that sum. ``problems`` are errors in the figures
    (negative, not a number); ``warnings`` are plausibility notes.
    """

    file: str
    sheet: str | None = None
    cells: str | None = None
    title: str | None = None
    unit_name: str | None = None
    reported_on: ReportedOn | None = None
    period: MonthHint | None = None
    rows: list[TableRow] = field(default_factory=list)
    values: dict[str, Number] = field(default_factory=dict)
    warnings: list[Issue] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "sheet": self.sheet,
            "cells": self.cells,
            "unit_name": self.unit_name,
            "reported_on": (
                None if self.reported_on is None else str(self.reported_on)
            ),
            "period": None if self.period is None else str(self.period),
            "rows": [row.as_json() for row in self.rows],
            "values": self.values,
            "warnings": [w.as_json() for w in self.warnings],
            "problems": [p.as_json() for p in self.problems],
        }
