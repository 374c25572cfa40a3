"""The outgoing notice queue: queue once, claim, record the outcome.

A notice is a row before it is a mail. Its ``key`` is unique, so queueing
the same notice twice (a restart, a second instance, a reminder run called
twice) does nothing the second time.

Delivery policy after a crash. A notice is claimed (``pending`` →
``sending``) and committed before it is handed to SMTP, and marked ``sent``
in a second commit afterwards. A process killed between the two leaves it in
``sending``; ``recover_stale`` puts such notices back to ``pending`` once
they are older than any send could take. The notice is then sent again:
delivery is *at least once*. The duplicate window is only the moment
between the SMTP server accepting the message and our commit, and the
resent mail carries the same Message-ID (``message_id_for``), so mail
clients that drop duplicates show it once. The outbox writes a file named
after the key (``file_name_for``), so a resend overwrites the same file:
there delivery is exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from store.db import upsert_insert
from store.models import Notice, to_db, utcnow

logger = logging.getLogger(__name__)

# A temporary failure (4xx, connection lost) is tried again on later
# delivery runs; after this many failed runs the notice is given up.
MAX_ATTEMPTS = 5


def default_key(
    kind: str, step: str, unit_id: int | None, period: str | None
) -> str:
    return f"{kind}:{unit_id or '-'}:{period or '-'}:{step}"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def message_id_for(key: str, domain: str = "lifeline") -> str:
    """The Message-ID of a notice: the same on every resend."""
    return f"<notice-{key_hash(key)}@{domain}>"


def file_name_for(key: str) -> str:
    """The outbox file of a notice: the same on every resend."""
    return f"notice-{key_hash(key)}.eml"


@dataclass
class Pending:
    """A notice to queue: a row not yet written."""

    kind: str
    step: str
    recipients: list[str]
    context: dict[str, Any]
    unit_id: int | None = None
    period: str | None = None
    mail_id: int | None = None
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or default_key(self.kind, self.step, self.unit_id, self.period)

    def row(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "kind": self.kind,
            "unit_id": self.unit_id,
            "period": self.period,
            "mail_id": self.mail_id,
            "recipients": list(self.recipients),
            "context": self.context,
        }


def queue(
    session: Session,
    *,
    kind: str,
    step: str,
    recipients: list[str],
    context: dict[str, Any],
    unit_id: int | None = None,
    period: str | None = None,
    mail_id: int | None = None,
    key: str | None = None,
) -> Notice | None:
    """Add a pending notice, or nothing if one with the same key exists."""
    pending = Pending(
        kind, step, recipients, context, unit_id, period, mail_id, key or ""
    )
    return queue_pending(session, pending)


def queue_pending(session: Session, pending: Pending) -> Notice | None:
    """Add ``pending`` and return its row, or None if its key exists.

    ``INSERT … ON CONFLICT DO NOTHING`` rather than a SAVEPOINT: it is
    atomic on both SQLite and PostgreSQL under concurrency, and pysqlite's
    SAVEPOINT can commit the caller's outer transaction early (it emits no
    BEGIN of its own), which would break the promise that a notice is
    queued in the same transaction as its cause.
    """
    insert = upsert_insert(session)
    statement = (
        insert(Notice)
        .values(**pending.row())
        .on_conflict_do_nothing()
        .returning(Notice.id)
    )
    notice_id = session.execute(statement).scalar()
    if notice_id is None:
        logger.debug("notice %s: already queued", pending.key)
        return None

    logger.info("notice %s: queued for %s", pending.key, ", ".join(pending.recipients))
    return session.get(Notice, notice_id)


def queue_all(session: Session, pending: list[Pending]) -> None:
    """Add many notices in one statement; those whose key exists are
    left out, as ``queue_pending`` does. For a backlog: one statement
    instead of two per notice, and no rows loaded back. Nothing is logged
    (see ``log_queued``)."""
    if not pending:
        return
    insert = upsert_insert(session)
    # The table, not the mapped class: the ORM's bulk INSERT does per-row
    # work of its own.
    session.execute(
        insert(Notice.__table__).on_conflict_do_nothing(), [p.row() for p in pending]
    )


def log_queued(pending: Pending) -> None:
    """The log line of a notice queued by ``queue_all``, for the caller to
    write after its own line about the notice's cause."""
    logger.info("notice %s: queued for %s", pending.key, ", ".join(pending.recipients))


