"""The backlog path under review: a batch read and stored in chunks,
versions, receipts and failures within one chunk, on real databases."""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from dovecot import Dovecot
from make_tables import ROW_A, ROW_B
from sqlalchemy import select
from test_faults import backlog
from test_pipeline import SHANGHAI, mail, table

from ingest.mailbox import Mailbox, MailboxSettings
from ingest.pipeline import Incoming
from ingest.poll import poll_once
from lifeline import config as config_module
from lifeline.app import App
from lifeline.errors import StoreError
from store import rawmail, roster
from store.models import Mail, MailboxState, MailLocation, Notice, Report


@pytest.fixture
def app(tmp_path: Path, shared_dir: Path, database_url: str) -> Iterator[App]:
    """A wired App (receipts queued) on a fresh database with the roster."""
    config = config_module.from_dict(
        {"store": {"data_dir": str(tmp_path / "data"), "url": database_url}}
    )
    wired = App(config)
    with wired.sessions() as session:
        roster.sync(session, roster.read_file(shared_dir / "samples" / "roster.csv"))
        session.commit()
    yield wired
    wired.engine.dispose()


def _version(day: int, row: list[object]) -> bytes:
    return mail(
        "xicheng_office@example.cn", {f"a{day}.xlsx": table("西城街道", row)},
        subject=f"5月份统计表 {day}",
        received=dt.datetime(2025, 5, day, 9, 0, tzinfo=SHANGHAI),
    )


def _receipts(app: App) -> dict[str, tuple[bool, bool]]:
    with app.sessions() as session:
        rows = session.scalars(select(Notice).where(Notice.kind == "receipt"))
        return {
            n.context["received"]: (n.context["correction"], n.context["not_current"])
            for n in rows
        }


def test_receipts_of_versions_do_not_depend_on_sharing_a_batch(app: App) -> None:
    """Two versions taken in one batch get the receipts they get when
    taken one by one: the earlier one is not called superseded by a
    version that had not arrived when it was taken."""
    first, second = _version(8, ROW_A), _version(10, ROW_B)
    ingest = app.ingest()
    with app.sessions() as session:
        ingest.take_all(session, [Incoming(first, "1.eml"), Incoming(second, "2.eml")])
        session.commit()
    assert _receipts(app) == {
        "2025-05-08 09:00": (False, False),
        "2025-05-10 09:00": (True, False),
    }


def _current(app: App) -> list[tuple[str, bool]]:
    with app.sessions() as session:
        rows = session.scalars(select(Report).order_by(Report.received_at))
        return [(r.attachment[:8], r.current) for r in rows]


def test_a_failing_new_version_leaves_the_stored_one_current(app: App) -> None:
    """A newer version whose mail cannot be stored (a file name longer
    than the column, refused by PostgreSQL) must not unseat the version
    in force, whether stored alone or in a chunk."""
    ingest = app.ingest()
    with app.sessions() as session:
        ingest.take_all(session, [Incoming(_version(8, ROW_A), "1.eml")])
        session.commit()
    long_name = "西城街道5月份统计表" * 40 + ".xlsx"
    newer = mail(
        "xicheng_office@example.cn", {long_name: table("西城街道", ROW_B)},
        received=dt.datetime(2025, 5, 10, 9, 0, tzinfo=SHANGHAI),
    )
    other = mail("dcjd@example.cn", {"b.xlsx": table("东城街道", ROW_B)})
    with app.sessions() as session:
        outcomes = ingest.take_all(
            session, [Incoming(newer, "2.eml"), Incoming(other, "3.eml")]
        )
        session.commit()

    newer_stored = outcomes[0].outcome == "stored"
    assert [o.outcome for o in outcomes][1] == "stored"
    assert _current(app)[0] == ("a8.xlsx", not newer_stored)
    assert sum(current for _, current in _current(app)) == 2


def _last_uid(app: App) -> int:

    with app.sessions() as session:
        return session.scalars(select(MailboxState)).one().last_uid


