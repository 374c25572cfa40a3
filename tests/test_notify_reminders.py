"""Reminders over a simulated month, on a clock the test controls, sent to
a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from io import BytesIO
from pathlib import Path

import openpyxl
import pytest
from make_notify_data import (
    TZ,
    add_report,
    add_unit,
    figures,
    make_config,
)
from smtp_server import SmtpServer
from sqlalchemy.orm import Session, sessionmaker

from lifeline.config import Config
from notify.deliver import deliver_pending
from notify.reminders import (
    due_reminders,
    format_plan,
    queue_due_reminders,
    step_moment,
)
from notify.send import SmtpSender
from notify.summary import queue_due_summary


def may(day: int, hour: int = 9, minute: int = 0) -> dt.datetime:
    return dt.datetime(2025, 5, day, hour, minute, tzinfo=TZ)


def remind(
    sessions: sessionmaker[Session], config: Config, at: dt.datetime
) -> list[str]:
    """Queue due reminders twice (a second run must add nothing)."""
    with sessions() as session:
        first = queue_due_reminders(session, config, at)
        again = queue_due_reminders(session, config, at)
        session.commit()
    assert again == []
    return sorted(n.key for n in first)


def test_a_month_of_reminders(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """Reminders on the 15th and 19th reach only units still missing, the
    overdue notice on the 21st only the one that never reported."""
    server = {"host": smtp_server.host, "port": smtp_server.port}
    config = make_config(tmp_path, smtp=server)
    with sessions() as session:
        east = add_unit(session, "东街道", "east@example.cn")
        west = add_unit(session, "西街道", "west@example.cn", "west2@example.cn")
        north = add_unit(session, "北街道", "north@example.cn")
        south = add_unit(session, "南街道", "south@example.cn")
        add_unit(session, "新镇", "new@example.cn", active_from="2025-06")
        add_report(session, east, "2025-05", may(10), figures(1))
        ids = {u.id: u.name for u in (east, west, north, south)}
        session.commit()

    def names(keys: list[str]) -> list[str]:
        return sorted(ids[int(key.split(":")[1])] for key in keys)

    assert remind(sessions, config, may(15, 8, 59)) == []
    assert names(remind(sessions, config, may(15))) == ["北街道", "南街道", "西街道"]

    with sessions() as session:
        add_report(session, session.merge(west), "2025-05", may(17), figures(2))
        session.commit()
    assert remind(sessions, config, may(18)) == []
    second = remind(sessions, config, may(19, 9, 30))
    assert names(second) == ["北街道", "南街道"]
    assert all(key.endswith(":2025-05:second") for key in second)

    with sessions() as session:
        add_report(session, session.merge(north), "2025-05", may(20, 23), figures(3))
        session.commit()
    overdue = remind(sessions, config, may(21, 10))
    assert overdue == [f"overdue:{south.id}:2025-05:overdue"]

    with sessions() as session:
        assert queue_due_summary(session, config, may(21, 10)) is not None
        session.commit()

    sender = SmtpSender(config.smtp, backoff_seconds=0.01)
    assert deliver_pending(sessions, config, sender).sent == 7
    assert deliver_pending(sessions, config, sender).sent == 0

    got = Counter(
        (tuple(r.recipients), r.message["Subject"].split("：")[0])
        for r in smtp_server.received
    )
    assert got == {
        (("west@example.cn", "west2@example.cn"), "提醒"): 1,
        (("north@example.cn",), "提醒"): 2,
        (("south@example.cn",), "提醒"): 2,
        (("south@example.cn",), "逾期"): 1,
        (("coordinator@example.cn",), "月报"): 1,
    }
    subjects = {r.message["Subject"] for r in smtp_server.received}
    assert "提醒：南街道 2025年5月 生命通道统计表尚未收到，距截止（2025年5月20日）还有5天" in subjects
    messages = [r.message for r in smtp_server.received]
    summary = next(m for m in messages if "月报" in m["Subject"])
    (table,) = summary.iter_attachments()
    sheet = openpyxl.load_workbook(BytesIO(table.get_content())).worksheets[0]
    total = next(row for row in sheet.iter_rows(values_only=True) if row[0] == "合计")
    sums = [sum(figures(seed)[key] for seed in (1, 2, 3)) for key in figures(1)]
    assert list(total[1:12]) == pytest.approx(sums)
    assert "逾期：南街道 2025年5月 生命通道统计表已过截止日（2025年5月20日）1天，请尽快报送" in subjects


def test_catching_up_sends_only_the_latest_step(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Down from the 14th to the 20th: one reminder (the second), not two."""
    config = make_config(tmp_path)
    with sessions() as session:
        add_unit(session, "南街道", "south@example.cn")
        session.commit()
        plans = due_reminders(session, config, may(20, 12))

    assert [(p.step, p.days_left) for p in plans] == [("second", 0)]
    text = format_plan(plans)
    assert "南街道" in text and "south@example.cn" in text and "'second'" in text
    assert "0 day(s) left before the deadline 2025-05-20" in text


def test_naive_time_is_local(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """A naive ``at`` is district time: 09:00 local is due, 01:00 UTC too."""
    config = make_config(tmp_path)
    with sessions() as session:
        add_unit(session, "南街道", "south@example.cn")
        session.commit()
        assert due_reminders(session, config, dt.datetime(2025, 5, 15, 8, 59)) == []
        assert len(due_reminders(session, config, dt.datetime(2025, 5, 15, 9, 0))) == 1
        at_utc = dt.datetime(2025, 5, 15, 1, 0, tzinfo=dt.UTC)
        assert len(due_reminders(session, config, at_utc)) == 1


def test_weekends_and_holidays_move_to_the_next_working_day(tmp_path: Path) -> None:
    """June 15th 2025 is a Sunday; the 16th is a holiday here."""
    plain = make_config(tmp_path)
    config = make_config(
        tmp_path, notify={"skip_weekends": True, "holidays": ["2025-06-16"]}
    )
    first = plain.notify.reminders[0]
    assert step_moment(first, "2025-06", plain).date() == dt.date(2025, 6, 15)
    assert step_moment(first, "2025-06", config) == dt.datetime(
        2025, 6, 17, 9, 0, tzinfo=config.tz
    )


def test_no_reminders_without_steps_due_or_addresses(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Before the first step nothing; a unit with no address is skipped."""
    config = make_config(tmp_path)
    with sessions() as session:
        add_unit(session, "无邮箱街道")
        session.commit()
        assert due_reminders(session, config, may(1)) == []
        assert due_reminders(session, config, may(16)) == []
    assert format_plan([]) == "No reminders are due."
