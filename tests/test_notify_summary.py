"""The coordinator's monthly summary and its district table, from a real
SQLite database; the table is read back with openpyxl (and LibreOffice
when it is installed)."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path

import openpyxl
import pytest
from make_notify_data import (
    TZ,
    add_mail,
    add_report,
    add_unit,
    figures,
    make_config,
)
from python_calamine import CalamineWorkbook
from smtp_server import SmtpServer
from sqlalchemy.orm import Session, sessionmaker

from lifeline.config import Config
from notify.compose import compose
from notify.deliver import deliver_pending
from notify.district_table import write_district_table
from notify.send import SmtpSender
from notify.summary import (
    build_summary,
    format_summary,
    queue_due_summary,
    queue_summary,
)
from store import notices
from store.models import MailboxState, Problem, to_db
from store.reports import totals

NOW = dt.datetime(2025, 5, 21, 8, 0, tzinfo=TZ)


def may(day: int) -> dt.datetime:
    return dt.datetime(2025, 5, day, 10, 0, tzinfo=TZ)


def build_month(session: Session) -> dict[str, dict[str, int | float]]:
    """东 on time with a warning, 西 late and corrected, 北 missing, 旧 retired;
    April and January figures for the comparisons; an unknown sender."""
    east = add_unit(session, "东街道", "east@example.cn")
    west = add_unit(session, "西街道", "west@example.cn")
    add_unit(session, "北街道", "north@example.cn")
    add_unit(session, "旧街道", "old@example.cn", retired_from="2025-05")

    warning = {"code": "removed-exceeds-found", "message": "拆除数大于发现数"}
    add_report(session, east, "2025-05", may(10), figures(1), warnings=[warning])
    add_report(session, west, "2025-05", may(21), figures(2), on_time=False)
    add_report(session, west, "2025-05", may(22), figures(3), on_time=False)
    add_report(session, east, "2025-04", may(1), figures(5), on_time=False)
    add_report(session, east, "2025-01", may(1), figures(4), on_time=False)

    stranger = add_mail(session, "stranger@example.com", may(12))
    session.add(
        Problem(mail_id=stranger.id, code="unknown-sender", message="发件地址不在名单中")
    )
    session.add(
        MailboxState(
            account="box@example.cn",
            folder="INBOX",
            last_success_at=to_db(dt.datetime(2025, 5, 21, 7, 55, tzinfo=TZ)),
        )
    )
    session.commit()
    return {"east": figures(1), "west": figures(3), "april": figures(5)}


def test_summary_data(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """Names, rates, totals with change and year to date, and what needs a person."""
    config = make_config(tmp_path)
    with sessions() as session:
        data = build_month(session)
        summary = build_summary(session, config, "2025-05", NOW)

    context = summary.as_context()
    assert (context["on_time"], context["late"], context["missing"]) == (
        ["东街道"],
        ["西街道"],
        ["北街道"],
    )
    assert (context["reporting_rate"], context["on_time_rate"]) == ("67%", "33%")
    assert context["corrections"] == ["西街道（更正1次）"]
    premises = data["east"]["premises_inspected"] + data["west"]["premises_inspected"]
    assert summary.totals["premises_inspected"] == premises == 40
    label, value, change, ytd = context["figures"][0]
    assert (label, value, change, ytd) == ("排查单位场所（家）", 40, 40 - 50, 40 + 50 + 40)
    assert context["figures"][5][1] == 1.5 + 3.5
    assert context["warnings"] == ["东街道：拆除数大于发现数"]
    assert [p["sender"] for p in summary.problems] == ["stranger@example.com"]
    assert summary.last_poll == "2025-05-21 07:55"

    text = format_summary(summary)
    assert "未报（1）：北街道" in text and "逾期（1）：西街道" in text
    assert "排查单位场所（家）：40 / -10 / 130" in text
    assert "stranger@example.com" in text


def read_table(content: bytes) -> openpyxl.worksheet.worksheet.Worksheet:
    return openpyxl.load_workbook(BytesIO(content)).active


def test_summary_mail_and_its_table(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """The queued summary carries the district table; its 合计 row is the
    district totals, queued once."""
    config = make_config(tmp_path)
    with sessions() as session:
        build_month(session)
        notice = queue_summary(session, config, "2025-05", NOW)
        again = queue_summary(session, config, "2025-05", NOW)
        session.commit()
        expected = build_summary(session, config, "2025-05", NOW).totals

    assert notice is not None and again is None
    assert notice.key == "summary:-:2025-05:monthly"
    message = compose(notice, config)
    assert message["To"] == "coordinator@example.cn"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == (
        "月报：示例区 2025年5月 生命通道统计汇总（已报 2/3，按时 1，未报 1）"
    )
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename() == "示例区2025年5月生命通道统计汇总.xlsx"
    assert isinstance(attachment, EmailMessage)
    sheet = read_table(attachment.get_content())

    check_table(sheet, expected)


def check_table(sheet: openpyxl.worksheet.worksheet.Worksheet, expected: dict) -> None:
    merged = {str(r) for r in sheet.merged_cells.ranges}
    assert {"A3:A4", "B3:B4", "C3:D3", "E3:G3", "I3:J3", "K3:K4", "L3:L4"} <= merged
    assert sheet["A2"].value.startswith("报送单位：示例区")
    assert "报送时间：2025年5月21日" in sheet["A2"].value
    assert sheet["B3"].value.startswith("排查单位场所")

    lines = sheet.iter_rows(min_row=5, values_only=True)
    rows = {row[0]: row for row in lines if row[0]}
    assert set(rows) >= {"东街道", "西街道", "北街道", "合计"}
    assert "旧街道" not in rows
    assert rows["北街道"][1:12] == (None,) * 11 and rows["北街道"][12] == "未报送"
    assert "更正1次" in rows["西街道"][12]
    assert list(rows["合计"][1:12]) == list(expected.values())


@pytest.mark.soffice
def test_table_survives_libreoffice(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """LibreOffice opens the table and keeps the 合计 row (as .ods)."""
    soffice = shutil.which("soffice")
    if soffice is None:
        pytest.skip("LibreOffice (soffice) is not installed")
    config = make_config(tmp_path)
    with sessions() as session:
        build_month(session)
        summary = build_summary(session, config, "2025-05", NOW)
    path = tmp_path / "table.xlsx"
    write_district_table(summary, path)

    subprocess.run(
        [soffice, "--headless", "--convert-to", "ods"]
        + ["--outdir", str(tmp_path), str(path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    book = CalamineWorkbook.from_path(str(tmp_path / "table.ods"))
    rows = book.get_sheet_by_index(0).to_python()
    (total,) = [row for row in rows if row and row[0] == "合计"]
    assert total[1:12] == pytest.approx(list(summary.totals.values()))


def test_failed_notice_is_listed(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """A reminder refused with 550 is failed for good and in the summary."""
    server = {"host": smtp_server.host, "port": smtp_server.port}
    config = make_config(tmp_path, smtp=server)
    smtp_server.handler.refused = {"north@example.cn"}
    with sessions() as session:
        build_month(session)
        from notify.reminders import queue_due_reminders

        queued = queue_due_reminders(session, config, may(15))
        session.commit()

    sender = SmtpSender(config.smtp, backoff_seconds=0.01)
    result = deliver_pending(sessions, config, sender)

    assert result.failed == 1 and result.sent == len(queued) - 1
    with sessions() as session:
        summary = build_summary(session, config, "2025-05", NOW)
    (failed,) = summary.failed_notices
    assert failed["recipients"] == ["north@example.cn"] and "550" in failed["error"]
    assert "未能发出的通知" in format_summary(summary)


def test_summary_is_due_on_its_day(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Nothing before the 21st 08:00 district time; then once."""
    config = make_config(tmp_path)
    with sessions() as session:
        build_month(session)
        assert queue_due_summary(session, config, NOW - dt.timedelta(minutes=1)) is None
        assert queue_due_summary(session, config, NOW) is not None
        assert queue_due_summary(session, config, NOW + dt.timedelta(hours=1)) is None
        session.commit()
        assert notices.exists(session, "summary:-:2025-05:monthly")


def test_no_coordinator_no_summary(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Without notify.coordinator the summary is not queued."""
    config = make_config(tmp_path, notify={"coordinator": ""})
    with sessions() as session:
        build_month(session)
        assert queue_summary(session, config, "2025-05", NOW) is None


def test_totals_match_store(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    """The summary totals are the store's totals of the current reports."""
    config: Config = make_config(tmp_path)
    with sessions() as session:
        data = build_month(session)
        summary = build_summary(session, config, "2025-05", NOW)
    by_hand = {k: data["east"][k] + data["west"][k] for k in data["east"]}
    assert summary.totals == pytest.approx(by_hand)
    assert totals([]) == {k: 0 for k in by_hand}
