"""Title, 报送单位 and 报送时间 from the lines around the table.

They stand above the header, in one merged cell (``报送单位：… 报送时间：…``),
in two cells, with the value in the cell after the label, or in paragraphs
above a Word table. The period is taken from the title only; the caller
decides what 报送时间 means for the period.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

from ingest.model import MonthHint, ReportedOn

_UNIT_LABEL = re.compile(r"(?:报送|填报|上报|填表)单位(?:名称)?\s*:")
_DATE_LABEL = re.compile(r"(?:报送|填报|上报|填表)(?:时间|日期)\s*:")
# Where a value written after a label ends: the next label or a wide gap.
_VALUE_END = re.compile(
    r"\s{2,}|(?:报送|填报|上报|填表)(?:单位|时间|日期)|联系人|联系电话|填表人|审核人|负责人"
)
_BLANKS = "_＿-—:： \t"

_FULL_DATE = re.compile(r"(\d{4})\s*[年./\-]\s*(\d{1,2})\s*[月./\-]\s*(\d{1,2})")
_COMPACT_DATE = re.compile(r"(?<!\d)(\d{4})(\d{2})(\d{2})(?!\d)")
_YEAR_MONTH = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月")
_MONTH_DAY = re.compile(r"(?<!\d)(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?")
_MONTH = re.compile(r"(?:(\d{4})\s*年\s*(?:度\s*)?)?(?<!\d)(\d{1,2})\s*月")
_CHINESE_MONTH = re.compile(r"(?:(\d{4})\s*年\s*)?(十[一二]|[一二三四五六七八九十])\s*月")
_CHINESE_NUMBERS = {
    "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6,
    "七": 7, "八": 8, "九": 9, "十": 10, "十一": 11, "十二": 12,
}


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


def find_title(lines: list[str]) -> str | None:
    """The first line naming a table (…统计表), else the first line that is
    not the 报送单位/报送时间 line."""
    candidates = [
        line.strip()
        for line in lines
        if line.strip() and not _UNIT_LABEL.search(normalize(line))
        and not _DATE_LABEL.search(normalize(line))
    ]
    for line in candidates:
        if "表" in line:
            return line
    return candidates[0] if candidates else None


def find_unit_name(lines: list[str]) -> str | None:
    for line in lines:
        value = _labelled_value(normalize(line), _UNIT_LABEL)
        if value:
            return value
    return None


def find_reported_on(lines: list[str]) -> ReportedOn | None:
    for line in lines:
        text = normalize(line)
        match = _DATE_LABEL.search(text)
        if match is None:
            continue
        reported = parse_reported_on(text[match.end():])
        if reported is not None:
            return reported
    return None


def _labelled_value(text: str, label: re.Pattern[str]) -> str | None:
    match = label.search(text)
    if match is None:
        return None
    rest = text[match.end():].lstrip(_BLANKS)
    end = _VALUE_END.search(rest)
    value = (rest if end is None else rest[: end.start()]).strip(_BLANKS)
    return value or None


def parse_reported_on(text: str) -> ReportedOn | None:
    """``2025年5月18日``, ``2025.5.18``, ``2025-05-18``, ``2025/5/18``,
    ``20250518``, ``2025年5月``, ``5月18日``; None when none fits."""
    text = normalize(text)
    for pattern in (_FULL_DATE, _COMPACT_DATE):
        match = pattern.search(text)
        if match:
            year, month, day = (int(group) for group in match.groups())
            if _is_date(year, month, day):
                return ReportedOn(month=month, day=day, year=year)
    match = _YEAR_MONTH.search(text)
    if match and 1 <= int(match.group(2)) <= 12:
        return ReportedOn(month=int(match.group(2)), year=int(match.group(1)))
    match = _MONTH_DAY.search(text)
    if match and _is_date(2000, int(match.group(1)), int(match.group(2))):
        return ReportedOn(month=int(match.group(1)), day=int(match.group(2)))
    return None


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        dt.date(year, month, day)
    except ValueError:
        return False
    return True


def find_period(title: str | None) -> MonthHint | None:
    """An explicit month in the title: ``5月份``, ``2025年5月``, ``五月``,
    ``十二月``."""
    if not title:
        return None
    text = normalize(title)
    match = _MONTH.search(text)
    if match and 1 <= int(match.group(2)) <= 12:
        year = int(match.group(1)) if match.group(1) else None
        return MonthHint(month=int(match.group(2)), year=year, source="title")
    match = _CHINESE_MONTH.search(text)
    if match:
        year = int(match.group(1)) if match.group(1) else None
        month = _CHINESE_NUMBERS[match.group(2)]
        return MonthHint(month=month, year=year, source="title")
    return None
