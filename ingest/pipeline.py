"""One mail in, reports and problems out: the ingest steps in order.

    keep raw → skip if seen → decode → read tables → name unit and period
    → store reports and problems → hand over for notices

Mails come in batches (``Ingest.take_all``; ``take`` is a batch of one).
The batch is first read in memory (decode, tables, unit and month), then
its lookups are made in one query each (mails already stored, the stored
versions of its units' months), and then each mail is stored inside its
own savepoint, so a mail that fails any step is rolled back alone, kept
raw with its problem, and the batch goes on. The caller commits the batch.
"""

from __future__ import annotations

import datetime as dt
import logging
import multiprocessing
import re
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace

from sqlalchemy import or_, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ingest import period as periods
from ingest.mail import DecodedMail, decode_mail
from ingest.model import Attachment, Issue, Table
from ingest.split import SplitMail
from ingest.tables import read_tables
from ingest.units import Roster
from lifeline.config import Config
from lifeline.errors import NotATable, TableError
from store import bulk, notices, rawmail
from store import reports as report_store
from store.models import Base, Mail, MailLocation, Problem, Report, Unit, to_db

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    """Where on the IMAP server a mail was found."""

    account: str
    folder: str
    uidvalidity: int
    uid: int


@dataclass
class Incoming:
    """A raw mail as a source hands it over, with its parts where the
    IMAP server split it (read instead of parsing the raw mail)."""

    raw: bytes
    label: str
    received_at: dt.datetime | None = None
    location: Location | None = None
    parts: SplitMail | None = None


@dataclass
class Filed:
    """One report as the JSON contract shows it, with the version it
    replaced, if any."""

    report: Report
    supersedes: Report | None = None
    # Whether it was the version in force when its mail was taken: a later
    # mail of the same chunk may change ``report.current`` before the
    # chunk's receipts are written.
    current: bool = True


@dataclass
class Outcome:
    """What became of one mail."""

    label: str
    mail: Mail | None
    outcome: str
    filed: list[Filed] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)
    decoded: DecodedMail | None = None
    sender_known: bool = False
    sender_unit_id: int | None = None
    location: Location | None = None
    notices: list[notices.Pending] = field(default_factory=list)


# Called with every new mail's outcome once the mail is flushed (its id
# known), inside the transaction that stores it; the notices it returns are
# queued in that transaction, so a notice exists exactly when its cause does.
AfterMail = Callable[[Session, Outcome], list[notices.Pending]]

VersionKey = tuple[int, str]

# A backlog is read (decode and tables, half of a mail's time) in chunks by
# a second process, on the second core, while this one stores the chunk
# before; one reader keeps up with the storing. Smaller batches are read
# here: a pushed mail must not wait for a process to start.
_READERS = 1
_CHUNK = 25
_POOL_FROM = 50


@dataclass
class _Read:
    """A new mail read in memory, before anything of it is stored."""

    incoming: Incoming
    sha256: str
    raw_path: str
    message_id: str | None  # from the header block, before decoding
    outcome: Outcome
    received: dt.datetime
    reports: list[Report] = field(default_factory=list)
    error: Exception | None = None


@dataclass
class Prepared:
    """A batch whose raw files are written (not yet durable) and whose
    reading has started; see ``Ingest.prepare``."""

    batch: list[Incoming]
    raws: rawmail.RawBatch
    kept: list[tuple[str, str]]  # (sha256, raw path) of each mail
    message_ids: list[str | None]
    chunks: list[list[int]]  # the new mails' indexes, as read together
    futures: list[Future[list[_Contents | Exception]]] | None

    def discard(self) -> None:
        """Drop the batch unstored: it is fetched again by the next poll."""
        for future in self.futures or []:
            future.cancel()
        self.raws.discard()


