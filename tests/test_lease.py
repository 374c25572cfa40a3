"""store.lease: one holder at a time, on SQLite and PostgreSQL, across
threads and processes."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from store import db, lease

TTL = dt.timedelta(seconds=60)
NOW = dt.datetime(2025, 5, 10, 8, 0, tzinfo=dt.UTC)
# An owner on another machine: never taken over as a dead local process.
REMOTE = "other-host/4242/abcd"


@pytest.fixture
def factory(database_url: str) -> Iterator[sessionmaker[Session]]:
    """Sessions on a fresh database, its connections closed afterwards."""
    engine = db.open_engine(database_url)
    yield db.session_factory(engine)
    engine.dispose()


def test_first_taker_wins_until_the_lease_lapses(factory: sessionmaker[Session]) -> None:
    """A held lease is refused to others until its expiry, then taken."""
    with factory() as session:
        assert lease.acquire(session, "poll", REMOTE, TTL, NOW)
        assert not lease.acquire(session, "poll", "me/1/x", TTL, NOW + TTL / 2)
        assert lease.holder(session, "poll", NOW)[0] == REMOTE
        assert lease.acquire(session, "poll", "me/1/x", TTL, NOW + TTL * 2)
        assert lease.holder(session, "poll", NOW + TTL * 2)[0] == "me/1/x"


def test_renew_extends_and_reports_a_lost_lease(factory: sessionmaker[Session]) -> None:
    """The holder can renew; after another took the lapsed lease, renew
    says it is lost."""
    with factory() as session:
        assert lease.acquire(session, "poll", REMOTE, TTL, NOW)
        assert lease.renew(session, "poll", REMOTE, TTL, NOW + TTL / 2)
        assert not lease.acquire(session, "poll", "me/1/x", TTL, NOW + TTL)
        assert lease.acquire(session, "poll", "me/1/x", TTL, NOW + TTL * 2)
        assert not lease.renew(session, "poll", REMOTE, TTL, NOW + TTL * 2)


def test_release_lets_the_next_one_in_at_once(factory: sessionmaker[Session]) -> None:
    with factory() as session:
        assert lease.acquire(session, "deliver", REMOTE, TTL, NOW)
        lease.release(session, "deliver", "not-the-owner")
        assert not lease.acquire(session, "deliver", "me/1/x", TTL, NOW)
        lease.release(session, "deliver", REMOTE)
        assert lease.acquire(session, "deliver", "me/1/x", TTL, NOW)
        assert lease.holder(session, "poll", NOW) is None


def test_lease_of_a_dead_local_process_is_taken_over(factory: sessionmaker[Session]) -> None:
    """A daemon restarted after SIGKILL on the same host does not wait for
    the dead one's lease to lapse."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dead_owner = f"{socket.gethostname()}/{dead.pid}/dead"
    with factory() as session:
        assert lease.acquire(session, "poll", dead_owner, TTL)
        assert lease.acquire(session, "poll", lease.new_owner(), TTL)


def test_a_live_local_process_keeps_its_lease(factory: sessionmaker[Session]) -> None:
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        owner = f"{socket.gethostname()}/{alive.pid}/live"
        with factory() as session:
            assert lease.acquire(session, "poll", owner, TTL)
            assert not lease.acquire(session, "poll", lease.new_owner(), TTL)
    finally:
        alive.kill()
        alive.wait()


def test_racing_threads_get_one_winner(factory: sessionmaker[Session]) -> None:
    """Eight threads, each with its own connection, race for a free lease:
    exactly one wins."""
    barrier = threading.Barrier(8)
    winners: list[str] = []

    def race(owner: str) -> None:
        barrier.wait()
        with factory() as session:
            if lease.acquire(session, "poll", owner, TTL):
                winners.append(owner)

    threads = [
        threading.Thread(target=race, args=(f"remote-{i}/1/x",)) for i in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1


def test_keeper_renews_and_gives_up(factory: sessionmaker[Session]) -> None:
    first = lease.Keeper(factory, "poll", dt.timedelta(seconds=0.3))
    second = lease.Keeper(factory, "poll", TTL)

    assert first.take() and first.keep()
    assert not second.take()
    assert first.owner in second.other_holder()

    first.give_up()
    assert second.take()
    assert not first.keep()


def test_keeper_notices_a_lost_lease(factory: sessionmaker[Session]) -> None:
    """When the holder renewed too late and another took over, keep() says
    so instead of polling on beside the new holder."""
    slow = lease.Keeper(factory, "poll", dt.timedelta(seconds=0.3), owner=REMOTE)
    assert slow.take()
    time.sleep(0.4)
    assert lease.Keeper(factory, "poll", TTL).take()
    assert not slow.keep()
