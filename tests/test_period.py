"""Which month a report is for, and the deadline, in the district's zone."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from ingest import period
from ingest.model import MonthHint, ReportedOn

SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("received", "period_", "expected"),
    [
        (local(2025, 5, 20, 23, 59, 59), "2025-05", True),
        (local(2025, 5, 21, 0, 0, 0), "2025-05", False),
        (local(2025, 5, 1, 0, 0, 0), "2025-05", True),
        (local(2025, 4, 30, 23, 59, 59), "2025-05", True),  # early is on time
        (local(2025, 6, 3, 10, 0, 0), "2025-05", False),
        (local(2025, 12, 20, 23, 59, 59), "2025-12", True),
        (local(2025, 12, 21, 0, 0, 0), "2025-12", False),
        (local(2026, 1, 2, 9, 0, 0), "2025-12", False),  # December's, in January
        (local(2026, 1, 20, 23, 59, 59), "2026-01", True),
    ],
)
def test_deadline_boundaries(received: dt.datetime, period_: str, expected: bool) -> None:
    assert period.on_time(received, period_, 20, SHANGHAI) is expected


def test_on_time_is_decided_in_the_district_zone_not_utc() -> None:
    # 23:30 on the 20th in Shanghai is 15:30 UTC: on time.
    late_evening = dt.datetime(2025, 5, 20, 15, 30, tzinfo=dt.UTC)
    # 00:30 on the 21st in Shanghai is still the 20th in UTC: late.
    after_midnight = dt.datetime(2025, 5, 20, 16, 30, tzinfo=dt.UTC)

    assert period.on_time(late_evening, "2025-05", 20, SHANGHAI)
    assert not period.on_time(after_midnight, "2025-05", 20, SHANGHAI)


@pytest.mark.parametrize(
    ("text", "month", "year"),
    [
        ("城管局4月份打通消防生命通道统计表", 4, None),
        ("东城街道5月份统计表.xlsx", 5, None),
        ("五月统计表", 5, None),
        ("十二月报表", 12, None),
        ("十一月", 11, None),
        ("2025年5月统计表", 5, 2025),
        ("2025年05月份", 5, 2025),
        ("统计表2025.05.xlsx", 5, 2025),
        ("2024-11 统计表", 11, 2024),
        ("１２月份", 12, None),
    ],
)
def test_months_in_subjects_and_file_names(text: str, month: int, year: int | None) -> None:
    hint = period.month_in_text(text, "subject")

    assert hint == MonthHint(month, year, "subject")


@pytest.mark.parametrize("text", ["统计表（城管局）.xlsx", "生命通道统计表", "Re: 回复"])
def test_no_month(text: str) -> None:
    assert period.month_in_text(text, "subject") is None


def test_month_without_year_takes_the_nearest_year_before() -> None:
    # "12月" received in January is last December.
    choice = period.choose(
        local(2026, 1, 5, 10), title=None, subject=MonthHint(12), filename=None, reported_on=None
    )

    assert choice.period == "2025-12"


def test_received_month_when_nothing_names_one() -> None:
    choice = period.choose(
        local(2025, 7, 1, 0, 0), title=None, subject=None, filename=None, reported_on=None
    )

    assert (choice.period, choice.source) == ("2025-07", "received")


def test_table_title_wins_over_subject_with_a_warning() -> None:
    choice = period.choose(
        local(2025, 5, 10),
        title=MonthHint(5, None, "title"),
        subject=MonthHint(4, None, "subject"),
        filename=None,
        reported_on=None,
    )

    assert choice.period == "2025-05"
    assert [w.code for w in choice.warnings] == ["period-mismatch"]


def test_subject_month_beats_the_sending_date() -> None:
    """A late April report filled in on 3 May is April's."""
    choice = period.choose(
        local(2025, 5, 3),
        title=None,
        subject=MonthHint(4, None, "subject"),
        filename=None,
        reported_on=ReportedOn(5, 3, 2025),
    )

    assert choice.period == "2025-04"


def test_sending_date_decides_when_alone() -> None:
    choice = period.choose(
        local(2025, 6, 2),
        title=None,
        subject=None,
        filename=None,
        reported_on=ReportedOn(5, 30, 2025),
    )

    assert choice.period == "2025-05"