@dataclass
class _Chunk:
    """New mails of a batch, as kept on disk, and what reading found in
    them: (batch index, incoming, sha256, raw path, Message-ID) each."""

    mails: list[tuple[int, Incoming, str, str, str | None]]
    contents: list[_Contents | Exception]


@dataclass
class _Contents:
    """What a mail holds, read without the database."""

    decoded: DecodedMail
    tables: list[tuple[Attachment, Table]]
    problems: list[Issue]


class _Known:
    """The batch's mails already stored, by content hash and Message-ID,
    read in one query and kept up to date as the batch is stored."""

    def __init__(self, session: Session, kept: list[tuple[str, str | None]]) -> None:
        hashes = [sha256 for sha256, _ in kept]
        ids = [message_id for _, message_id in kept if message_id]
        query = select(Mail).where(
            or_(Mail.sha256.in_(hashes), Mail.message_id.in_(ids))
        )
        self.by_hash: dict[str, Mail] = {}
        # Every mail of a Message-ID: mailers reuse them, and a copy may
        # be of any of the mails that share its id.
        self.by_id: dict[str, list[Mail]] = {}
        for mail in session.scalars(query):
            self.add(mail)

    def add(self, mail: Mail) -> None:
        self.by_hash[mail.sha256] = mail
        if mail.message_id:
            self.by_id.setdefault(mail.message_id, []).append(mail)

    def seen(self, read: _Read) -> Mail | None:
        """The stored mail ``read`` is a copy of, if any."""
        seen = self.by_hash.get(read.sha256)
        if seen is None and read.message_id:
            seen = _same_mail(self.by_id.get(read.message_id, []), read)
        return seen

    def snapshot(self) -> tuple[dict[str, Mail], dict[str, list[Mail]]]:
        return dict(self.by_hash), {key: list(v) for key, v in self.by_id.items()}

    def restore(self, snapshot: tuple[dict[str, Mail], dict[str, list[Mail]]]) -> None:
        self.by_hash = dict(snapshot[0])
        self.by_id = {key: list(v) for key, v in snapshot[1].items()}