def exists(session: Session, key: str) -> bool:
    query = select(func.count()).select_from(Notice).where(Notice.key == key)
    return bool(session.scalar(query))


def claim(session: Session, limit: int) -> list[Notice]:
    """Take up to ``limit`` pending notices for sending, oldest first.

    The caller commits before sending. On PostgreSQL the chosen rows are
    locked with SKIP LOCKED first, so a second instance claims other
    notices instead of waiting for or taking the same ones. (Put as a
    subquery into the UPDATE, PostgreSQL may re-run the LIMIT and claim
    more.) SQLite has one writer at a time, so there the choice is a
    subquery of the UPDATE and the statement is atomic.
    """
    chosen = (
        select(Notice.id)
        .where(Notice.status == "pending")
        .order_by(Notice.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        ids: Any = list(session.scalars(chosen.with_for_update(skip_locked=True)))
    else:
        ids = chosen.scalar_subquery()

    claimed = session.scalars(
        update(Notice)
        .where(Notice.id.in_(ids), Notice.status == "pending")
        .values(status="sending", claimed_at=utcnow())
        .returning(Notice.id)
    ).all()
    if not claimed:
        return []

    notices = session.scalars(
        select(Notice)
        .where(Notice.id.in_(claimed))
        .order_by(Notice.id)
        .execution_options(populate_existing=True)
    )
    return list(notices)


def mark_sent(session: Session, notice: Notice, message_id: str) -> Notice:
    row = _row(session, notice)
    row.status = "sent"
    row.sent_at = utcnow()
    row.message_id = message_id
    row.attempts += 1
    return row


def mark_failed(
    session: Session, notice: Notice, error: str, permanent: bool
) -> Notice:
    """Record a failed send: for good, or back to pending for a later run
    until ``MAX_ATTEMPTS`` runs have failed."""
    row = _row(session, notice)
    row.attempts += 1
    row.last_error = error
    given_up = permanent or row.attempts >= MAX_ATTEMPTS
    row.status = "failed" if given_up else "pending"
    row.claimed_at = None
    return row


def release(session: Session, claimed: list[Notice]) -> None:
    """Put claimed notices back to pending without counting an attempt:
    the server was unreachable, nothing is wrong with the notices."""
    ids = [notice.id for notice in claimed]
    session.execute(
        update(Notice)
        .where(Notice.id.in_(ids), Notice.status == "sending")
        .values(status="pending", claimed_at=None)
    )


def _row(session: Session, notice: Notice) -> Notice:
    row = session.get(Notice, notice.id, populate_existing=True)
    if row is None:
        raise LookupError(f"notice {notice.key} is no longer in the store")
    return row


def recover_stale(
    session: Session, older_than: dt.timedelta, now: dt.datetime | None = None
) -> int:
    """Put notices stuck in ``sending`` for longer than ``older_than`` back
    to pending (see the module docstring for why this is safe enough)."""
    moment = to_db(now) if now else utcnow()
    result = session.execute(
        update(Notice)
        .where(Notice.status == "sending", Notice.claimed_at < moment - older_than)
        .values(status="pending", claimed_at=None)
    )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        logger.warning(
            "%d notice(s) were left in sending by a stopped run; they will "
            "be sent again with the same Message-ID",
            count,
        )
    return count


def failed_since(session: Session, since: dt.datetime) -> list[Notice]:
    """Notices given up on, queued at or after ``since`` (aware)."""
    query = (
        select(Notice)
        .where(Notice.status == "failed", Notice.created_at >= to_db(since))
        .order_by(Notice.id)
    )
    return list(session.scalars(query))
