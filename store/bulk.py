"""Many new mails stored at once.

For a backlog, the ORM's bookkeeping per object costs more than the rows
themselves: the new mails of a chunk, their reports, problems and
locations go in with one INSERT per table instead, and the objects are
then attached to the session as the stored rows they now are. The rest of
the transaction (a later version superseding one of them, the notices)
sees them exactly as if the ORM had stored them.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, TypeVar

from sqlalchemy import insert
from sqlalchemy.orm import ColumnProperty, Session, make_transient_to_detached

from lifeline.errors import StoreError
from store.models import Base, Mail, MailLocation, Problem, Report

T = TypeVar("T", bound=Base)


def insert_mails(
    session: Session, mails: list[Mail], locations: list[MailLocation]
) -> list[Base]:
    """Insert new ``mails`` with their reports and problems (set on them,
    not yet in any session) and ``locations`` (whose ``mail`` is one of
    ``mails``). Returns the objects now in the session: a caller whose
    savepoint rolls back must expunge them, as their rows are gone."""
    if not mails:
        return []
    _insert_with_ids(session, Mail, mails)

    reports = [report for mail in mails for report in mail.reports]
    problems = [problem for mail in mails for problem in mail.problems]
    for child in (*reports, *problems, *locations):
        child.mail_id = child.mail.id
    _insert_with_ids(session, Report, reports)
    _insert_with_ids(session, Problem, problems)
    if locations:
        session.execute(
            insert(MailLocation.__table__), [_row(MailLocation, loc) for loc in locations]
        )

    attached: list[Base] = [*reports, *problems, *mails]
    for obj in attached:
        make_transient_to_detached(obj)
    session.add_all(mails)  # and with them their reports and problems
    return attached


# Columns that tell the rows of one INSERT apart, so that each id it
# returns finds its object: RETURNING gives no order, and asking for one
# makes SQLAlchemy insert row by row on SQLite. Problems alike in every
# column are interchangeable, so which gets which id does not matter.
_KEYS: dict[type[Base], tuple[str, ...]] = {
    Mail: ("sha256",),
    Report: ("mail_id", "unit_id", "period", "attachment", "sheet"),
    Problem: ("mail_id", "unit_id", "period", "code", "message", "attachment"),
}


def _insert_with_ids(session: Session, model: type[T], objects: list[T]) -> None:
    if not objects:
        return
    table = model.__table__
    key = _KEYS[model]
    rows = [_row(model, obj) for obj in objects]
    waiting: dict[tuple[Any, ...], list[T]] = defaultdict(list)
    for obj, row in zip(objects, rows):
        waiting[tuple(row[column] for column in key)].append(obj)

    statement = insert(table).returning(table.c.id, *(table.c[k] for k in key))
    for new_id, *values in session.execute(statement, rows):
        waiting[tuple(values)].pop().id = new_id  # type: ignore[attr-defined]
    if any(waiting.values()):
        raise StoreError(f"{table.name}: the database returned fewer ids than rows inserted")


def _row(model: type[Base], obj: Base) -> dict[str, Any]:
    """Every column but the key, defaults filled in on ``obj`` too, so
    every row has the same keys and no attribute is left to load."""
    row = {}
    for prop in model.__mapper__.column_attrs:
        if prop.key == "id":
            continue
        if prop.key not in obj.__dict__:
            setattr(obj, prop.key, _default(prop))
        row[prop.key] = obj.__dict__[prop.key]
    return row


def _default(prop: ColumnProperty[Any]) -> Any:
    default = prop.columns[0].default
    if default is None:
        return None
    if default.is_callable:
        return default.arg(None)  # type: ignore[attr-defined]
    return default.arg  # type: ignore[attr-defined]
