"""Receipts and problem notices from queue to a real SMTP server (aiosmtpd)
or the outbox, through a real SQLite database."""

from __future__ import annotations

import datetime as dt
import email
from email import policy
from pathlib import Path
from typing import Any

import pytest
from make_notify_data import (
    TZ,
    add_mail,
    add_report,
    add_unit,
    figures,
    make_config,
)
from smtp_server import SmtpServer
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from lifeline.config import Config
from notify.compose import compose
from notify.deliver import deliver_pending
from notify.receipts import receipt_notices
from notify.send import OutboxSender, SmtpSender
from store import notices
from store.models import Notice, Problem
from store.notices import file_name_for

RECEIVED = dt.datetime(2025, 5, 18, 10, 2, tzinfo=TZ)


def queue_receipt(session: Session, *args: Any, **flags: Any) -> list[Notice]:
    """Queue a mail's answers one by one; those queued before are left out."""
    queued = [
        notices.queue_pending(session, pending)
        for pending in receipt_notices(session, *args, **flags)
    ]
    return [notice for notice in queued if notice is not None]


def smtp_config(tmp_path: Path, server: SmtpServer) -> Config:
    return make_config(tmp_path, smtp={"host": server.host, "port": server.port})


def sender_for(config: Config) -> SmtpSender:
    return SmtpSender(config.smtp, backoff_seconds=0.01)


def queue_city_receipt(session: Session, config: Config, late: bool = False) -> Notice:
    """城关街道 reports May with one warning; its receipt is queued."""
    unit = add_unit(session, "城关街道", "chengguan@example.cn")
    received = RECEIVED + dt.timedelta(days=4 if late else 0)
    report = add_report(
        session,
        unit,
        "2025-05",
        received,
        figures(1),
        on_time=not late,
        warnings=[{"code": "removed-exceeds-found", "message": "拆除数大于发现数"}],
    )
    (notice,) = queue_receipt(
        session,
        config,
        report.mail,
        [report],
        [],
        sender_is_known=True,
        auto_reply=False,
    )
    session.commit()
    return notice