class Ingest:
    """Takes raw mails into the store in batches; a mail that fails is
    recorded alone, with its problem, and its neighbours are stored."""

    def __init__(
        self, config: Config, roster: Roster[Unit], after_mail: AfterMail | None = None
    ) -> None:
        self.config = config
        self.roster = roster
        self.after_mail = after_mail
        self.data_dir = config.data_dir
        self._pool: ProcessPoolExecutor | None = None

    def take(self, session: Session, incoming: Incoming) -> Outcome:
        """Store one mail and everything read from it. Never raises for a
        bad mail: a failure becomes the mail's problem."""
        return self.take_all(session, [incoming])[0]

    def take_all(self, session: Session, batch: list[Incoming]) -> list[Outcome]:
        """Store a batch of mails, each failing one alone; the caller
        commits them together. Their raw files are durable on return."""
        return self.finish(session, self.prepare(session, batch))

    def prepare(self, session: Session, batch: list[Incoming]) -> Prepared:
        """Write a batch's raw files and start reading its new mails. A
        backlog prepares the next batch before it stores this one, so the
        reading process reads the one while this process stores the other.
        Give the result to ``finish``, or to ``Prepared.discard``."""
        raws = rawmail.RawBatch(self.data_dir)
        try:
            kept = [raws.save(incoming.raw) for incoming in batch]
            message_ids = [_message_id(incoming.raw) for incoming in batch]
            known = _Known(session, [(k[0], m) for k, m in zip(kept, message_ids)])
            # Only byte-identical mails are skipped unread; one that shares
            # a Message-ID is read first, to tell a copy from another mail.
            new = [i for i, (sha256, _) in enumerate(kept) if sha256 not in known.by_hash]
            chunks = [new[start:start + _CHUNK] for start in range(0, len(new), _CHUNK)]
            futures = self._submit(batch, chunks)
        except BaseException:
            raws.discard()
            raise
        return Prepared(batch, raws, kept, message_ids, chunks, futures)

    def finish(self, session: Session, prepared: Prepared) -> list[Outcome]:
        """Store a prepared batch; its raw files are durable on return."""
        try:
            outcomes = self._take_kept(session, prepared)
            prepared.raws.sync()
        except BaseException:
            prepared.discard()
            raise
        return outcomes

    def close(self) -> None:
        """Stop the reading processes, if a backlog started them."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def _take_kept(self, session: Session, prepared: Prepared) -> list[Outcome]:
        batch, kept, message_ids = prepared.batch, prepared.kept, prepared.message_ids
        # Looked up again: the batch stored since ``prepare`` may hold
        # copies of this one's mails.
        known = _Known(session, [(k[0], m) for k, m in zip(kept, message_ids)])

        # Reading touches no database, so each chunk is read (by the pool
        # while the chunk before is stored) before it is stored.
        outcomes: dict[int, Outcome] = {}
        futures = prepared.futures
        for number, chunk in enumerate(prepared.chunks):
            contents = self._contents(batch, chunk, futures[number] if futures else None)
            read = _Chunk(
                [(i, batch[i], *kept[i], message_ids[i]) for i in chunk], contents
            )
            outcomes.update(self._take_chunk(session, read, known))

        for i, incoming in enumerate(batch):
            if i not in outcomes:
                seen = known.by_hash[kept[i][0]]
                outcomes[i] = self._duplicate(session, seen, incoming)
        return [outcomes[i] for i in range(len(batch))]

    def _take_chunk(self, session: Session, chunk: _Chunk, known: _Known) -> dict[int, Outcome]:
        """Store a chunk's mails with one INSERT per table (a flush and a
        savepoint per mail cost more than reading it). If that fails, they
        are stored again one savepoint per mail, so only the failing mail
        is recorded as failed and its neighbours stored. Mails that could
        not be read are recorded as failed one by one anyway."""
        reads = self._read_chunk(chunk)
        versions = report_store.versions_of(
            session, {(r.unit_id, r.period) for _, read in reads for r in read.reports}
        )
        alone = [(i, read) for i, read in reads if read.error is not None]
        outcomes = self._store_alone(session, alone, versions, known)

        together = [(i, read) for i, read in reads if read.error is None]
        if not together:
            return outcomes
        before = known.snapshot(), {key: list(v) for key, v in versions.items()}
        attached: list[Base] = []
        try:
            outcomes.update(
                self._store_together(session, together, versions, known, attached)
            )
            return outcomes
        except OperationalError:
            raise  # see _store_or_fail
        except Exception:  # noqa: BLE001 - retried mail by mail below
            logger.warning(
                "%d mails could not be stored together; storing them one by one",
                len(together), exc_info=True,
            )
        for obj in attached:  # their rows were rolled back
            if obj in session:
                session.expunge(obj)
        known.restore(before[0])
        versions.update(before[1])
        # The rolled-back reports cannot be added again: read anew.
        fresh = dict(self._read_chunk(chunk))
        outcomes.update(
            self._store_alone(session, [(i, fresh[i]) for i, _ in together], versions, known)
        )
        return outcomes

    def _read_chunk(self, chunk: _Chunk) -> list[tuple[int, _Read]]:
        return [
            (i, self._read_mail(incoming, sha256, raw_path, message_id, found))
            for (i, incoming, sha256, raw_path, message_id), found in zip(
                chunk.mails, chunk.contents
            )
        ]

    def _store_together(
        self,
        session: Session,
        reads: list[tuple[int, _Read]],
        versions: dict[VersionKey, list[Report]],
        known: _Known,
        attached: list[Base],
    ) -> dict[int, Outcome]:
        """Store mails with one INSERT per table (store.bulk); ``attached``
        gets the objects put into the session."""
        outcomes: dict[int, Outcome] = {}
        stored: list[Outcome] = []
        copies: list[tuple[int, Mail, Incoming]] = []
        with session.begin_nested():
            for i, read in reads:
                seen = known.seen(read)
                if seen is not None:
                    copies.append((i, seen, read.incoming))
                    continue
                outcomes[i] = self._stage(read, versions)
                assert outcomes[i].mail is not None
                known.add(outcomes[i].mail)
                stored.append(outcomes[i])

            mails = [outcome.mail for outcome in stored if outcome.mail is not None]
            attached += bulk.insert_mails(session, mails, [
                _location(o.mail, o.location) for o in stored
                if o.mail is not None and o.location is not None
            ])
            session.flush()  # earlier versions no longer current
            # Only now: a copy of a mail of this chunk needs its id.
            for i, mail, incoming in copies:
                outcomes[i] = self._duplicate(session, mail, incoming)
            self._queue_notices(session, stored)

        for outcome in stored:
            _log_outcome(outcome)
        return outcomes

    def _store_alone(
        self,
        session: Session,
        reads: list[tuple[int, _Read]],
        versions: dict[VersionKey, list[Report]],
        known: _Known,
    ) -> dict[int, Outcome]:
        """Store mails one savepoint each; a failing one is recorded as
        failed with its problem."""
        outcomes: dict[int, Outcome] = {}
        for i, read in reads:
            seen = known.seen(read)
            if seen is not None:
                outcomes[i] = self._duplicate(session, seen, read.incoming)
                continue
            outcomes[i] = self._store_or_fail(session, read, versions)
            assert outcomes[i].mail is not None
            known.add(outcomes[i].mail)
            _log_outcome(outcomes[i])
        return outcomes

    def _queue_notices(self, session: Session, outcomes: list[Outcome]) -> None:
        """Queue the answers to new mails. Their keys name the new mails'
        ids, so none can have been queued before."""
        if self.after_mail is None:
            return
        for outcome in outcomes:
            outcome.notices = self.after_mail(session, outcome)
        notices.queue_all(session, [n for o in outcomes for n in o.notices])

    def _submit(
        self, batch: list[Incoming], chunks: list[list[int]]
    ) -> list[Future[list[_Contents | Exception]]] | None:
        """Hand a backlog's chunks to the reading processes; None when the
        batch is too small for them to pay off."""
        if sum(len(chunk) for chunk in chunks) < _POOL_FROM:
            return None
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                _READERS, mp_context=multiprocessing.get_context("forkserver")
            )
        limit = self.config.mailbox.max_attachment_bytes
        # The raw mail goes with its parts: it is parsed instead where the
        # parts cannot stand for it.
        mails = [(incoming.raw, incoming.parts) for incoming in batch]
        return [
            self._pool.submit(_read_all, [mails[i] for i in chunk], limit)
            for chunk in chunks
        ]

    def _contents(
        self,
        batch: list[Incoming],
        chunk: list[int],
        future: Future[list[_Contents | Exception]] | None,
    ) -> list[_Contents | Exception]:
        if future is not None:
            try:
                return future.result()
            except Exception:  # a lost process must not lose its mails
                logger.warning("reading process failed; reading here", exc_info=True)
                self.close()
        limit = self.config.mailbox.max_attachment_bytes
        return _read_all([(batch[i].raw, batch[i].parts) for i in chunk], limit)

    def _duplicate(self, session: Session, mail: Mail, incoming: Incoming) -> Outcome:
        if incoming.location is not None:
            _add_location(session, mail, incoming.location)
        logger.info("%s: already taken as mail %d, skipped", incoming.label, mail.id)
        return Outcome(incoming.label, mail, "duplicate")

    def _read_mail(
        self,
        incoming: Incoming,
        sha256: str,
        raw_path: str,
        message_id: str | None,
        found: _Contents | Exception,
    ) -> _Read:
        """The mail's reports, unsaved; a failure is kept to be recorded
        with the mail."""
        outcome = Outcome(incoming.label, None, "stored")
        read = _Read(
            incoming, sha256, raw_path, message_id, outcome, _received_at(incoming, None)
        )
        try:
            if isinstance(found, Exception):
                raise found
            outcome.decoded = found.decoded
            outcome.problems += found.problems
            read.received = _received_at(incoming, found.decoded)
            read.reports = self._reports(
                outcome, found.decoded, found.tables, read.received
            )
        except Exception as exc:  # noqa: BLE001 - a bad mail becomes its problem
            read.error = exc
        return read

    def _store_or_fail(
        self, session: Session, read: _Read, versions: dict[VersionKey, list[Report]]
    ) -> Outcome:
        keys = {(r.unit_id, r.period) for r in read.reports}
        before = {key: list(versions[key]) for key in keys}
        try:
            if read.error is not None:
                raise read.error
            with session.begin_nested():
                outcome = self._stage(read, versions)
                assert outcome.mail is not None
                session.add_all([outcome.mail, *outcome.mail.reports, *outcome.mail.problems])
                if outcome.location is not None:
                    session.add(_location(outcome.mail, outcome.location))
                session.flush()
                self._queue_notices(session, [outcome])
                return outcome
        except OperationalError:
            # The database, not the mail, is at fault (locked, gone away):
            # the mail is not recorded, so the next poll takes it again.
            raise
        except Exception as exc:
            versions.update(before)  # the savepoint took the new versions back
            logger.error(
                "%s: failed, kept raw as %s", read.incoming.label, read.raw_path,
                exc_info=exc,
            )
            return self._failed(session, read.incoming, read.sha256, read.raw_path, exc)

    def _stage(self, read: _Read, versions: dict[VersionKey, list[Report]]) -> Outcome:
        """The rows of a mail read: the mail with its reports and problems
        set on it, in no session yet; which versions are current is set."""
        outcome, decoded = read.outcome, read.outcome.decoded
        assert decoded is not None
        mail = Mail(
            sha256=read.sha256,
            message_id=decoded.message_id,
            source=read.incoming.label,
            raw_path=read.raw_path,
            size=len(read.incoming.raw),
            sender=decoded.sender,
            sender_name=decoded.sender_name,
            subject=decoded.subject,
            received_at=to_db(read.received),
            reports=[],
            problems=[],
        )
        outcome.mail = mail
        outcome.location = read.incoming.location

        for report in read.reports:
            report.mail = mail
            stored = versions[(report.unit_id, report.period)]
            supersedes = report_store.supersede(report, stored)
            stored.append(report)
            outcome.filed.append(Filed(report, supersedes, report.current))
        outcome.outcome = _verdict(outcome)
        mail.outcome = outcome.outcome
        _record_problems(outcome)
        return outcome

    def _reports(
        self,
        outcome: Outcome,
        decoded: DecodedMail,
        tables: list[tuple[Attachment, Table]],
        received: dt.datetime,
    ) -> list[Report]:
        sender_unit = self.roster.match_address(decoded.sender)
        outcome.sender_known = sender_unit is not None
        outcome.sender_unit_id = sender_unit.id if sender_unit else None
        if tables and sender_unit is None:
            outcome.problems.append(
                Issue(
                    "unknown-sender",
                    f"the sender {decoded.sender or '(none)'} is not in the "
                    f"roster; the coordinator can add it with "
                    f"'lifeline units add-email'",
                )
            )

        found = []
        for attachment, table in tables:
            report = self._report(outcome, decoded, attachment, table, received, sender_unit)
            if report is not None:
                found.append((attachment.filename, report))

        by_month: dict[tuple[int, str], list[Report]] = {}
        for report in _latest_per_unit(found):
            by_month.setdefault((report.unit_id, report.period), []).append(report)

        reports = []
        for versions in by_month.values():
            if all(v.values == versions[0].values for v in versions):
                reports.append(versions[0])  # the same table twice (.xlsx and .xls)
                continue
            # Two different tables for one unit and month in one mail: no
            # way to tell which is meant, and a wrong figure is worse than
            # a missing one.
            names = "、".join(v.attachment for v in versions)
            outcome.problems.append(
                Issue(
                    "conflicting-tables",
                    f"{names}: different figures for {versions[0].unit.name} "
                    f"{versions[0].period} in one mail; none is stored; send "
                    f"the one table that is right",
                )
            )
        return reports

    def _report(
        self,
        outcome: Outcome,
        decoded: DecodedMail,
        attachment: Attachment,
        table: Table,
        received: dt.datetime,
        sender_unit: Unit | None,
    ) -> Report | None:
        outcome.problems += [
            Issue(p.code, f"{attachment.filename}: {p.message}") for p in table.problems
        ]
        if not _usable(table):
            return None

        warnings = list(table.warnings)
        unit = self._unit(decoded, table, sender_unit, warnings)
        if unit is None:
            outcome.problems.append(
                Issue(
                    "unit-unknown",
                    f"{attachment.filename}: cannot tell which unit sent it "
                    f"(报送单位 {table.unit_name or 'empty'}, sender "
                    f"{decoded.sender}); held for the coordinator",
                )
            )
            return None

        local = received.astimezone(self.config.tz)
        choice = periods.choose(
            local,
            title=table.period,
            subject=periods.month_in_text(decoded.subject, "subject"),
            filename=periods.month_in_text(attachment.filename, "file name"),
            reported_on=table.reported_on,
        )
        warnings += choice.warnings
        return Report(
            unit_id=unit.id,
            unit=unit,
            period=choice.period,
            received_at=to_db(received),
            on_time=periods.on_time(
                received, choice.period, self.config.reporting.deadline_day, self.config.tz
            ),
            attachment=attachment.filename,
            sheet=table.sheet,
            cells=table.cells,
            values=dict(table.values),
            rows=[row.as_json() for row in table.rows],
            warnings=[w.as_json() for w in warnings],
        )

    def _unit(
        self,
        decoded: DecodedMail,
        table: Table,
        sender_unit: Unit | None,
        warnings: list[Issue],
    ) -> Unit | None:
        named = self.roster.match_name(table.unit_name)
        if named is None and table.unit_name:
            warnings.append(
                Issue(
                    "unknown-unit-name",
                    f"报送单位 {table.unit_name} is not a unit of the roster; "
                    f"filed under the sender's unit",
                )
            )
        if named is None:
            return sender_unit or self.roster.match_name(decoded.sender_name)

        if sender_unit is not None and sender_unit.id != named.id:
            warnings.append(
                Issue(
                    "unit-sender-mismatch",
                    f"the table names {named.name} but the sender "
                    f"{decoded.sender} belongs to {sender_unit.name}; "
                    f"filed under {named.name}",
                )
            )
        return named

    def _failed(
        self,
        session: Session,
        incoming: Incoming,
        sha256: str,
        raw_path: str,
        exc: Exception,
    ) -> Outcome:
        received = incoming.received_at or dt.datetime.now(dt.UTC)
        with session.begin_nested():
            mail = Mail(
                sha256=sha256,
                message_id=None,
                source=incoming.label,
                raw_path=raw_path,
                size=len(incoming.raw),
                received_at=to_db(received),
                outcome="failed",
                reports=[],
                problems=[],
            )
            if incoming.location is not None:
                session.add(_location(mail, incoming.location))
            issue = Issue(
                "processing-error",
                f"lifeline could not process this mail ({type(exc).__name__}: "
                f"{exc}); it is kept raw as {raw_path} for the coordinator",
            )
            outcome = Outcome(incoming.label, mail, "failed", problems=[issue])
            _record_problems(outcome)
            session.add_all([mail, *mail.problems])
            session.flush()
            self._queue_notices(session, [outcome])
        return outcome


def _read_all(
    mails: list[tuple[bytes, SplitMail | None]], max_attachment_bytes: int
) -> list[_Contents | Exception]:
    """Decode mails and read their tables: the part of ingest that needs
    no database, run in a reading process for a backlog."""
    found: list[_Contents | Exception] = []
    for raw, parts in mails:
        try:
            decoded = decode_mail(
                raw, split=parts, max_attachment_bytes=max_attachment_bytes
            )
            problems = list(decoded.problems)
            tables = _read(decoded, problems)
            found.append(_without_files(_Contents(decoded, tables, problems)))
        except Exception as exc:  # noqa: BLE001 - a bad mail becomes its problem
            found.append(exc)
    return found


def _without_files(contents: _Contents) -> _Contents:
    """``contents`` without the files' bytes: once read, only their names
    are needed, and a backlog's reading process would send every file back
    to be unpickled and held until its batch is stored."""
    emptied = {id(a): replace(a, content=b"") for a in contents.decoded.attachments}
    contents.decoded.attachments = list(emptied.values())
    contents.tables = [
        (emptied.get(id(attachment)) or replace(attachment, content=b""), table)
        for attachment, table in contents.tables
    ]
    return contents


def _read(decoded: DecodedMail, problems: list[Issue]) -> list[tuple[Attachment, Table]]:
    if not decoded.attachments and not decoded.problems:
        problems.append(
            Issue(
                "no-attachment",
                "the mail has no table attached (photos and links are not "
                "read); attach the filled-in statistics table (.xlsx, .xls or "
                ".docx) and send it again",
            )
        )
        return []

    tables = []
    for attachment in decoded.attachments:
        if not attachment.content:
            problems.append(
                Issue(
                    "unreadable-file",
                    f"{attachment.filename}: the file is empty (0 bytes); "
                    f"attach the filled-in table again",
                )
            )
            continue
        try:
            found = read_tables(attachment.filename, attachment.content)
        except NotATable:
            logger.debug("%s is not a table", attachment.filename)
            continue
        except TableError as exc:
            problems.append(Issue(exc.code, str(exc)))
            continue
        tables += [(attachment, table) for table in found]

    if decoded.attachments and not tables and not problems:
        names = "、".join(a.filename for a in decoded.attachments)
        problems.append(
            Issue(
                "no-table",
                f"none of the attachments ({names}) holds the statistics "
                f"table; attach the filled-in table and send it again",
            )
        )
    return tables


# Problems that make a table's figures untrustworthy: such a table is not
# stored, so it can never replace a good earlier report; the sender is told
# which cells to fix. (A negative figure is kept as read, with its problem.)
_REFUSING = frozenset({"not-a-number", "empty-table"})


def _usable(table: Table) -> bool:
    return bool(table.rows) and not any(p.code in _REFUSING for p in table.problems)


def _latest_per_unit(reports: list[tuple[str, Report]]) -> list[Report]:
    """One report per unit and file: the latest month's. A workbook often
    keeps last month's sheet beside this month's; the older copy must not
    be filed again, least of all as a correction."""
    best: dict[tuple[str, int], Report] = {}
    for attachment, report in reports:
        key = (attachment, report.unit_id)
        if key not in best or report.period > best[key].period:
            best[key] = report
    kept = list(best.values())
    for attachment, report in reports:
        if report not in kept:
            chosen = best[(attachment, report.unit_id)]
            chosen.warnings = [
                *chosen.warnings,
                Issue(
                    "sheet-ignored",
                    f"{attachment}: sheet {report.sheet} ({report.period}) was "
                    f"not read as a report: the file's sheet {chosen.sheet} is "
                    f"for a later month ({chosen.period})",
                ).as_json(),
            ]
    return [report for _, report in reports if report in kept]


def _same_mail(stored: list[Mail], read: _Read) -> Mail | None:
    """The mail of ``stored`` (all with ``read``'s Message-ID) that ``read``
    is again under other bytes (a server rewrote its line ends, say): same
    sender and subject. A different mail that reuses a Message-ID is taken
    on its own."""
    decoded = read.outcome.decoded
    if not stored:
        return None
    if decoded is None:
        return stored[0]
    for mail in stored:
        if (mail.sender, mail.subject) == (decoded.sender, decoded.subject):
            return mail
    logger.warning(
        "%s: Message-ID %s was used before by another mail (mail %s); taken "
        "as a new mail", read.incoming.label, stored[0].message_id, stored[0].id,
    )
    return None


def _verdict(outcome: Outcome) -> str:
    if outcome.filed:
        return "stored"
    if any(p.code == "unit-unknown" for p in outcome.problems):
        return "held"
    return "problem"


def _record_problems(outcome: Outcome) -> None:
    """Set the outcome's problems on its mail, as rows."""
    assert outcome.mail is not None
    first = outcome.filed[0].report if outcome.filed else None
    # With no report, the problem belongs to the sender's unit, if known.
    unit_id = first.unit_id if first else outcome.sender_unit_id
    for issue in outcome.problems:
        Problem(
            mail=outcome.mail,
            unit_id=unit_id,
            period=first.period if first else None,
            code=issue.code,
            message=issue.message,
        )


def _add_location(session: Session, mail: Mail, where: Location) -> None:
    """Record where a known mail was seen again, unless recorded already."""
    exists = session.scalar(
        select(MailLocation.id).where(
            MailLocation.account == where.account,
            MailLocation.folder == where.folder,
            MailLocation.uidvalidity == where.uidvalidity,
            MailLocation.uid == where.uid,
        )
    )
    if exists is None:
        session.add(_location(mail, where))


def _location(mail: Mail, where: Location) -> MailLocation:
    """Where a mail was found, as a row; for a new mail no lookup is
    needed, as it cannot have been seen there before."""
    return MailLocation(
        mail=mail,
        account=where.account,
        folder=where.folder,
        uidvalidity=where.uidvalidity,
        uid=where.uid,
    )


_FOLD = re.compile(rb"\r?\n(?=[ \t])")


def _message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block, cheaply, before decoding."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    # Mailers fold a long Message-ID onto the next line ("Message-ID:"
    # alone, the id indented below it): unfolded, it is found as stored.
    for line in _FOLD.sub(b" ", head).splitlines():
        if line[:11].lower() == b"message-id:":
            value = line[11:].strip().decode("ascii", "replace")
            return value or None
    return None


def _received_at(incoming: Incoming, decoded: DecodedMail | None) -> dt.datetime:
    """INTERNALDATE for mail from the server; for imported files the
    topmost Received: header (what the inbox's server stamped), else
    Date:, else now."""
    stamped = (decoded.received_at, decoded.date) if decoded else ()
    for moment in (incoming.received_at, *stamped):
        if moment is not None:
            return moment
    return dt.datetime.now(dt.UTC)


def _log_outcome(outcome: Outcome) -> None:
    sender = outcome.decoded.sender if outcome.decoded else "?"
    codes = ",".join(p.code for p in outcome.problems) or "-"
    if not outcome.filed:
        logger.info(
            "%s: from %s unit - period -: %s (problems %s)",
            outcome.label, sender, outcome.outcome, codes,
        )
    for filed in outcome.filed:
        report = filed.report
        timing = "on time" if report.on_time else "late"
        logger.info(
            "%s: from %s unit %s period %s: %s, %s%s (problems %s)",
            outcome.label, sender, report.unit.name, report.period,
            outcome.outcome, timing,
            ", supersedes an earlier version" if filed.supersedes else "",
            codes,
        )
    for notice in outcome.notices:
        notices.log_queued(notice)
