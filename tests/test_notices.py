"""The notice queue on a real database (SQLite, and PostgreSQL when
LIFELINE_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import datetime as dt
import threading

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store import notices
from store.models import Notice


def queue_one(
    session: Session, step: str = "first", unit_id: int | None = None
) -> Notice | None:
    return notices.queue(
        session,
        kind="reminder",
        step=step,
        recipients=["a@example.cn"],
        context={"unit": "城关街道"},
        period="2025-05",
        unit_id=unit_id,
    )


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Notice)) or 0)


def test_queue_twice_keeps_one(sessions: sessionmaker[Session]) -> None:
    """The second queueing of the same key does nothing and returns None."""
    with sessions() as session:
        first = queue_one(session)
        second = queue_one(session)
        session.commit()

        assert first is not None and first.key == "reminder:-:2025-05:first"
        assert first.status == "pending" and first.context == {"unit": "城关街道"}
        assert second is None
        assert count(session) == 1


def test_queue_rolls_back_with_its_cause(sessions: sessionmaker[Session]) -> None:
    """A notice queued in a transaction that is rolled back is gone too."""
    with sessions() as session:
        assert queue_one(session) is not None
        session.rollback()
    with sessions() as session:
        assert count(session) == 0
        assert queue_one(session) is not None


def test_concurrent_queue_keeps_one(sessions: sessionmaker[Session]) -> None:
    """Four threads queueing the same key at once store it once."""
    results: list[Notice | None] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        with sessions() as session:
            barrier.wait()
            results.append(queue_one(session))
            session.commit()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r is not None for r in results) == 1
    with sessions() as session:
        assert count(session) == 1


def test_claim_takes_each_notice_once(sessions: sessionmaker[Session]) -> None:
    """Two claims never return the same notice; claimed ones are sending."""
    with sessions() as session:
        for step in ("a", "b", "c"):
            queue_one(session, step)
        session.commit()

    with sessions() as one, sessions() as two:
        first = notices.claim(one, 2)
        one.commit()
        second = notices.claim(two, 5)
        two.commit()

    assert [n.key.rsplit(":", 1)[1] for n in first] == ["a", "b"]
    assert [n.key.rsplit(":", 1)[1] for n in second] == ["c"]
    assert all(n.status == "sending" and n.claimed_at for n in first + second)


def test_concurrent_claims_are_disjoint(sessions: sessionmaker[Session]) -> None:
    """Claims racing in threads split the queue without overlap."""
    with sessions() as session:
        for i in range(20):
            queue_one(session, f"s{i}")
        session.commit()

    claimed: list[list[int]] = []

    def worker() -> None:
        with sessions() as session:
            ids = [n.id for n in notices.claim(session, 7)]
            session.commit()
            claimed.append(ids)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    flat = [i for ids in claimed for i in ids]
    assert len(flat) == len(set(flat)) == 20


def test_temporary_failures_give_up_after_the_cap(
    sessions: sessionmaker[Session],
) -> None:
    """A temporary failure returns to pending until MAX_ATTEMPTS, then fails."""
    with sessions() as session:
        queue_one(session)
        session.commit()

    statuses = []
    for _ in range(notices.MAX_ATTEMPTS):
        with sessions() as session:
            (notice,) = notices.claim(session, 1)
            session.commit()
            row = notices.mark_failed(session, notice, "451 later", permanent=False)
            session.commit()
            statuses.append(row.status)

    assert statuses == ["pending"] * (notices.MAX_ATTEMPTS - 1) + ["failed"]
    with sessions() as session:
        assert notices.claim(session, 1) == []


def test_permanent_failure_and_sent(sessions: sessionmaker[Session]) -> None:
    """mark_failed(permanent) fails at once; mark_sent records the Message-ID."""
    with sessions() as session:
        queue_one(session, "a")
        queue_one(session, "b")
        session.commit()
        a, b = notices.claim(session, 2)
        session.commit()
        notices.mark_failed(session, a, "550 no such mailbox", permanent=True)
        notices.mark_sent(session, b, "<x@lifeline>")
        session.commit()

    with sessions() as session:
        rows = {n.key[-1]: n for n in session.scalars(select(Notice))}
        assert rows["a"].status == "failed"
        assert rows["a"].last_error == "550 no such mailbox"
        assert rows["b"].status == "sent" and rows["b"].message_id == "<x@lifeline>"
        since = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        assert [n.key for n in notices.failed_since(session, since)] == [rows["a"].key]


def test_recover_stale_only_takes_old_claims(sessions: sessionmaker[Session]) -> None:
    """A notice claimed long ago goes back to pending; a fresh claim stays."""
    with sessions() as session:
        queue_one(session, "old")
        queue_one(session, "new")
        session.commit()
        old, new = notices.claim(session, 2)
        session.commit()
        old_row = session.get(Notice, old.id)
        assert old_row is not None
        assert old_row.claimed_at is not None
        old_row.claimed_at -= dt.timedelta(hours=1)
        session.commit()

        assert notices.recover_stale(session, dt.timedelta(minutes=30)) == 1
        session.commit()
        statuses = {n.key[-3:]: n.status for n in session.scalars(select(Notice))}
        assert statuses == {"old": "pending", "new": "sending"}


def test_message_id_and_file_name_depend_only_on_key() -> None:
    """Resending a notice reuses its Message-ID and outbox file name."""
    key = "receipt:3:2025-05:mail-7"
    assert notices.message_id_for(key) == notices.message_id_for(key)
    assert notices.message_id_for(key) != notices.message_id_for(key + "x")
    assert notices.message_id_for(key, "example.cn").endswith("@example.cn>")
    assert notices.file_name_for(key).endswith(".eml")
