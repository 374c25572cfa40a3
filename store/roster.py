"""The roster of units in the database: import, look-up, changes.

Importing never deletes a unit: a unit missing from a new roster file is
retired from a given month on, so its reports and history stay.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.units import Roster
from lifeline.errors import ConfigError
from store.models import RosterChange, Unit, UnitAlias, UnitEmail

logger = logging.getLogger(__name__)

COLUMNS = ("name", "aliases", "emails", "kind")


@dataclass(frozen=True)
class RosterEntry:
    name: str
    aliases: tuple[str, ...]
    emails: tuple[str, ...]
    kind: str


def read_file(path: Path) -> list[RosterEntry]:
    """Roster rows from a CSV (UTF-8 or GBK) or an XLSX file with the
    columns name, aliases, emails, kind (lists separated by ``|``)."""
    rows: list[list[object]]
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            rows = _xlsx_rows(path)
        else:
            rows = list(_csv_rows(path.read_bytes()))
    except OSError as exc:
        raise ConfigError(f"roster.file: cannot read {path} ({exc.strerror})") from exc

    header = [str(c or "").strip().lower() for c in rows[0]] if rows else []
    missing = [c for c in ("name", "emails") if c not in header]
    if missing:
        raise ConfigError(
            f"{path}: the first row must name the columns "
            f"{', '.join(COLUMNS)}; missing: {', '.join(missing)}"
        )
    return [
        _entry(dict(zip(header, row)), path, number)
        for number, row in enumerate(rows[1:], start=2)
        if any(str(c or "").strip() for c in row)
    ]


def _csv_rows(data: bytes) -> list[list[object]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    return [list(row) for row in csv.reader(io.StringIO(text))]


def _xlsx_rows(path: Path) -> list[list[object]]:
    import openpyxl  # only the xlsx roster needs it

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        return [list(row) for row in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()


def _split(value: object) -> tuple[str, ...]:
    return tuple(p.strip() for p in str(value or "").split("|") if p.strip())


def _entry(row: dict[str, object], path: Path, number: int) -> RosterEntry:
    name = str(row.get("name") or "").strip()
    if not name:
        raise ConfigError(f"{path}, row {number}: the unit has no name")
    return RosterEntry(
        name=name,
        aliases=_split(row.get("aliases")),
        emails=tuple(e.lower() for e in _split(row.get("emails"))),
        kind=str(row.get("kind") or "").strip(),
    )


def sync(
    session: Session,
    entries: list[RosterEntry],
    retire_from: str | None = None,
    *,
    reinstate: bool = False,
) -> list[str]:
    """Bring the database roster in line with ``entries``; returns the
    changes made, one line each. Units missing from ``entries`` are retired
    from ``retire_from`` on when it is given, else left as they are; a
    retired unit listed again is reinstated only when ``reinstate`` (an
    explicit import), not by the roster file loaded at every start."""
    existing = {u.name: u for u in session.scalars(select(Unit))}
    changes: list[str] = []
    for entry in entries:
        unit = existing.get(entry.name)
        if unit is None:
            unit = Unit(name=entry.name, kind=entry.kind)
            session.add(unit)
            changes.append(_log(session, entry.name, "added", entry.kind))
        changes += _update(session, unit, entry, reinstate)

    if retire_from:
        listed = {e.name for e in entries}
        for name, unit in existing.items():
            if name not in listed and not unit.retired_from:
                unit.retired_from = retire_from
                changes.append(_log(session, name, "retired", f"from {retire_from}"))
    session.flush()
    return changes


def _update(
    session: Session, unit: Unit, entry: RosterEntry, reinstate: bool
) -> list[str]:
    changes = []
    if unit.retired_from and reinstate:
        unit.retired_from = None
        changes.append(_log(session, unit.name, "reinstated", ""))
    if entry.kind and unit.kind != entry.kind:
        unit.kind = entry.kind
    aliases = {a.alias for a in unit.aliases}
    for alias in entry.aliases:
        if alias not in aliases:
            unit.aliases.append(UnitAlias(alias=alias))
            changes.append(_log(session, unit.name, "alias added", alias))
    emails = {e.address for e in unit.emails}
    for address in entry.emails:
        if address not in emails:
            unit.emails.append(UnitEmail(address=address))
            changes.append(_log(session, unit.name, "email added", address))
    return changes


def _log(session: Session, unit_name: str, action: str, detail: str) -> str:
    session.add(RosterChange(unit_name=unit_name, action=action, detail=detail))
    return f"{unit_name}: {action} {detail}".rstrip()


def add_email(session: Session, unit: Unit, address: str) -> str | None:
    address = address.strip().lower()
    if any(e.address == address for e in unit.emails):
        return None
    unit.emails.append(UnitEmail(address=address))
    return _log(session, unit.name, "email added", address)


def retire(session: Session, unit: Unit, period: str) -> str:
    unit.retired_from = period
    return _log(session, unit.name, "retired", f"from {period}")


def changes_for(session: Session, unit_name: str) -> list[RosterChange]:
    return list(
        session.scalars(
            select(RosterChange)
            .where(RosterChange.unit_name == unit_name)
            .order_by(RosterChange.id)
        )
    )


def load(session: Session) -> Roster[Unit]:
    """The roster index used to name units, retired units included (an
    old mail may still arrive from them)."""
    roster: Roster[Unit] = Roster()
    for unit in session.scalars(select(Unit).order_by(Unit.id)):
        roster.add(
            unit,
            [unit.name, *(a.alias for a in unit.aliases)],
            [e.address for e in unit.emails],
        )
    return roster


def find(session: Session, name: str) -> Unit | None:
    unit = session.scalar(select(Unit).where(Unit.name == name))
    if unit is not None:
        return unit
    matched = load(session).match_name(name)
    return None if matched is None else session.get(Unit, matched.id)


def all_units(session: Session) -> list[Unit]:
    return list(session.scalars(select(Unit).order_by(Unit.id)))
