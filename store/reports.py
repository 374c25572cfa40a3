"""Reports: storing a version, choosing the current one, a month's picture."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, lazyload

from ingest.model import FIGURES, Number
from store.models import Report, Unit, to_db, utc


def add(
    session: Session, report: Report, stored: list[Report] | None = None
) -> Report | None:
    """Store a new version and return the version it supersedes, if any.

    The current version is the one *received* last, not the one processed
    last: an old mail imported after a newer one must not win. ``stored``
    are the unit's versions of the month when the caller has them already
    (the pipeline reads a whole batch's in one query); else they are read.
    """
    session.add(report)
    if stored is None:
        stored = list(
            session.scalars(
                select(Report).where(
                    Report.unit_id == report.unit_id,
                    Report.period == report.period,
                )
            )
        )
    return supersede(report, stored)


def supersede(report: Report, stored: list[Report]) -> Report | None:
    """Set which of ``report`` and the ``stored`` versions of its unit and
    month is current; return the version ``report`` supersedes, if any."""
    versions = [version for version in stored if version is not report]
    latest = max(versions, key=_arrival, default=None)
    if latest is None:
        report.current = True
        return None

    if report.received_at >= latest.received_at:
        for version in versions:
            version.current = False
        report.current = True
        return latest

    report.current = False
    return None


def _arrival(report: Report) -> tuple[dt.datetime, bool, int]:
    """Order of versions received at the same moment: by id, and a version
    not yet flushed (no id yet) after every stored one, as its id will be."""
    return report.received_at, report.id is None, report.id or 0


def versions_of(
    session: Session, keys: set[tuple[int, str]]
) -> dict[tuple[int, str], list[Report]]:
    """The stored versions of several (unit id, month) at once; every key
    asked for is in the answer, with an empty list when it has none."""
    found: dict[tuple[int, str], list[Report]] = {key: [] for key in keys}
    if not keys:
        return found
    # Without the unit: the caller's new reports may bring the same units
    # from the roster, and a session holds one object per row. Two plain
    # IN lists, not a (unit, month) tuple IN: SQLite answers that one by
    # scanning every report, which grows with each month of a backlog.
    query = (
        select(Report)
        .where(
            Report.unit_id.in_(sorted({unit for unit, _ in keys})),
            Report.period.in_(sorted({period for _, period in keys})),
        )
        .options(lazyload(Report.unit))
    )
    for report in session.scalars(query):
        versions = found.get((report.unit_id, report.period))
        if versions is not None:
            versions.append(report)
    return found


def history(session: Session, unit_id: int, period: str) -> list[Report]:
    """Every version for one unit and month, oldest first."""
    return list(
        session.scalars(
            select(Report)
            .where(Report.unit_id == unit_id, Report.period == period)
            .order_by(Report.received_at, Report.id)
        )
    )


@dataclass
class UnitStatus:
    unit: Unit
    status: str  # "on-time", "late" or "missing"
    report: Report | None = None
    versions: int = 0


@dataclass
class MonthOverview:
    period: str
    units: list[UnitStatus]
    totals: dict[str, Number] = field(default_factory=dict)

    def named(self, status: str) -> list[UnitStatus]:
        return [u for u in self.units if u.status == status]


def overview(
    session: Session, period: str, as_of: dt.datetime | None = None
) -> MonthOverview:
    """Every roster unit active in ``period`` with its current report, or
    with the report that was current at ``as_of`` (aware) when given."""
    units = [
        unit
        for unit in session.scalars(select(Unit).order_by(Unit.id))
        if unit.active_in(period)
    ]
    query = select(Report).where(Report.period == period)
    if as_of is not None:
        query = query.where(Report.received_at <= to_db(as_of))
    reports = list(session.scalars(query))

    statuses = [_status(unit, reports, latest=as_of is not None) for unit in units]
    current = [s.report for s in statuses if s.report is not None]
    return MonthOverview(period, statuses, totals(current))


def _status(unit: Unit, reports: list[Report], latest: bool) -> UnitStatus:
    versions = [r for r in reports if r.unit_id == unit.id]
    if latest:
        current = max(versions, key=lambda r: (r.received_at, r.id), default=None)
    else:
        current = next((r for r in versions if r.current), None)
    if current is None:
        return UnitStatus(unit, "missing")
    # A unit that reported in time and corrected its figures after the
    # deadline did report on time: the correction does not make it late.
    status = "on-time" if any(v.on_time for v in versions) else "late"
    return UnitStatus(unit, status, current, len(versions))


def totals(reports: list[Report]) -> dict[str, Number]:
    """The district totals: each figure summed over the reports given."""
    sums: dict[str, Number] = {}
    for key in FIGURES:
        value = sum(r.values.get(key, 0) for r in reports)
        sums[key] = round(value, 2) if isinstance(value, float) else value
    return sums


def received_local(report: Report, tz: dt.tzinfo) -> dt.datetime:
    return utc(report.received_at).astimezone(tz)
