"""The ingest pipeline's rules for units, months and failures, on real
.xlsx files and a real SQLite database."""

from __future__ import annotations

import datetime as dt
import io
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import openpyxl
import pytest
from make_tables import ROW_A, ROW_B, TITLE, write_table
from sqlalchemy import func, select

import ingest.pipeline
from ingest.pipeline import Incoming, Ingest
from lifeline import config as config_module
from store import db, notices, rawmail, roster
from store.models import Mail, Notice, Problem, Report

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
XLSX = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")


def table(unit: str | None, row: list[object] = ROW_A, title: str = TITLE) -> bytes:
    workbook = openpyxl.Workbook()
    lines = [title, f"报送单位：{unit or ''}    报送时间：2025年5月12日"]
    write_table(workbook.active, 1, 1, [row], lines=lines)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def mail(
    sender: str,
    files: dict[str, bytes],
    *,
    subject: str = "5月份统计表",
    received: dt.datetime = dt.datetime(2025, 5, 12, 9, 0, tzinfo=SHANGHAI),
    display: str = "",
    message_id: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = f"{display} <{sender}>" if display else sender
    message["To"] = "report-inbox@example.cn"
    message["Subject"] = subject
    message["Date"] = format_datetime(received)
    message["Message-ID"] = message_id or f"<{abs(hash((sender, subject, received, tuple(files))))}@example.cn>"
    message.set_content("附件是统计表，请查收。")
    for name, content in files.items():
        message.add_attachment(content, *XLSX, filename=name)
    stamp = f"from client by mx.example.cn; {format_datetime(received)}"
    return f"Received: {stamp}\r\n".encode() + message.as_bytes()


@pytest.fixture
def setup(tmp_path: Path, shared_dir: Path, database_url: str):  # type: ignore[no-untyped-def]
    config = config_module.from_dict(
        {"store": {"data_dir": str(tmp_path / "data"), "url": database_url}}
    )
    engine = db.open_engine(config.database_url)
    sessions = db.session_factory(engine)
    with sessions() as session:
        roster.sync(session, roster.read_file(shared_dir / "samples" / "roster.csv"))
        session.commit()
        index = roster.load(session)
    yield config, sessions, Ingest(config, index)
    engine.dispose()


def take(setup, raw: bytes, label: str = "m.eml"):  # type: ignore[no-untyped-def]
    _, sessions, pipeline = setup
    with sessions() as session:
        outcome = pipeline.take(session, Incoming(raw=raw, label=label))
        session.commit()
        return outcome.outcome, [
            (f.report.unit.name, f.report.period, [w["code"] for w in f.report.warnings])
            for f in outcome.filed
        ], sorted(p.code for p in outcome.problems)


def test_table_unit_wins_over_sender_with_a_warning(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("cgjd_2019@example.com", {"南湖镇5月.xlsx": table("南湖镇人民政府")})

    outcome, reports, problems = take(setup, raw)

    assert outcome == "stored"
    assert reports == [("南湖镇", "2025-05", ["unit-sender-mismatch"])]
    assert problems == []


def test_sender_address_names_the_unit_when_the_table_does_not(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("dcjd@example.cn", {"统计表.xlsx": table(None)})

    assert take(setup, raw)[1] == [("东城街道", "2025-05", [])]


def test_display_name_is_the_last_resort(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("someone@example.org", {"统计表.xlsx": table(None)}, display="青石乡安监站")

    outcome, reports, problems = take(setup, raw)

    assert reports == [("青石乡", "2025-05", [])]
    assert problems == ["unknown-sender"]


def test_nobody_can_tell_the_unit_so_the_mail_is_held(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("someone@example.org", {"统计表.xlsx": table(None)})

    outcome, reports, problems = take(setup, raw)

    assert outcome == "held"
    assert reports == []
    assert problems == ["unit-unknown", "unknown-sender"]
    config, sessions, _ = setup
    with sessions() as session:
        kept = session.scalar(select(Mail))
        assert kept.outcome == "held"
        assert rawmail.load(config.data_dir, kept.raw_path) == raw


def test_two_tables_for_two_units_are_two_reports(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail(
        "nanhu_gov@example.cn",
        {"南湖镇.xlsx": table("南湖镇"), "北山镇.xlsx": table("北山镇", ROW_B)},
    )

    _, reports, _ = take(setup, raw)

    assert sorted(r[0] for r in reports) == ["北山镇", "南湖镇"]


def test_later_received_wins_whatever_the_processing_order(setup) -> None:  # type: ignore[no-untyped-def]
    early = dt.datetime(2025, 5, 10, 9, 0, tzinfo=SHANGHAI)
    late = dt.datetime(2025, 5, 11, 9, 0, tzinfo=SHANGHAI)
    newer = mail("zjj@example.cn", {"a.xlsx": table("住建局", ROW_B)}, received=late)
    older = mail("zjj@example.cn", {"a.xlsx": table("住建局", ROW_A)}, received=early)

    take(setup, newer, "newer.eml")
    take(setup, older, "older.eml")

    _, sessions, _ = setup
    with sessions() as session:
        versions = session.scalars(select(Report).order_by(Report.id)).all()
        current = [(v.mail.source, v.values["premises_inspected"]) for v in versions if v.current]
    assert len(versions) == 2
    assert current == [("newer.eml", ROW_B[0])]


def test_title_month_beats_subject_with_a_warning(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail(
        "dcjd@example.cn",
        {"统计表.xlsx": table("东城街道", title="东城街道4月份打通消防“生命通道”行动推进统计表")},
        subject="东城街道5月份统计表",
    )

    assert take(setup, raw)[1] == [("东城街道", "2025-04", ["period-mismatch"])]


def fail_reading(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    """Make reading the attachment named ``bad`` fail, as a bug would."""
    real = ingest.pipeline.read_tables

    def explode_on_bad(name: str, content: bytes):  # type: ignore[no-untyped-def]
        if name == bad:
            raise RuntimeError("a bug in a reader")
        return real(name, content)

    monkeypatch.setattr(ingest.pipeline, "read_tables", explode_on_bad)


def test_one_failing_mail_is_kept_and_the_next_goes_on(
    setup, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    bad = mail("dcjd@example.cn", {"坏.xlsx": table("东城街道")}, message_id="<bad@x>")
    good = mail("dcjd@example.cn", {"好.xlsx": table("东城街道")}, message_id="<good@x>")
    fail_reading(monkeypatch, "坏.xlsx")

    first = take(setup, bad, "bad.eml")
    second = take(setup, good, "good.eml")

    assert first[0] == "failed" and first[2] == ["processing-error"]
    assert second[0] == "stored"
    _, sessions, _ = setup
    with sessions() as session:
        assert session.scalar(select(Mail).where(Mail.source == "bad.eml")).outcome == "failed"
        assert [p.code for p in session.scalars(select(Problem))] == ["processing-error"]


def test_unreadable_attachment_is_a_problem_naming_the_file(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("dcjd@example.cn", {"统计表.xlsx": table("东城街道")[:3000]})

    outcome, reports, problems = take(setup, raw)

    assert outcome == "problem" and reports == []
    assert problems == ["unreadable-file"]


def test_blank_template_never_replaces_a_report(setup, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    blank = (shared_dir / "samples" / "templates" / "template_openpyxl.xlsx").read_bytes()
    early = dt.datetime(2025, 5, 10, 9, 0, tzinfo=SHANGHAI)
    take(setup, mail("dcjd@example.cn", {"a.xlsx": table("东城街道")}, received=early))

    outcome, reports, problems = take(setup, mail("dcjd@example.cn", {"空表.xlsx": blank}))

    assert (outcome, reports, problems) == ("problem", [], ["empty-table"])
    _, sessions, _ = setup
    with sessions() as session:
        (current,) = session.scalars(select(Report).where(Report.current)).all()
        assert current.values["premises_inspected"] == ROW_A[0]


def test_a_table_with_unreadable_cells_is_not_stored(setup) -> None:  # type: ignore[no-untyped-def]
    row = ["约186家", *ROW_A[1:]]

    outcome, reports, problems = take(setup, mail("dcjd@example.cn", {"a.xlsx": table("东城街道", row)}))

    assert (outcome, reports, problems) == ("problem", [], ["not-a-number"])


def test_last_months_sheet_beside_this_months_is_not_filed(setup) -> None:  # type: ignore[no-untyped-def]
    workbook = openpyxl.Workbook()
    june, may = workbook.active, workbook.create_sheet("5月")
    june.title = "6月"
    write_table(june, 1, 1, [ROW_B], lines=[TITLE, "报送单位：东城街道  报送时间：2025年6月12日"])
    write_table(may, 1, 1, [ROW_A], lines=[TITLE, "报送单位：东城街道  报送时间：2025年5月15日"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    received = dt.datetime(2025, 6, 12, 9, 0, tzinfo=SHANGHAI)

    _, reports, _ = take(
        setup,
        mail("dcjd@example.cn", {"统计表.xlsx": buffer.getvalue()}, subject="统计表", received=received),
    )

    assert reports == [("东城街道", "2025-06", ["sheet-ignored"])]


def test_an_empty_file_is_unreadable_not_missing(setup) -> None:  # type: ignore[no-untyped-def]
    outcome, _, problems = take(setup, mail("dcjd@example.cn", {"统计表.xlsx": b""}))

    assert (outcome, problems) == ("problem", ["unreadable-file"])


def test_unknown_unit_name_is_flagged(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("cgjd_2019@example.com", {"a.xlsx": table("城关社区居委会")})

    assert take(setup, raw)[1] == [("城关街道", "2025-05", ["unknown-unit-name"])]


def test_a_late_correction_keeps_the_unit_on_time(setup) -> None:  # type: ignore[no-untyped-def]
    from store.reports import overview

    first = dt.datetime(2025, 5, 12, 9, 0, tzinfo=SHANGHAI)
    correction = dt.datetime(2025, 5, 25, 9, 0, tzinfo=SHANGHAI)
    take(setup, mail("dcjd@example.cn", {"a.xlsx": table("东城街道", ROW_A)}, received=first))
    take(setup, mail("dcjd@example.cn", {"a.xlsx": table("东城街道", ROW_B)}, received=correction))

    _, sessions, _ = setup
    with sessions() as session:
        status = next(u for u in overview(session, "2025-05").units if u.unit.name == "东城街道")
        assert (status.status, status.versions) == ("on-time", 2)
        assert status.report is not None and not status.report.on_time
        assert status.report.values["premises_inspected"] == ROW_B[0]


def test_two_different_tables_for_one_unit_in_one_mail_are_refused(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail(
        "dcjd@example.cn",
        {"统计表.xlsx": table("东城街道", ROW_A), "统计表(改).xlsx": table("东城街道", ROW_B)},
    )

    outcome, reports, problems = take(setup, raw)

    assert (outcome, reports, problems) == ("problem", [], ["conflicting-tables"])


def test_the_same_table_twice_in_one_mail_is_one_report(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("dcjd@example.cn", {"a.xlsx": table("东城街道"), "b.xlsx": table("东城街道")})

    assert take(setup, raw)[1] == [("东城街道", "2025-05", [])]


def test_another_mail_reusing_a_message_id_is_still_taken(setup) -> None:  # type: ignore[no-untyped-def]
    first = mail("dcjd@example.cn", {"a.xlsx": table("东城街道", ROW_A)}, message_id="<same@x>")
    other = mail("nanhu_gov@example.cn", {"b.xlsx": table("南湖镇", ROW_B)},
                 subject="南湖镇5月份统计表", message_id="<same@x>")

    take(setup, first, "first.eml")
    outcome, reports, _ = take(setup, other, "other.eml")

    assert (outcome, reports) == ("stored", [("南湖镇", "2025-05", [])])


def test_the_same_mail_with_rewritten_line_ends_is_a_duplicate(setup) -> None:  # type: ignore[no-untyped-def]
    raw = mail("dcjd@example.cn", {"a.xlsx": table("东城街道")}, message_id="<crlf@x>")
    rewritten = raw.replace(b"\r\n", b"\n")

    take(setup, raw, "imported.eml")

    assert take(setup, rewritten, "fetched")[0] == "duplicate"


def test_a_copy_of_the_second_mail_sharing_a_message_id_is_a_duplicate(setup) -> None:  # type: ignore[no-untyped-def]
    """Two mails share a Message-ID; the second comes again under other
    bytes (fetched, then imported from a file with other line ends): it is
    recognised as the second one, not taken again."""
    first = mail("dcjd@example.cn", {"a.xlsx": table("东城街道", ROW_A)}, message_id="<same@x>")
    second = mail("dcjd@example.cn", {"b.xlsx": table("东城街道", ROW_B)},
                  subject="更正：5月份统计表", message_id="<same@x>")

    take(setup, first, "first.eml")
    take(setup, second, "second.eml")

    assert take(setup, second.replace(b"\r\n", b"\n"), "second again")[0] == "duplicate"


def good_bad_good() -> dict[str, bytes]:
    """Three mails of three units; the middle one's attachment is 坏.xlsx."""
    return {
        f"{name}.eml": mail(sender, {f"{name}.xlsx": table(unit)}, message_id=f"<{sender}@x>")
        for name, sender, unit in [
            ("好1", "dcjd@example.cn", "东城街道"),
            ("坏", "cgjd_2019@example.com", "城关街道"),
            ("好2", "nanhu_gov@example.cn", "南湖镇"),
        ]
    }


def take_all(setup, raws: dict[str, bytes]):  # type: ignore[no-untyped-def]
    """Take several mails as one batch, as a poll does."""
    _, sessions, pipeline = setup
    with sessions() as session:
        outcomes = pipeline.take_all(
            session, [Incoming(raw=raw, label=label) for label, raw in raws.items()]
        )
        session.commit()
        return [o.outcome for o in outcomes]


def test_a_mail_failing_to_store_in_a_batch_fails_alone(
    setup, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    real = ingest.pipeline.report_store.supersede

    def explode_on_bad(report, stored):  # type: ignore[no-untyped-def]
        if report.attachment == "坏.xlsx":
            raise RuntimeError("a bug in storing")
        return real(report, stored)

    monkeypatch.setattr(ingest.pipeline.report_store, "supersede", explode_on_bad)
    raws = good_bad_good()

    assert take_all(setup, raws) == ["stored", "failed", "stored"]

    _, sessions, _ = setup
    with sessions() as session:
        stored = session.scalars(select(Report).order_by(Report.id))
        assert [r.unit.name for r in stored] == ["东城街道", "南湖镇"]
        failed = session.scalar(select(Mail).where(Mail.source == "坏.eml"))
        assert failed.outcome == "failed"
        assert [p.code for p in failed.problems] == ["processing-error"]
        assert session.scalar(select(func.count()).select_from(Mail)) == 3


@pytest.mark.parametrize("order", ["oldest first", "newest first"])
def test_two_versions_in_one_batch_the_later_received_is_current(setup, order: str) -> None:  # type: ignore[no-untyped-def]
    early = dt.datetime(2025, 5, 12, 9, 0, tzinfo=SHANGHAI)
    raws = {
        label: mail("dcjd@example.cn", {f"{label}.xlsx": table("东城街道", row)},
                    received=received, message_id=f"<{label}@x>")
        for label, row, received in [
            ("early", ROW_A, early), ("late", ROW_B, early + dt.timedelta(hours=3)),
        ]
    }
    if order == "newest first":
        raws = dict(reversed(list(raws.items())))

    assert take_all(setup, raws) == ["stored", "stored"]

    _, sessions, _ = setup
    with sessions() as session:
        versions = session.scalars(select(Report).order_by(Report.received_at))
        assert [(r.attachment, r.current) for r in versions] == [
            ("early.xlsx", False), ("late.xlsx", True),
        ]


def test_a_batch_rolled_back_after_its_rows_were_written_is_stored_again(setup) -> None:  # type: ignore[no-untyped-def]
    """The chunk's rows are written, then answering one mail fails: the
    savepoint takes every row back and the mails are stored one by one,
    reusing the ids the rollback freed without clashing with the objects
    of the first attempt."""
    config, sessions, pipeline = setup

    def answer(session, outcome):  # type: ignore[no-untyped-def]
        if not outcome.filed:
            return []
        if outcome.filed[0].report.attachment == "坏.xlsx":
            raise RuntimeError("a bug in answering")
        return [notices.Pending("receipt", f"mail-{outcome.mail.id}", ["x@example.cn"], {})]

    pipeline.after_mail = answer
    raws = good_bad_good()

    assert take_all(setup, raws) == ["stored", "failed", "stored"]

    with sessions() as session:
        mails = {m.source: m for m in session.scalars(select(Mail))}
        assert sorted(mails) == ["坏.eml", "好1.eml", "好2.eml"]
        assert [r.attachment for r in mails["好2.eml"].reports] == ["好2.xlsx"]
        assert mails["坏.eml"].reports == []
        steps = sorted(n.key for n in session.scalars(select(Notice)))
        assert steps == sorted(
            f"receipt:-:-:mail-{mails[name].id}" for name in ("好1.eml", "好2.eml")
        )


def test_a_mail_in_two_batches_prepared_together_is_stored_once(setup) -> None:  # type: ignore[no-untyped-def]
    """A poll prepares the next batch before it stores this one; the same
    mail in both must be stored once, its raw file whole, no temporary
    file left behind."""
    config, sessions, pipeline = setup
    raw = mail("dcjd@example.cn", {"a.xlsx": table("东城街道")}, message_id="<same@x>")
    other = mail("nanhu_gov@example.cn", {"b.xlsx": table("南湖镇")}, message_id="<other@x>")

    with sessions() as session:
        first = pipeline.prepare(session, [Incoming(raw=raw, label="1")])
        second = pipeline.prepare(
            session, [Incoming(raw=other, label="2"), Incoming(raw=raw, label="3")]
        )
        assert [o.outcome for o in pipeline.finish(session, first)] == ["stored"]
        assert [o.outcome for o in pipeline.finish(session, second)] == ["stored", "duplicate"]
        session.commit()

    files = sorted(p.name for p in (config.data_dir / "mail").rglob("*") if p.is_file())
    assert files == sorted(f"{rawmail.digest(r)}.eml" for r in (raw, other))
    assert (config.data_dir / rawmail.relative_path(rawmail.digest(raw))).read_bytes() == raw


def test_a_prepared_batch_discarded_leaves_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    config, sessions, pipeline = setup
    raw = mail("dcjd@example.cn", {"a.xlsx": table("东城街道")}, message_id="<gone@x>")

    with sessions() as session:
        pipeline.prepare(session, [Incoming(raw=raw, label="1")]).discard()
        session.commit()
        assert session.scalar(select(func.count()).select_from(Mail)) == 0

    assert [p for p in (config.data_dir / "mail").rglob("*") if p.is_file()] == []


def test_a_mail_that_cannot_be_read_fails_alone_in_its_batch(
    setup, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    fail_reading(monkeypatch, "坏.xlsx")
    raws = good_bad_good()

    assert take_all(setup, raws) == ["stored", "failed", "stored"]
