"""The stale-poll notice: once per spell without a successful poll."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from make_notify_data import TZ, make_config
from sqlalchemy.orm import Session, sessionmaker

from notify.compose import compose
from notify.stale import queue_stale_poll_notice
from store.models import MailboxState, Notice, to_db

LAST = dt.datetime(2025, 5, 18, 10, 0, tzinfo=TZ)


def test_one_notice_per_stale_spell(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """Fresh: nothing; stale: one notice, not repeated; after a success and a
    new stale spell: a second one."""
    config = make_config(tmp_path)
    with sessions() as session:
        state = MailboxState(
            account="box@example.cn", folder="INBOX", last_success_at=to_db(LAST)
        )
        session.add(state)
        session.commit()

        def after(hours: int) -> list[Notice]:
            return queue_stale_poll_notice(
                session, config, LAST + dt.timedelta(hours=hours)
            )

        assert after(5) == []
        (notice,) = after(7)
        session.commit()
        assert after(9) == []

        message = compose(notice, config)
        assert message["To"] == "coordinator@example.cn"
        assert message["Subject"] == "警告：邮箱 box@example.cn 的 INBOX 已 7 小时未能收信"
        assert message["Auto-Submitted"] == "auto-generated"
        assert "2025-05-18 10:00" in message.get_body(("plain",)).get_content()

        # The poller records a success and clears the flag; later it stalls again.
        state.last_success_at = to_db(LAST + dt.timedelta(days=1))
        state.stale_notice_sent = False
        session.commit()
        (second,) = after(48)
        assert second.key != notice.key


def test_never_polled_and_no_coordinator(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    """No success yet means no measure; no coordinator means no notice."""
    with sessions() as session:
        session.add(MailboxState(account="a@example.cn", folder="INBOX"))
        session.add(
            MailboxState(
                account="b@example.cn", folder="INBOX", last_success_at=to_db(LAST)
            )
        )
        session.commit()
        later = LAST + dt.timedelta(days=1)
        quiet = make_config(tmp_path, notify={"coordinator": ""})
        assert queue_stale_poll_notice(session, quiet, later) == []
        found = queue_stale_poll_notice(session, make_config(tmp_path), later)
        assert [n.context["account"] for n in found] == ["b@example.cn"]