def body_text(message: email.message.EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def test_receipt_reaches_the_sender(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """The receipt goes to the sender with subject, figures and warnings."""
    config = smtp_config(tmp_path, smtp_server)
    with sessions() as session:
        notice = queue_city_receipt(session, config)
        original_id = notice.context["in_reply_to"]

    result = deliver_pending(sessions, config, sender_for(config))

    assert (result.sent, result.failed, result.retried) == (1, 0, 0)
    (received,) = smtp_server.received
    assert received.recipients == ["chengguan@example.cn"]
    message = received.message
    assert message["Subject"] == "回执：城关街道 2025年5月 生命通道统计表已收到（按时）"
    assert message["From"] == "lifeline@example.cn"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == original_id
    assert message["Message-ID"] == notices.message_id_for(notice.key, "example.cn")
    text = body_text(message)
    assert "排查单位场所（家）：10" in text
    assert "违规设置铁栅栏、防盗网、广告牌·合计（平方米）：1.5" in text
    assert "拆除数大于发现数" in text
    html = message.get_body(("html",))
    assert html is not None
    assert '<td style="text-align: right;">10</td>' in html.get_content()

    with sessions() as session:
        row = session.get(Notice, notice.id)
        assert row is not None and row.status == "sent" and row.message_id


def test_late_receipt_says_late(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """A late report's receipt says 逾期 in its subject and body."""
    config = make_config(tmp_path)
    with sessions() as session:
        notice = queue_city_receipt(session, config, late=True)
    message = compose(notice, config)
    assert message["Subject"].endswith("已收到（逾期）")
    assert "记为逾期报送" in body_text(message)


def test_problem_notice_tells_what_to_fix(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """A mail without a table gets a problem notice naming file and remedy;
    an unreadable file also reaches the coordinator."""
    config = make_config(tmp_path)
    with sessions() as session:
        add_unit(session, "城关街道", "chengguan@example.cn")
        mail = add_mail(session, "chengguan@example.cn", RECEIVED, "5月报表")
        problem = Problem(
            mail_id=mail.id,
            code="unreadable-file",
            message="附件“统计表.xlsx”无法打开：文件已损坏",
            attachment="统计表.xlsx",
        )
        session.add(problem)
        session.flush()
        queued = queue_receipt(
            session, config, mail, [], [problem], sender_is_known=True, auto_reply=False
        )
        session.commit()

    assert [n.kind for n in queued] == ["problem", "attention"]
    to_sender, to_coordinator = (compose(n, config) for n in queued)
    assert to_sender["To"] == "chengguan@example.cn"
    assert to_sender["Auto-Submitted"] == "auto-replied"
    text = body_text(to_sender)
    assert "统计表.xlsx" in text and "文件已损坏" in text and ".xlsx/.xls" in text
    assert to_coordinator["To"] == "coordinator@example.cn"
    assert "unreadable-file" in to_coordinator["Subject"]
    assert "已自动回复发件人" in body_text(to_coordinator)


def test_unknown_sender_and_auto_replies(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Unknown senders get no receipt unless configured; auto-replies never."""
    config = make_config(tmp_path)
    willing = make_config(tmp_path, notify={"receipts_to_unknown_senders": True})
    with sessions() as session:
        unit = add_unit(session, "城关街道", "chengguan@example.cn")
        report = add_report(session, unit, "2025-05", RECEIVED, figures(1))
        report.mail.sender = "stranger@example.com"
        problem = Problem(
            mail_id=report.mail_id, code="unknown-sender", message="发件地址不在名单中"
        )
        session.add(problem)
        session.flush()

        bounce = queue_receipt(
            session, config, report.mail, [report], [problem],
            sender_is_known=False, auto_reply=True,
        )
        quiet = queue_receipt(
            session, config, report.mail, [report], [problem],
            sender_is_known=False, auto_reply=False,
        )
        again = queue_receipt(
            session, willing, report.mail, [report], [problem],
            sender_is_known=False, auto_reply=False,
        )

    # The bounce is not answered but its problem reaches the coordinator.
    assert [n.kind for n in bounce] == ["attention"]
    assert quiet == []
    assert "未回复发件人" in body_text(compose(bounce[0], config))
    # The attention notice exists already; only the receipt is new.
    assert [(n.kind, n.recipients) for n in again] == [
        ("receipt", ["stranger@example.com"])
    ]


def test_each_mail_gets_one_receipt(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """A correction gets its own receipt that says it replaced the first."""
    config = make_config(tmp_path)
    with sessions() as session:
        unit = add_unit(session, "城关街道", "chengguan@example.cn")
        keys = []
        for day, seed in ((10, 1), (12, 2)):
            received = RECEIVED.replace(day=day)
            report = add_report(session, unit, "2025-05", received, figures(seed))
            for _ in range(2):
                keys += [
                    n.key
                    for n in queue_receipt(
                        session, config, report.mail, [report], [],
                        sender_is_known=True, auto_reply=False,
                    )
                ]
        session.commit()
        second = session.scalars(select(Notice).where(Notice.key == keys[1])).one()

    assert len(keys) == 2 and keys[0] != keys[1]
    assert "本次为更正报送" in body_text(compose(second, config))


def test_temporary_failures_are_retried_then_delivered_once(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """Two 451 answers are retried within one run; one mail arrives."""
    config = smtp_config(tmp_path, smtp_server)
    smtp_server.handler.temporary_failures = 2
    with sessions() as session:
        queue_city_receipt(session, config)

    result = deliver_pending(sessions, config, sender_for(config))

    assert (result.sent, result.retried, result.failed) == (1, 0, 0)
    assert smtp_server.handler.attempts == 3
    assert len(smtp_server.received) == 1


def test_lasting_temporary_failure_goes_back_to_pending(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """451 on every attempt of a run: the notice waits for the next run."""
    config = smtp_config(tmp_path, smtp_server)
    smtp_server.handler.temporary_failures = 3
    with sessions() as session:
        notice = queue_city_receipt(session, config)

    first = deliver_pending(sessions, config, sender_for(config))
    second = deliver_pending(sessions, config, sender_for(config))

    assert (first.retried, second.sent) == (1, 1)
    assert len(smtp_server.received) == 1
    with sessions() as session:
        row = session.get(Notice, notice.id)
        assert row is not None and row.attempts == 2 and "451" in (row.last_error or "")


def test_refused_recipient_fails_for_good_and_others_go_on(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """A 550 recipient fails its notice at once; the next notice is sent."""
    config = smtp_config(tmp_path, smtp_server)
    smtp_server.handler.refused = {"gone@example.cn"}
    with sessions() as session:
        for address, step in (("gone@example.cn", "a"), ("ok@example.cn", "b")):
            notices.queue(
                session, kind="stale-poll", step=step, recipients=[address],
                context=stale_context(),
            )
        session.commit()

    result = deliver_pending(sessions, config, sender_for(config))

    assert (result.sent, result.failed, result.retried) == (1, 1, 0)
    assert [r.recipients for r in smtp_server.received] == [["ok@example.cn"]]
    with sessions() as session:
        failed = session.scalars(select(Notice).where(Notice.status == "failed")).one()
        assert failed.recipients == ["gone@example.cn"]
        assert "550" in (failed.last_error or "")


def stale_context() -> dict[str, object]:
    return {
        "account": "box@example.cn",
        "folder": "INBOX",
        "last_success": "2025-05-18 10:00",
        "hours": 7,
        "threshold": 6.0,
    }


def test_restart_between_queue_and_send_delivers_once(
    tmp_path: Path, store_url: str, smtp_server: SmtpServer
) -> None:
    """Queued by one process, sent by the next: exactly one mail, and a
    further run sends nothing."""
    from store.db import open_engine, session_factory

    config = smtp_config(tmp_path, smtp_server)
    engine = open_engine(store_url)
    with session_factory(engine)() as session:
        queue_city_receipt(session, config)
    engine.dispose()

    engine = open_engine(store_url)
    restarted = session_factory(engine)
    runs = [deliver_pending(restarted, config, sender_for(config)) for _ in range(2)]
    engine.dispose()

    assert [r.sent for r in runs] == [1, 0]
    assert len(smtp_server.received) == 1


def test_notice_left_sending_is_resent_with_the_same_message_id(
    tmp_path: Path, sessions: sessionmaker[Session], smtp_server: SmtpServer
) -> None:
    """Killed after SMTP accepted but before the commit: at least once, the
    resend carries the same Message-ID so clients show it once."""
    config = smtp_config(tmp_path, smtp_server)
    with sessions() as session:
        notice = queue_city_receipt(session, config)
        (claimed,) = notices.claim(session, 1)
        session.commit()
    SmtpSender(config.smtp).send(claimed, compose(claimed, config))  # then "killed"

    fresh = deliver_pending(sessions, config, sender_for(config))
    with sessions() as session:
        row = session.get(Notice, notice.id)
        assert row is not None
        row.claimed_at -= dt.timedelta(hours=1)  # type: ignore[operator]
        session.commit()
    later = deliver_pending(sessions, config, sender_for(config))

    assert (fresh.sent, later.sent) == (0, 1)
    first, second = smtp_server.received
    assert first.message["Message-ID"] == second.message["Message-ID"]


def test_outbox_is_exactly_once(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """The outbox file is named by the key: a resend overwrites it."""
    outbox = tmp_path / "outbox"
    config = make_config(tmp_path, notify={"outbox_dir": str(outbox)})
    with sessions() as session:
        notice = queue_city_receipt(session, config)
        (claimed,) = notices.claim(session, 1)
        session.commit()
    OutboxSender(outbox).send(claimed, compose(claimed, config))
    with sessions() as session:
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        notices.recover_stale(session, dt.timedelta(0), soon)
        session.commit()

    result = deliver_pending(sessions, config)

    assert result.sent == 1
    files = list(outbox.iterdir())
    assert [f.name for f in files] == [file_name_for(notice.key)]
    message = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert message["To"] == "chengguan@example.cn"
    assert "城关街道" in message["Subject"]


def test_broken_template_fails_only_that_notice(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """An override template that cannot render fails its notice for good."""
    override = tmp_path / "templates"
    override.mkdir()
    (override / "unit-receipt.subject.j2").write_text("{{ no_such_value }}", "utf-8")
    outbox = tmp_path / "outbox"
    config = make_config(
        tmp_path, notify={"outbox_dir": str(outbox), "templates_dir": str(override)}
    )
    with sessions() as session:
        queue_city_receipt(session, config)
        notices.queue(
            session, kind="stale-poll", step="x", recipients=["c@example.cn"],
            context=stale_context(),
        )
        session.commit()

    result = deliver_pending(sessions, config)

    assert (result.sent, result.failed) == (1, 1)
    assert len(list(outbox.iterdir())) == 1


def test_override_template_is_used(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """A subject template in notify.templates_dir replaces the package's."""
    override = tmp_path / "templates"
    override.mkdir()
    (override / "unit-receipt.subject.j2").write_text("已收到 {{ unit }}", "utf-8")
    config = make_config(tmp_path, notify={"templates_dir": str(override)})
    with sessions() as session:
        notice = queue_city_receipt(session, config)
    assert compose(notice, config)["Subject"] == "已收到 城关街道"


@pytest.mark.parametrize("missing", ["smtp"])
def test_nowhere_to_send_is_a_config_error(tmp_path: Path, missing: str) -> None:
    """Without smtp.host and outbox_dir, delivery refuses to start."""
    from lifeline.errors import ConfigError
    from notify.deliver import sender_for as choose

    with pytest.raises(ConfigError, match="smtp.host"):
        choose(make_config(tmp_path))
