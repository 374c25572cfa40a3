"""One pass over the campaign mailbox: take every mail not yet taken.

Progress is kept per (account, folder) as UIDVALIDITY and the last UID
taken, committed with the mails themselves, so a crash or restart repeats
at most the uncommitted batch, and that batch is recognised by its
content hash. A new UIDVALIDITY makes every UID meaningless: the folder's
Message-IDs are read again and only unknown mails are fetched.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ingest.mailbox import Mailbox
from ingest.pipeline import Incoming, Ingest, Location, Prepared
from store.models import Mail, MailboxState, to_db

logger = logging.getLogger(__name__)

SPLIT_FROM = 50


@dataclass
class PollResult:
    """Counts only: a backlog's outcomes, kept, would hold every mail's
    reports and attachments in memory until the poll ends."""

    new: int = 0
    taken: int = 0
    duplicates: int = 0


def poll_once(
    sessions: sessionmaker[Session],
    mailbox: Mailbox,
    ingest: Callable[[Session], Ingest],
    *,
    commit_every: int = 200,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    should_stop: Callable[[], bool] = lambda: False,
) -> PollResult:
    """Fetch and take every new mail; returns what was done.

    ``should_stop`` is asked after each commit (every ``commit_every``
    mails), when no write is pending: when it says yes, the rest is left
    for the next poll.
    """
    result = PollResult()
    with sessions() as session:
        state = _state(session, mailbox)
        uids, highest = _new_uids(session, mailbox, state)
        result.new = len(uids)
        complete = True
        if uids:
            logger.info("mailbox %s: %d new mail(s)", _where(mailbox), len(uids))
            taker = ingest(session)
            try:
                complete = _take(
                    session, mailbox, state, uids, taker, result, commit_every,
                    should_stop,
                )
            finally:
                taker.close()

        if complete:
            state.last_uid = max(state.last_uid or 0, highest)

        state.last_success_at = to_db(now())
        state.stale_notice_sent = False
        session.commit()
    return result


def _state(session: Session, mailbox: Mailbox) -> MailboxState:
    state = session.get(MailboxState, (mailbox.account, mailbox.settings.folder))
    if state is None:
        state = MailboxState(account=mailbox.account, folder=mailbox.settings.folder)
        session.add(state)
    return state


def _new_uids(
    session: Session, mailbox: Mailbox, state: MailboxState
) -> tuple[list[int], int]:
    """The UIDs to fetch, and the highest UID the folder holds."""
    if state.uidvalidity == mailbox.uidvalidity:
        uids = mailbox.uids_after(state.last_uid or 0)
        return uids, max(uids, default=0)

    if state.uidvalidity:
        logger.warning(
            "mailbox %s: UIDVALIDITY changed from %d to %d; matching the "
            "folder's mails by Message-ID so none is taken twice",
            _where(mailbox), state.uidvalidity, mailbox.uidvalidity,
        )
    state.uidvalidity = mailbox.uidvalidity
    state.last_uid = 0
    uids = mailbox.all_uids()
    if not uids or session.scalar(select(Mail.id).limit(1)) is None:
        return uids, max(uids, default=0)
    return _unknown(session, mailbox, uids), max(uids)


def _unknown(session: Session, mailbox: Mailbox, uids: list[int]) -> list[int]:
    """The UIDs whose Message-ID is not stored yet (or that have none:
    those are fetched and recognised by their content hash)."""
    ids = mailbox.message_ids(uids)
    known = set(
        session.scalars(
            select(Mail.message_id).where(
                Mail.message_id.in_([i for i in ids.values() if i])
            )
        )
    )
    return [uid for uid in uids if not ids.get(uid) or ids[uid] not in known]


def _take(
    session: Session,
    mailbox: Mailbox,
    state: MailboxState,
    uids: list[int],
    ingest: Ingest,
    result: PollResult,
    commit_every: int,
    should_stop: Callable[[], bool],
) -> bool:
    """Take the mails, ``commit_every`` to a transaction; False if
    ``should_stop`` ended it early.

    Each batch is fetched and prepared (raw files written, reading
    started) before the batch before it is stored and committed, so that
    the reading process and this one work at the same time.
    """
    waiting: Prepared | None = None
    try:
        for batch in _batches(mailbox, uids, commit_every):
            prepared = ingest.prepare(session, batch)
            stored, waiting = waiting, prepared
            if stored is not None:
                _commit(session, state, ingest, stored, result)
                if should_stop():
                    return False
        stored, waiting = waiting, None
        if stored is not None:
            _commit(session, state, ingest, stored, result)
    finally:
        # A batch prepared but not stored (stopped, or the next batch's
        # fetch or preparation failed) leaves no temporary file behind;
        # the next poll fetches it again.
        if waiting is not None:
            waiting.discard()
    return True


def _batches(
    mailbox: Mailbox, uids: list[int], size: int
) -> Iterator[list[Incoming]]:
    batch: list[Incoming] = []
    # The server's split saves a backlog's reading; a few new mails are
    # fetched whole instead, in one round trip: to a distant server such as
    # 163.com each one costs tens of ms of the answer's latency.
    split_parts = len(uids) >= SPLIT_FROM
    for fetched in mailbox.fetch(uids, split_parts=split_parts):
        batch.append(
            Incoming(
                raw=fetched.raw,
                label=f"{_where(mailbox)}/{fetched.uid}",
                received_at=fetched.internaldate,
                location=Location(
                    mailbox.account, mailbox.settings.folder, mailbox.uidvalidity,
                    fetched.uid,
                ),
                parts=fetched.parts,
            )
        )
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _commit(
    session: Session,
    state: MailboxState,
    ingest: Ingest,
    prepared: Prepared,
    result: PollResult,
) -> None:
    """Store a batch and commit it with the folder's progress."""
    for outcome in ingest.finish(session, prepared):
        result.taken += outcome.outcome != "duplicate"
        result.duplicates += outcome.outcome == "duplicate"
    uids = [incoming.location.uid for incoming in prepared.batch if incoming.location]
    state.last_uid = max([state.last_uid or 0, *uids])
    session.commit()


def _where(mailbox: Mailbox) -> str:
    return f"{mailbox.account}/{mailbox.settings.folder}"