def _settings(server: Dovecot) -> MailboxSettings:
    return MailboxSettings(
        host=server.host, port=server.port, tls="none", user=server.user,
        password=server.password, timeout_seconds=10,
    )


@pytest.mark.dovecot
def test_a_stopped_poll_resumes_without_losing_or_repeating_a_mail(
    app: App, dovecot: Dovecot, shared_dir: Path
) -> None:
    """Stopped after its first batch (the second already fetched and
    prepared), a poll commits that batch and its UID only; the next poll
    takes the rest once, every raw file whole and no temporary file left."""


    mails = backlog(shared_dir, 130)
    dovecot.deliver(mails)
    with Mailbox(_settings(dovecot)) as box:
        first = poll_once(
            app.sessions, box, app.ingest, commit_every=60, should_stop=lambda: True
        )
    data = app.config.data_dir
    assert (first.taken, _last_uid(app), list(data.rglob("*.tmp"))) == (60, 60, [])

    with Mailbox(_settings(dovecot)) as box:
        second = poll_once(app.sessions, box, app.ingest, commit_every=60)
    assert (second.new, second.taken, _last_uid(app)) == (70, 70, 130)
    with app.sessions() as session:
        stored = session.scalars(select(Mail)).all()
        for m in stored:
            kept = (data / m.raw_path).read_bytes()
            assert (rawmail.digest(kept), len(kept)) == (m.sha256, m.size)
    assert list(data.rglob("*.tmp")) == []
    assert len(stored) == 130


@pytest.mark.dovecot
def test_a_batch_that_cannot_be_prepared_leaves_no_temporary_file(
    app: App, dovecot: Dovecot, shared_dir: Path
) -> None:
    """The second batch's raw file cannot be written (a file stands where
    its folder goes): the first batch, prepared and waiting, leaves no
    temporary file, and the next poll takes every mail once."""


    # Mails Dovecot keeps byte for byte (no bare CR or LF), so their raw
    # file names are known before they are fetched.
    mails = [raw for raw, _ in backlog(shared_dir, 130)]
    clean = [
        raw for raw in mails
        if raw.count(b"\n") == raw.count(b"\r\n") == raw.count(b"\r")
    ]
    dovecot.deliver([(raw, None) for raw in clean])
    first_batch = {rawmail.relative_path(rawmail.digest(raw))[:7] for raw in clean[:60]}
    blocked = next(
        folder for raw in clean[60:]
        if (folder := rawmail.relative_path(rawmail.digest(raw))[:7]) not in first_batch
    )
    data = app.config.data_dir
    (data / "mail").mkdir(parents=True)
    (data / blocked).write_bytes(b"not a folder")

    with Mailbox(_settings(dovecot)) as box, pytest.raises(StoreError):
        poll_once(app.sessions, box, app.ingest, commit_every=60)
    left = list(data.rglob("*.tmp"))

    (data / blocked).unlink()
    with Mailbox(_settings(dovecot)) as box:
        poll_once(app.sessions, box, app.ingest, commit_every=60)
    with app.sessions() as session:
        assert len(session.scalars(select(Mail)).all()) == len(clean)
    assert left == []


@pytest.mark.dovecot
@pytest.mark.parametrize("batch", [60, 120, 45])
@pytest.mark.parametrize("header", [b"", b"X-Resent: yes\r\n"])
def test_copies_are_duplicates_with_their_locations(
    app: App, dovecot: Dovecot, shared_dir: Path, batch: int, header: bytes
) -> None:
    """Each mail again, byte for byte or under other bytes, in the same
    chunk, the same batch or the next one: a duplicate whose UID is
    recorded with the first copy, and notices only for new mails."""


    mails = [raw for raw, _ in backlog(shared_dir, 60)]
    again = [header + raw for raw in mails]
    dovecot.deliver([(raw, None) for raw in mails + again])
    with Mailbox(_settings(dovecot)) as box:
        result = poll_once(app.sessions, box, app.ingest, commit_every=batch)
    with app.sessions() as session:
        stored = session.scalars(select(Mail)).all()
        locations = session.scalars(select(MailLocation)).all()
        notices = session.scalars(select(Notice)).all()
    assert (result.taken, result.duplicates) == (60, 60)
    assert len(stored) == 60
    assert sorted(loc.uid for loc in locations) == list(range(1, 121))
    by_mail: dict[int, list[int]] = {}
    for loc in locations:
        by_mail.setdefault(loc.mail_id, []).append(loc.uid)
    pairs = sorted(sorted(uids) for uids in by_mail.values())
    assert pairs == [[uid, uid + 60] for uid in range(1, 61)]
    assert len({n.key for n in notices}) == len(notices)
    assert {n.mail_id for n in notices} <= {m.id for m in stored}


