"""The roster of units in the database: import, look-up, changes.

Importing never deletes a unit: a unit missing from a new roster file is
retired from a given month on, so its reports and history stay. A name,
alias or address must lead to one unit only, or mail could not be told
apart: a roster that says otherwise is refused before anything is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ingest.units import Roster, fold
from lifeline.config import is_address
from lifeline.errors import ConfigError, LifelineError
from store.models import RosterChange, Unit, UnitAlias, UnitEmail

logger = logging.getLogger(__name__)

COLUMNS = ("name", "aliases", "emails", "kind")


@dataclass(frozen=True)
class RosterEntry:
    name: str
    aliases: tuple[str, ...]
    emails: tuple[str, ...]
    kind: str
    # Where the entry was read ("roster.csv, row 3"), for error messages.
    where: str = field(default="", compare=False)


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
    entries = [
        _entry(dict(zip(header, row)), path, number)
        for number, row in enumerate(rows[1:], start=2)
        if any(str(c or "").strip() for c in row)
    ]
    _refuse_clashes(_clashes_within(entries))
    return entries


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
    emails = tuple(e.lower() for e in _split(row.get("emails")))
    for address in emails:
        if not is_address(address):
            raise ConfigError(
                f"{path}, row {number}: {address!r} ({name}) is not a mail "
                f"address; write it as name@example.cn, several separated by |"
            )
    return RosterEntry(
        name=name,
        aliases=_split(row.get("aliases")),
        emails=emails,
        kind=str(row.get("kind") or "").strip(),
        where=f"{path}, row {number}",
    )


def _names(entry: RosterEntry) -> set[str]:
    """The unit's name and aliases as the name matcher compares them."""
    return {key for key in map(fold, (entry.name, *entry.aliases)) if key}


def _clashes_within(entries: list[RosterEntry]) -> Iterator[str]:
    """Names (folded) and addresses that two entries claim."""
    by_name: dict[str, list[RosterEntry]] = defaultdict(list)
    by_address: dict[str, list[RosterEntry]] = defaultdict(list)
    for entry in entries:
        for key in _names(entry):
            by_name[key].append(entry)
        for address in set(entry.emails):
            by_address[address].append(entry)

    for key, claimants in by_name.items():
        if len(claimants) > 1:
            yield f"the name or alias {_as_written(key, claimants)} " + _on(claimants)
    for address, claimants in by_address.items():
        if len(claimants) > 1:
            yield f"the address {address} " + _on(claimants)


def _as_written(key: str, entries: list[RosterEntry]) -> str:
    """The forms of a folded name the entries use: 城关街道 / 城关街道办事处."""
    written = {
        text
        for entry in entries
        for text in (entry.name, *entry.aliases)
        if fold(text) == key
    }
    return " / ".join(sorted(written))


def _on(entries: list[RosterEntry]) -> str:
    rows = "; ".join(f"{entry.where or 'the roster'} ({entry.name})" for entry in entries)
    return f"is on {rows}"


def _refuse_clashes(clashes: Iterable[str]) -> None:
    found = list(clashes)
    if found:
        raise ConfigError(
            "roster: a name, alias or address may belong to one unit only, "
            "so that mail can be told apart; keep one row per unit and "
            "remove each of these from all units but one:\n  "
            + "\n  ".join(found)
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
    explicit import), not by the roster file loaded at every start.

    Raises ConfigError, having changed nothing, when two entries claim one
    name, alias or address, or an entry claims one of another unit in the
    database."""
    existing = {u.name: u for u in session.scalars(select(Unit))}
    _refuse_clashes(_clashes_within(entries))
    _refuse_clashes(_clashes_with_database(existing.values(), entries))

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


def _clashes_with_database(
    units: Iterable[Unit], entries: list[RosterEntry]
) -> Iterator[str]:
    """Names and addresses the entries claim that belong to another unit
    already in the database (adding would make a second owner)."""
    owner_of_name: dict[str, Unit] = {}
    owner_of_address: dict[str, Unit] = {}
    for unit in units:
        for text in (unit.name, *(alias.alias for alias in unit.aliases)):
            owner_of_name.setdefault(fold(text), unit)
        for email in unit.emails:
            owner_of_address.setdefault(email.address.lower(), unit)

    for entry in entries:
        where = entry.where or "the roster"
        for key in sorted(_names(entry)):
            owner = owner_of_name.get(key)
            if owner is not None and owner.name != entry.name:
                yield (
                    f"{where} ({entry.name}): the name or alias "
                    f"{_as_written(key, [entry])} is already {owner.name}'s "
                    "in the database"
                )
        for address in entry.emails:
            owner = owner_of_address.get(address)
            if owner is not None and owner.name != entry.name:
                yield (
                    f"{where} ({entry.name}): the address {address} is already "
                    f"{owner.name}'s in the database"
                )


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


_FILE_LOADED = "file loaded"


def sync_file(session: Session, path: Path) -> list[str]:
    """``sync`` with the entries of ``path``, unless this very content was
    the last one loaded (recorded in the roster's history by its hash)."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"roster.file: cannot read {path} ({exc.strerror})") from exc
    stamp = f"{path} sha256:{hashlib.sha256(content).hexdigest()}"
    last = session.scalar(
        select(RosterChange.detail)
        .where(RosterChange.action == _FILE_LOADED)
        .order_by(RosterChange.id.desc())
        .limit(1)
    )
    if last == stamp:
        return []

    changes = sync(session, read_file(path))
    session.add(RosterChange(unit_name="-", action=_FILE_LOADED, detail=stamp))
    return changes


def add_email(session: Session, unit: Unit, address: str) -> str | None:
    """Add ``address`` to ``unit``; None when it has it already. Raises
    LifelineError when it is not an address or is another unit's."""
    address = address.strip().lower()
    if not is_address(address):
        raise LifelineError(
            f"{address!r} is not a mail address; write it as name@example.cn"
        )
    if any(e.address == address for e in unit.emails):
        return None

    owner = session.scalar(
        select(Unit).join(UnitEmail).where(UnitEmail.address == address)
    )
    if owner is not None:
        raise LifelineError(
            f"{address} is already an address of {owner.name}; an address "
            "may belong to one unit only"
        )
    unit.emails.append(UnitEmail(address=address))
    return _log(session, unit.name, "email added", address)


def remove_email(session: Session, unit: Unit, address: str) -> str:
    """Take ``address`` from ``unit`` (mail from it then counts as from an
    unknown sender); raises LifelineError when the unit does not have it."""
    address = address.strip().lower()
    kept = [e for e in unit.emails if e.address != address]
    if len(kept) == len(unit.emails):
        raise LifelineError(f"{address} is not an address of {unit.name}")
    unit.emails = kept
    return _log(session, unit.name, "email removed", address)


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
