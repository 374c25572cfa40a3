"""The naive baseline: what people write by hand to take tables from a mailbox.

imaplib, SEARCH ALL, then FETCH RFC822 one message at a time (which marks
each mail \\Seen, as a plain SELECT allows), ``email`` parsing with
decode_header for the file name, openpyxl for the first .xlsx attachment,
and one ORM commit per report into a SQLite file.
"""

from __future__ import annotations

import email
import email.header
import imaplib
import io
from pathlib import Path

import openpyxl
from sqlalchemy import JSON, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


class Base(DeclarativeBase):
    pass


class NaiveReport(Base):
    __tablename__ = "naive_report"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255))
    sender: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(255))
    figures: Mapped[list[float]] = mapped_column(JSON)


def run(host: str, port: int, user: str, password: str, database: Path) -> tuple[int, int]:
    """Take every mail in INBOX; returns (mails read, reports stored)."""
    engine = create_engine(f"sqlite:///{database}")
    Base.metadata.create_all(engine)
    connection = imaplib.IMAP4(host, port)
    connection.login(user, password)
    connection.select("INBOX")

    _, data = connection.search(None, "ALL")
    numbers = data[0].split()
    stored = 0
    for number in numbers:
        _, fetched = connection.fetch(number, "(RFC822)")
        stored += _take(engine, email.message_from_bytes(fetched[0][1]))

    connection.logout()
    engine.dispose()
    return len(numbers), stored


def _take(engine: object, message: email.message.Message) -> int:
    for part in message.walk():
        filename = _decoded(part.get_filename() or "")
        if not filename.lower().endswith(".xlsx"):
            continue
        figures = _figures(part.get_payload(decode=True))
        with Session(engine) as session:  # type: ignore[call-overload]
            session.add(NaiveReport(
                message_id=message.get("Message-ID", ""),
                sender=_decoded(message.get("From", "")),
                subject=_decoded(message.get("Subject", "")),
                filename=filename,
                figures=figures,
            ))
            session.commit()
        return 1
    return 0


def _figures(content: bytes) -> list[float]:
    """The sum of each figure column over the rows whose figures are numbers."""
    workbook = openpyxl.load_workbook(io.BytesIO(content), data_only=True)
    totals = [0.0] * 11
    for row in workbook.active.iter_rows(values_only=True):
        label, values = row[0], row[1:12]
        if label == "合计" or not all(isinstance(v, int | float) for v in values):
            continue
        totals = [total + value for total, value in zip(totals, values)]
    return totals


def _decoded(value: str) -> str:
    return str(email.header.make_header(email.header.decode_header(value)))