def test_a_chunk_that_falls_back_keeps_versions_and_notices_right(app: App) -> None:
    """Two versions with a mail between them that PostgreSQL refuses (a
    file name longer than its column): the chunk is stored again mail by
    mail, the later version stays current and each notice is queued once."""
    long_name = "西城街道5月份统计表" * 40 + ".xlsx"
    bad = mail("dcjd@example.cn", {long_name: table("东城街道", ROW_B)})
    ingest = app.ingest()
    with app.sessions() as session:
        outcomes = ingest.take_all(session, [
            Incoming(_version(8, ROW_A), "1.eml"), Incoming(bad, "2.eml"),
            Incoming(_version(10, ROW_B), "3.eml"),
        ])
        session.commit()
    with app.sessions() as session:
        reports = session.scalars(select(Report).order_by(Report.received_at)).all()
        flags = [(r.attachment[:8], r.current) for r in reports]
        keys = [n.key for n in session.scalars(select(Notice))]
    versions = [(name, current) for name, current in flags if name.startswith("a")]
    assert versions == [("a8.xlsx", False), ("a10.xlsx", True)]
    assert outcomes[1].outcome in ("stored", "failed")
    assert len(keys) == len(set(keys))
    receipts = {o.mail.id for o in outcomes if o.outcome == "stored"}
    versioned = {f"receipt:3:2025-05:mail-{outcomes[i].mail.id}" for i in (0, 2)}
    assert versioned <= set(keys)
    assert len(keys) == len(receipts)


def test_a_failing_version_after_one_of_its_own_chunk_leaves_that_one_current(
    app: App,
) -> None:
    """The version a refused newer one would have replaced was stored in
    the same chunk: it stays the current one."""
    long_name = "西城街道5月份统计表" * 40 + ".xlsx"
    newer = mail(
        "xicheng_office@example.cn", {long_name: table("西城街道", ROW_B)},
        received=dt.datetime(2025, 5, 10, 9, 0, tzinfo=SHANGHAI),
    )
    ingest = app.ingest()
    with app.sessions() as session:
        outcomes = ingest.take_all(
            session, [Incoming(_version(8, ROW_A), "1.eml"), Incoming(newer, "2.eml")]
        )
        session.commit()

    newer_stored = outcomes[1].outcome == "stored"
    assert outcomes[0].outcome == "stored"
    assert _current(app)[0] == ("a8.xlsx", not newer_stored)
    assert sum(current for _, current in _current(app)) == 1


UNITS = {
    "城关街道": "cgjd_2019@example.com",
    "东城街道": "dcjd@example.cn",
    "西城街道": "xicheng_office@example.cn",
    "南湖镇": "nanhu_gov@example.cn",
}


