"""Telling the coordinator when the mailbox has not been read for hours.

One notice per stale spell: ``MailboxState.stale_notice_sent`` is set when
it is queued, and the poller clears it when a poll succeeds again. The key
names the last success, so the next spell gets a notice of its own.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from lifeline.config import Config
from notify.wording import local_text
from store import notices
from store.models import MailboxState, Notice, to_db

logger = logging.getLogger(__name__)


def queue_stale_poll_notice(
    session: Session, config: Config, now: dt.datetime
) -> list[Notice]:
    """Queue a notice for each mailbox folder last read successfully more
    than ``notify.stale_poll_hours`` before ``now`` (aware); the caller
    commits."""
    if not config.notify.coordinator:
        return []

    limit = dt.timedelta(hours=config.notify.stale_poll_hours)
    query = select(MailboxState).where(
        MailboxState.last_success_at < to_db(now) - limit,
        MailboxState.stale_notice_sent.is_(False),
    )
    queued = []
    for state in session.scalars(query):
        last = state.last_success_at or now
        notice = _queue_one(session, config, state, last, now)
        state.stale_notice_sent = True
        if notice is not None:
            queued.append(notice)
    return queued


def _queue_one(
    session: Session,
    config: Config,
    state: MailboxState,
    last: dt.datetime,
    now: dt.datetime,
) -> Notice | None:
    hours = (to_db(now) - last) / dt.timedelta(hours=1)
    logger.warning(
        "mailbox %s/%s: no successful poll for %.1f hours, telling the coordinator",
        state.account,
        state.folder,
        hours,
    )
    return notices.queue(
        session,
        kind="stale-poll",
        step=f"{state.account}/{state.folder}@{last:%Y%m%dT%H%M%S}",
        recipients=[config.notify.coordinator],
        context={
            "account": state.account,
            "folder": state.folder,
            "last_success": local_text(last, config.tz),
            "hours": int(hours),
            "threshold": config.notify.stale_poll_hours,
        },
    )
