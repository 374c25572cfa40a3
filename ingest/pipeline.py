"""One mail in, reports and problems out: the ingest steps in order.

    keep raw → skip if seen → decode → read tables → name unit and period
    → store reports and problems → hand over for notices

Each mail runs inside its own savepoint, so a mail that fails any step is
rolled back alone, kept raw with its problem, and the batch goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from ingest import period as periods
from ingest.mail import DecodedMail, decode_mail
from ingest.model import Attachment, Issue, Table
from ingest.tables import read_tables
from ingest.units import Roster
from lifeline.config import Config
from lifeline.errors import NotATable, TableError
from store import rawmail
from store import reports as report_store
from store.models import Mail, MailLocation, Problem, Report, Unit, to_db

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
    """A raw mail as a source hands it over."""

    raw: bytes
    label: str
    received_at: dt.datetime | None = None
    location: Location | None = None


@dataclass
class Filed:
    """One report as the JSON contract shows it."""

    report: Report
    supersedes: Report | None = None


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


# Called with every new mail's outcome, inside the mail's savepoint, so a
# notice is queued in the same transaction as the report it is about.
AfterMail = Callable[[Session, Outcome], None]


class Ingest:
    """Takes raw mails into the store, one savepoint each."""

    def __init__(
        self, config: Config, roster: Roster[Unit], after_mail: AfterMail | None = None
    ) -> None:
        self.config = config
        self.roster = roster
        self.after_mail = after_mail
        self.data_dir = config.data_dir

    def take(self, session: Session, incoming: Incoming) -> Outcome:
        """Store one mail and everything read from it. Never raises for a
        bad mail: a failure becomes the mail's problem."""
        sha256, raw_path = rawmail.save(self.data_dir, incoming.raw)

        seen = self._seen(session, sha256, incoming)
        if seen is not None:
            return seen

        try:
            with session.begin_nested():
                outcome = self._process(session, incoming, sha256, raw_path)
        except OperationalError:
            # The database, not the mail, is at fault (locked, gone away):
            # the mail is not recorded, so the next poll takes it again.
            raise
        except Exception as exc:
            logger.exception("%s: failed, kept raw as %s", incoming.label, raw_path)
            outcome = self._failed(session, incoming, sha256, raw_path, exc)

        _log_outcome(outcome, self.config)
        return outcome

    def _seen(
        self, session: Session, sha256: str, incoming: Incoming
    ) -> Outcome | None:
        mail = session.scalar(select(Mail).where(Mail.sha256 == sha256))
        if mail is None:
            message_id = _message_id(incoming.raw)
            if message_id:
                mail = session.scalar(
                    select(Mail).where(Mail.message_id == message_id).limit(1)
                )
        if mail is None:
            return None

        if incoming.location is not None:
            _add_location(session, mail, incoming.location)
        logger.info("%s: already taken as mail %d, skipped", incoming.label, mail.id)
        return Outcome(incoming.label, mail, "duplicate")

    def _process(
        self, session: Session, incoming: Incoming, sha256: str, raw_path: str
    ) -> Outcome:
        decoded = decode_mail(
            incoming.raw,
            max_attachment_bytes=self.config.mailbox.max_attachment_bytes,
        )
        received = _received_at(incoming, decoded)
        mail = Mail(
            sha256=sha256,
            message_id=decoded.message_id,
            source=incoming.label,
            raw_path=raw_path,
            size=len(incoming.raw),
            sender=decoded.sender,
            sender_name=decoded.sender_name,
            subject=decoded.subject,
            received_at=to_db(received),
        )
        session.add(mail)
        if incoming.location is not None:
            _add_location(session, mail, incoming.location)
        session.flush()

        outcome = Outcome(incoming.label, mail, "stored", decoded=decoded)
        outcome.problems += decoded.problems
        tables = self._read(decoded, outcome)
        self._file(session, outcome, decoded, tables, received)
        outcome.outcome = _verdict(outcome)
        mail.outcome = outcome.outcome
        _record_problems(session, outcome)

        if self.after_mail is not None:
            self.after_mail(session, outcome)
        return outcome

    def _read(
        self, decoded: DecodedMail, outcome: Outcome
    ) -> list[tuple[Attachment, Table]]:
        if not decoded.attachments and not decoded.problems:
            outcome.problems.append(
                Issue(
                    "no-attachment",
                    "the mail has no attachment; attach the filled-in "
                    "statistics table (.xlsx, .xls or .docx) and send it again",
                )
            )
            return []

        tables = []
        for attachment in decoded.attachments:
            try:
                found = read_tables(attachment.filename, attachment.content)
            except NotATable:
                logger.debug("%s: %s is not a table", outcome.label, attachment.filename)
                continue
            except TableError as exc:
                outcome.problems.append(Issue(exc.code, str(exc)))
                continue
            tables += [(attachment, table) for table in found]

        if decoded.attachments and not tables and not outcome.problems:
            names = "、".join(a.filename for a in decoded.attachments)
            outcome.problems.append(
                Issue(
                    "no-table",
                    f"none of the attachments ({names}) holds the statistics "
                    f"table; attach the filled-in table and send it again",
                )
            )
        return tables

    def _file(
        self,
        session: Session,
        outcome: Outcome,
        decoded: DecodedMail,
        tables: list[tuple[Attachment, Table]],
        received: dt.datetime,
    ) -> None:
        sender_unit = self.roster.match_address(decoded.sender)
        outcome.sender_known = sender_unit is not None
        if tables and sender_unit is None:
            outcome.problems.append(
                Issue(
                    "unknown-sender",
                    f"the sender {decoded.sender or '(none)'} is not in the "
                    f"roster; the coordinator can add it with "
                    f"'lifeline units add-email'",
                )
            )

        seen: set[tuple[int, str, str]] = set()
        for attachment, table in tables:
            report = self._report(outcome, decoded, attachment, table, received, sender_unit)
            if report is None:
                continue
            key = (report.unit_id, report.period, repr(sorted(report.values.items())))
            if key in seen:
                continue  # the same table twice in one mail (.xlsx and .xls)
            seen.add(key)
            assert outcome.mail is not None
            report.mail = outcome.mail
            supersedes = report_store.add(session, report)
            outcome.filed.append(Filed(report, supersedes))

    def _report(
        self,
        outcome: Outcome,
        decoded: DecodedMail,
        attachment: Attachment,
        table: Table,
        received: dt.datetime,
        sender_unit: Unit | None,
    ) -> Report | None:
        warnings = list(table.warnings)
        unit = self._unit(decoded, table, sender_unit, warnings)
        outcome.problems += [
            Issue(p.code, f"{attachment.filename}: {p.message}") for p in table.problems
        ]
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
            )
            session.add(mail)
            if incoming.location is not None:
                _add_location(session, mail, incoming.location)
            session.flush()
            issue = Issue(
                "processing-error",
                f"lifeline could not process this mail ({type(exc).__name__}: "
                f"{exc}); it is kept raw as {raw_path} for the coordinator",
            )
            outcome = Outcome(incoming.label, mail, "failed", problems=[issue])
            _record_problems(session, outcome)
            if self.after_mail is not None:
                self.after_mail(session, outcome)
        return outcome


