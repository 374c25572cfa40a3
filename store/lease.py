"""Named leases in the database: who may poll or send right now.

Two daemons started by mistake, or on two machines against one PostgreSQL,
must never poll the mailbox or send notices at the same moment. Each holds
a lease row (name, owner, expiry) while it works and renews it well before
it expires; a daemon that dies stops renewing and its lease lapses.

Every change is one conditional UPDATE or one INSERT … ON CONFLICT DO
NOTHING whose RETURNING row says who won, so the race is settled by the
database on SQLite and PostgreSQL alike. Each call commits at once: a lease
inside an open transaction would protect nothing.

A daemon restarted on the same machine after a crash need not wait for its
predecessor's lease to lapse: when the owner named in the row is a process
of this host that no longer exists, the lease is taken over at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import time
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from store.db import upsert_insert
from store.models import Lease, to_db, utc

logger = logging.getLogger(__name__)

# The leases lifeline takes, and for how long before they must be renewed.
POLL = "poll"
POLL_TTL = dt.timedelta(seconds=90)
DELIVER = "deliver"
DELIVER_TTL = dt.timedelta(minutes=10)


def new_owner() -> str:
    """A name for this process: host, pid and a random tag (a pid can be
    reused, the tag cannot)."""
    return f"{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(4)}"


def acquire(
    session: Session,
    name: str,
    owner: str,
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """Take or renew the lease ``name`` for ``ttl``; True if ``owner`` holds
    it now. Commits."""
    moment = _now(now)
    taken = _update(
        session, name, owner, moment + ttl,
        (Lease.expires_at < moment) | (Lease.owner == owner),
    ) or _insert(session, name, owner, moment + ttl)
    if not taken:
        taken = _take_from_dead_process(session, name, owner, moment + ttl)
    session.commit()
    return taken


def renew(
    session: Session,
    name: str,
    owner: str,
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
) -> bool:
    """Extend a lease ``owner`` still holds; False if it was lost (it lapsed
    and another process took it). Commits."""
    renewed = _update(session, name, owner, _now(now) + ttl, Lease.owner == owner)
    session.commit()
    return renewed


def release(session: Session, name: str, owner: str) -> None:
    """Give the lease up, if ``owner`` still holds it. Commits."""
    session.execute(delete(Lease).where(Lease.name == name, Lease.owner == owner))
    session.commit()


def holder(
    session: Session, name: str, now: dt.datetime | None = None
) -> tuple[str, dt.datetime] | None:
    """Who holds the lease ``name`` and until when (aware UTC); None when
    nobody holds it or it has lapsed."""
    row = session.execute(
        select(Lease.owner, Lease.expires_at).where(Lease.name == name)
    ).first()
    if row is None or row.expires_at < _now(now):
        return None
    return row.owner, utc(row.expires_at)


class Keeper:
    """Holds one named lease for a long-running task: takes it, renews it
    when a third of its time has passed, and gives it back."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        name: str,
        ttl: dt.timedelta,
        owner: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.name = name
        self.ttl = ttl
        self.owner = owner or new_owner()
        self.held = False
        self._renewed = 0.0

    def take(self) -> bool:
        """Take (or keep) the lease; True if this process holds it now."""
        with self.sessions() as session:
            self.held = acquire(session, self.name, self.owner, self.ttl)
        self._renewed = time.monotonic()
        return self.held

    def keep(self) -> bool:
        """Renew the lease if it is due; False if it was lost meanwhile."""
        if not self.held:
            return False
        if time.monotonic() - self._renewed < self.ttl.total_seconds() / 3:
            return True

        with self.sessions() as session:
            self.held = renew(session, self.name, self.owner, self.ttl)
        self._renewed = time.monotonic()
        if not self.held:
            logger.warning("lease %s: lost to another process", self.name)
        return self.held

    def give_up(self) -> None:
        if not self.held:
            return
        with self.sessions() as session:
            release(session, self.name, self.owner)
        self.held = False

    def other_holder(self) -> str:
        """The owner holding the lease instead of us, for messages."""
        with self.sessions() as session:
            current = holder(session, self.name)
        if current is None:
            return "nobody"
        owner, until = current
        return f"{owner} (until {until:%Y-%m-%d %H:%M:%S} UTC unless renewed)"


def _update(
    session: Session, name: str, owner: str, until: dt.datetime, condition: Any
) -> bool:
    statement = (
        update(Lease)
        .where(Lease.name == name, condition)
        .values(owner=owner, expires_at=until)
        .returning(Lease.name)
        .execution_options(synchronize_session=False)
    )
    return session.execute(statement).scalar() is not None


def _insert(session: Session, name: str, owner: str, until: dt.datetime) -> bool:
    statement = (
        upsert_insert(session)(Lease)
        .values(name=name, owner=owner, expires_at=until)
        .on_conflict_do_nothing()
        .returning(Lease.name)
    )
    return session.execute(statement).scalar() is not None


def _take_from_dead_process(
    session: Session, name: str, owner: str, until: dt.datetime
) -> bool:
    """Take the lease over from a process of this host that has died
    (compare-and-swap on the dead owner's name, so only one taker wins)."""
    current = session.scalar(select(Lease.owner).where(Lease.name == name))
    if current is None or not _is_dead_local_process(current):
        return False

    taken = _update(session, name, owner, until, Lease.owner == current)
    if taken:
        logger.info("lease %s: taken over from %s, which is no longer running",
                    name, current)
    return taken


def _is_dead_local_process(owner: str) -> bool:
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False

    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, under another user
    return False


def _now(now: dt.datetime | None) -> dt.datetime:
    return to_db(now or dt.datetime.now(dt.UTC))
