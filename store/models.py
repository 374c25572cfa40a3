"""The database tables, as SQLAlchemy 2 declarative models.

Times are stored as naive UTC (SQLite keeps no zone); ``utc()`` turns them
back into aware datetimes. Figures and issues are JSON so the table's eleven
keys are stored exactly as the JSON contract names them.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def to_db(moment: dt.datetime) -> dt.datetime:
    """An aware datetime as the naive UTC the database keeps."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def utc(moment: dt.datetime) -> dt.datetime:
    """A datetime read from the database, made aware again."""
    return moment.replace(tzinfo=dt.UTC)


class Unit(Base):
    """A reporting unit of the roster (a township, street office or
    department). Retired units keep their history."""

    __tablename__ = "unit"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(50), default="")
    active_from: Mapped[str | None] = mapped_column(String(7))
    retired_from: Mapped[str | None] = mapped_column(String(7))

    aliases: Mapped[list[UnitAlias]] = relationship(
        back_populates="unit", cascade="all, delete-orphan", lazy="selectin"
    )
    emails: Mapped[list[UnitEmail]] = relationship(
        back_populates="unit", cascade="all, delete-orphan", lazy="selectin"
    )

    def active_in(self, period: str) -> bool:
        if self.active_from and period < self.active_from:
            return False
        return not (self.retired_from and period >= self.retired_from)


class UnitAlias(Base):
    __tablename__ = "unit_alias"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    alias: Mapped[str] = mapped_column(String(200))

    unit: Mapped[Unit] = relationship(back_populates="aliases")


class UnitEmail(Base):
    __tablename__ = "unit_email"

    id: Mapped[int] = mapped_column(primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    address: Mapped[str] = mapped_column(String(320), index=True)

    unit: Mapped[Unit] = relationship(back_populates="emails")


class RosterChange(Base):
    """One change to the roster, so its history can be read back."""

    __tablename__ = "roster_change"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    unit_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(50))
    detail: Mapped[str] = mapped_column(Text, default="")


class MailboxState(Base):
    """How far lifeline has read one folder of one account."""

    __tablename__ = "mailbox_state"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    folder: Mapped[str] = mapped_column(String(200), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer, default=0)
    last_uid: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    stale_notice_sent: Mapped[bool] = mapped_column(Boolean, default=False)


class Mail(Base):
    """One mail lifeline took, whatever became of it. The raw bytes are in
    the data directory under ``raw_path``."""

    __tablename__ = "mail"

    id: Mapped[int] = mapped_column(primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(998), index=True)
    source: Mapped[str] = mapped_column(String(400))
    raw_path: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(Integer)
    sender: Mapped[str] = mapped_column(String(320), default="")
    sender_name: Mapped[str] = mapped_column(String(400), default="")
    subject: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)
    taken_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(30), default="new")

    reports: Mapped[list[Report]] = relationship(
        back_populates="mail", order_by="Report.id"
    )
    problems: Mapped[list[Problem]] = relationship(
        back_populates="mail", order_by="Problem.id"
    )


class MailLocation(Base):
    """Where a mail was seen: (account, folder, UIDVALIDITY, UID)."""

    __tablename__ = "mail_location"
    __table_args__ = (
        UniqueConstraint("account", "folder", "uidvalidity", "uid"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(ForeignKey("mail.id"))
    account: Mapped[str] = mapped_column(String(320))
    folder: Mapped[str] = mapped_column(String(200))
    uidvalidity: Mapped[int] = mapped_column(Integer)
    uid: Mapped[int] = mapped_column(Integer)

    mail: Mapped[Mail] = relationship()


class Report(Base):
    """One unit's figures for one month, from one table of one mail.

    Every version is kept; ``current`` marks the one received last.
    """

    __tablename__ = "report"
    __table_args__ = (Index("ix_report_unit_period", "unit_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(ForeignKey("mail.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    period: Mapped[str] = mapped_column(String(7), index=True)
    received_at: Mapped[dt.datetime] = mapped_column(DateTime)
    on_time: Mapped[bool] = mapped_column(Boolean)
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    attachment: Mapped[str] = mapped_column(String(400))
    sheet: Mapped[str | None] = mapped_column(String(200))
    cells: Mapped[str | None] = mapped_column(String(200))
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    rows: Mapped[list[Any]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)

    mail: Mapped[Mail] = relationship(back_populates="reports")
    unit: Mapped[Unit] = relationship(lazy="joined")


class Problem(Base):
    """Something wrong with a mail that a person should see."""

    __tablename__ = "problem"

    id: Mapped[int] = mapped_column(primary_key=True)
    mail_id: Mapped[int] = mapped_column(ForeignKey("mail.id"), index=True)
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    period: Mapped[str | None] = mapped_column(String(7))
    code: Mapped[str] = mapped_column(String(60))
    message: Mapped[str] = mapped_column(Text)
    attachment: Mapped[str | None] = mapped_column(String(400))

    mail: Mapped[Mail] = relationship(back_populates="problems")


class Notice(Base):
    """One outgoing mail, queued in the same transaction as its cause.

    ``key`` (kind:unit:period:step) is unique, so the same notice can never
    be queued twice, whatever restarts or second instances do.
    """

    __tablename__ = "notice"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(400), unique=True)
    kind: Mapped[str] = mapped_column(String(30))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("unit.id"))
    period: Mapped[str | None] = mapped_column(String(7))
    mail_id: Mapped[int | None] = mapped_column(ForeignKey("mail.id"))
    recipients: Mapped[list[str]] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    message_id: Mapped[str | None] = mapped_column(String(400))


class Lease(Base):
    """A named lock with an expiry, so two daemons on one database never
    poll or send at the same time."""

    __tablename__ = "lease"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)
