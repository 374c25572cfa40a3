"""Which month a report is for, and whether it came in on time.

The month is the explicit one in the table's title, else in the mail's
subject, else in the file name, else the month of 报送时间, else the month
the mail was received, all in the district's time zone. 报送时间 comes after
subject and file name because it is the date of sending, not a statement of
the month: a late April report filled in on 3 May says 报送时间 5月3日.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from ingest.model import Issue, MonthHint, ReportedOn

_CHINESE_MONTHS = {
    "十二": 12, "十一": 11, "十": 10, "一": 1, "二": 2, "三": 3, "四": 4,
    "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "正": 1, "元": 1,
}
_FULL_WIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

# 2025年5月, 2025年05月份; the year is optional; not 5月18日-style dates
# followed by a day when the text is a date (handled by the table reader).
_YEAR_MONTH = re.compile(r"(?:(20\d\d)\s*年\s*)?(1[0-2]|0?[1-9])\s*月")
_CHINESE_MONTH = re.compile(
    r"(?:(20\d\d)\s*年\s*)?(十二|十一|十|正|元|[一二三四五六七八九])\s*月"
)
_DOTTED = re.compile(r"(?<!\d)(20\d\d)\s*[.\-/_年]\s*(1[0-2]|0?[1-9])(?!\d)")


def month_in_text(text: str, source: str) -> MonthHint | None:
    """The month a subject or file name names, if it names exactly one."""
    text = text.translate(_FULL_WIDTH)
    for pattern in (_YEAR_MONTH, _DOTTED):
        match = pattern.search(text)
        if match:
            year = int(match.group(1)) if match.group(1) else None
            return MonthHint(int(match.group(2)), year, source)

    match = _CHINESE_MONTH.search(text)
    if match:
        year = int(match.group(1)) if match.group(1) else None
        return MonthHint(_CHINESE_MONTHS[match.group(2)], year, source)
    return None


@dataclass(frozen=True)
class PeriodChoice:
    period: str
    source: str
    warnings: tuple[Issue, ...] = ()


def choose(
    received: dt.datetime,
    *,
    title: MonthHint | None,
    subject: MonthHint | None,
    filename: MonthHint | None,
    reported_on: ReportedOn | None,
) -> PeriodChoice:
    """The period of one table, given every hint and the local reception
    time. A disagreement between the table and the mail is a warning."""
    sent = None
    if reported_on is not None:
        sent = MonthHint(reported_on.month, reported_on.year, "报送时间")

    hints = [h for h in (title, subject, filename, sent) if h is not None]
    if not hints:
        return PeriodChoice(_format(received.year, received.month), "received")

    year_anchor = received.date()
    if reported_on is not None and reported_on.as_date() is not None:
        year_anchor = reported_on.as_date()  # type: ignore[assignment]
    periods = [(_complete(h, year_anchor), h.source) for h in hints]

    chosen, source = periods[0]
    # 报送时间 may rightly fall in the next month, so only the explicit
    # statements of a month are compared.
    others = [
        f"the {other_source} names {other}"
        for other, other_source in periods[1:]
        if other != chosen and other_source != "报送时间"
    ]
    warnings: tuple[Issue, ...] = ()
    if others:
        warnings = (
            Issue(
                "period-mismatch",
                f"the {source} names {chosen} but {', '.join(others)}; "
                f"the report is filed under {chosen}",
            ),
        )
    return PeriodChoice(chosen, source, warnings)


def _complete(hint: MonthHint, anchor: dt.date) -> str:
    """A month without a year is the one nearest before ``anchor`` (a
    report is sent in its month or soon after), allowing one month ahead."""
    if hint.year is not None:
        return _format(hint.year, hint.month)

    year = anchor.year
    if hint.month > anchor.month + 1:
        year -= 1
    return _format(year, hint.month)


def _format(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


def deadline(period: str, deadline_day: int, tz: dt.tzinfo) -> dt.datetime:
    """The first moment that is late: 00:00 local on the day after the
    deadline day of the period's month."""
    year, month = (int(p) for p in period.split("-"))
    last_day = dt.datetime(year, month, deadline_day, tzinfo=tz)
    return last_day + dt.timedelta(days=1)


def on_time(
    received: dt.datetime, period: str, deadline_day: int, tz: dt.tzinfo
) -> bool:
    """Received on or before the deadline day of the period's month, in
    the district's time zone. Early reports are on time too."""
    return received.astimezone(tz) < deadline(period, deadline_day, tz)