def _verdict(outcome: Outcome) -> str:
    if outcome.filed:
        return "stored"
    if any(p.code == "unit-unknown" for p in outcome.problems):
        return "held"
    return "problem"


def _record_problems(session: Session, outcome: Outcome) -> None:
    assert outcome.mail is not None
    first = outcome.filed[0].report if outcome.filed else None
    for issue in outcome.problems:
        session.add(
            Problem(
                mail=outcome.mail,
                unit_id=first.unit_id if first else None,
                period=first.period if first else None,
                code=issue.code,
                message=issue.message,
            )
        )


def _add_location(session: Session, mail: Mail, where: Location) -> None:
    exists = session.scalar(
        select(MailLocation.id).where(
            MailLocation.account == where.account,
            MailLocation.folder == where.folder,
            MailLocation.uidvalidity == where.uidvalidity,
            MailLocation.uid == where.uid,
        )
    )
    if exists is None:
        session.add(
            MailLocation(
                mail=mail,
                account=where.account,
                folder=where.folder,
                uidvalidity=where.uidvalidity,
                uid=where.uid,
            )
        )


def _message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block, cheaply, before decoding."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    for line in head.splitlines():
        if line[:11].lower() == b"message-id:":
            value = line[11:].strip().decode("ascii", "replace")
            return value or None
    return None


def _received_at(incoming: Incoming, decoded: DecodedMail) -> dt.datetime:
    """INTERNALDATE for mail from the server; for imported files the
    topmost Received: header (what the inbox's server stamped), else
    Date:, else now."""
    for moment in (incoming.received_at, decoded.received_at, decoded.date):
        if moment is not None:
            return moment
    return dt.datetime.now(dt.UTC)


def _log_outcome(outcome: Outcome, config: Config) -> None:
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