@pytest.mark.dovecot
def test_versions_received_out_of_order_across_chunks_and_batches(
    app: App, dovecot: Dovecot
) -> None:
    """Fifteen versions per unit, delivered in a shuffled order of their
    receipt times, taken in chunks and batches: the one received last is
    the current one, and a receipt calls a version a correction exactly
    when it replaced one in force."""


    chance = random.Random(7)
    sent = []
    for name, sender in UNITS.items():
        for version in range(15):
            row = [v + version if isinstance(v, int) else v for v in ROW_A]
            when = dt.datetime(2025, 5, 1, 8, tzinfo=SHANGHAI) + dt.timedelta(
                hours=chance.randrange(500)
            )
            raw = mail(sender, {f"v{version}.xlsx": table(name, row)},
                       subject=f"5月 {version}", received=when)
            sent.append((raw, when))
    chance.shuffle(sent)
    dovecot.deliver(sent)

    with Mailbox(_settings(dovecot)) as box:
        poll_once(app.sessions, box, app.ingest, commit_every=35)

    with app.sessions() as session:
        reports = session.scalars(select(Report).order_by(Report.id)).all()
        receipts = {
            n.mail_id: n.context["correction"]
            for n in session.scalars(select(Notice).where(Notice.kind == "receipt"))
        }
        assert len(reports) == 60 == len(receipts)
        for name in UNITS:
            mine = [r for r in reports if r.unit.name == name]
            latest = max(mine, key=lambda r: (r.received_at, r.id))
            assert [r for r in mine if r.current] == [latest]
        # In the order taken (the delivery order), a version is a
        # correction when it is later than every version taken before it.
        seen: dict[int, list[dt.datetime]] = {}
        taken = sorted(reports, key=lambda r: int(r.mail.source.rsplit("/", 1)[1]))
        for report in taken:
            before = seen.setdefault(report.unit_id, [])
            expected = bool(before) and report.received_at >= max(before)
            assert receipts[report.mail_id] == expected, report.mail.source
            before.append(report.received_at)


def _folded(raw: bytes) -> bytes:
    """``raw`` with its Message-ID header folded onto a second line, as
    mailers do with long ones."""
    assert b"\nMessage-ID: " in raw
    return raw.replace(b"\nMessage-ID: ", b"\nMessage-ID:\n ", 1)


@pytest.mark.parametrize("together", [True, False])
def test_a_copy_with_a_folded_message_id_is_a_duplicate(
    app: App, together: bool
) -> None:
    """The same mail again under other bytes is recognised by its
    Message-ID also when the header is folded."""

    raw = _folded(_version(8, ROW_A))
    copy = b"X-Resent: yes\n" + raw
    ingest = app.ingest()
    batches = [[raw, copy]] if together else [[raw], [copy]]
    outcomes = []
    for batch in batches:
        with app.sessions() as session:
            outcomes += ingest.take_all(
                session, [Incoming(m, f"{n}.eml") for n, m in enumerate(batch)]
            )
            session.commit()
    with app.sessions() as session:
        stored = session.scalars(select(Mail)).all()
    assert stored[0].message_id
    assert [o.outcome for o in outcomes] == ["stored", "duplicate"]
    assert len(stored) == 1


@pytest.mark.dovecot
def test_a_few_new_mails_take_one_fetch_and_a_backlog_is_split(
    app: App, dovecot: Dovecot, shared_dir: Path
) -> None:
    """A pushed mail is fetched whole in one round trip (to a distant
    server the split's second round trip is latency); a backlog is split
    by the server, one FETCH of its structure then its parts."""
    dovecot.deliver(backlog(shared_dir, 3))
    with Mailbox(_settings(dovecot)) as box:
        poll_once(app.sessions, box, app.ingest)
    few = re.findall(r"UID FETCH \S+ \(([^)]*)", dovecot.protocol_log())
    assert len(few) == 1 and "BODYSTRUCTURE" not in few[0]

    dovecot.deliver(backlog(shared_dir, 60))
    with Mailbox(_settings(dovecot)) as box:
        poll_once(app.sessions, box, app.ingest)
    fetches = re.findall(r"UID FETCH \S+ \(([^)]*)", dovecot.protocol_log())[1:]
    assert "BODYSTRUCTURE" in fetches[0]
    assert any("BODY.PEEK[2]" in fetch for fetch in fetches[1:])
    with app.sessions() as session:
        assert len(session.scalars(select(Mail)).all()) == 60  # the first 3 again
