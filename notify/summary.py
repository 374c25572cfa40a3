"""The coordinator's monthly summary: who reported, the district totals,
and everything that needs a person.

The summary is built once, when it is queued: its figures go into the
notice's context and its district table is written to the data directory,
so the mail sent later says exactly what was true when it was queued.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from ingest.model import FIGURES, Number
from lifeline.config import Config, ReminderStep
from notify.compose import render_text
from notify.reminders import local_moment, step_moment
from notify.wording import (
    NEEDS_A_PERSON,
    figure_lines,
    local_text,
    period_label,
    period_of,
    previous_period,
)
from store import notices
from store.models import Mail, MailboxState, Notice, Problem, Report, to_db
from store.reports import overview, received_local, totals

logger = logging.getLogger(__name__)

SUMMARY_DIR = "summaries"


@dataclass
class UnitLine:
    name: str
    status: str  # "on-time", "late" or "missing"
    received: str | None = None
    versions: int = 0
    values: dict[str, Number] | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class SummaryData:
    district: str
    period: str
    generated: str
    units: list[UnitLine]
    totals: dict[str, Number]
    previous_totals: dict[str, Number]
    year_to_date: dict[str, Number]
    problems: list[dict[str, Any]] = field(default_factory=list)
    failed_notices: list[dict[str, Any]] = field(default_factory=list)
    last_poll: str | None = None

    def named(self, status: str) -> list[str]:
        return [u.name for u in self.units if u.status == status]

    @property
    def reported(self) -> int:
        return sum(u.status != "missing" for u in self.units)

    @property
    def corrections(self) -> list[str]:
        return [f"{u.name}（更正{u.versions - 1}次）" for u in self.units if u.versions > 1]

    def rate(self, count: int) -> str:
        if not self.units:
            return "—"
        return f"{100 * count / len(self.units):.0f}%"

    def as_context(self) -> dict[str, Any]:
        """Everything the summary templates show, as JSON values."""
        changes = {
            key: _round(self.totals[key] - self.previous_totals.get(key, 0))
            for key in FIGURES
        }
        return {
            **asdict(self),
            "period_label": period_label(self.period),
            "on_time": self.named("on-time"),
            "late": self.named("late"),
            "missing": self.named("missing"),
            "reported": self.reported,
            "total": len(self.units),
            "reporting_rate": self.rate(self.reported),
            "on_time_rate": self.rate(len(self.named("on-time"))),
            "corrections": self.corrections,
            "figures": [
                [label, value, changes[key], self.year_to_date[key]]
                for key, (label, value) in zip(
                    FIGURES, figure_lines(self.totals), strict=True
                )
            ],
            "warnings": [
                f"{u.name}：{warning}" for u in self.units for warning in u.warnings
            ],
        }


def build_summary(
    session: Session, config: Config, period: str, now: dt.datetime
) -> SummaryData:
    """The summary of ``period`` as it stands at ``now``."""
    month = overview(session, period)
    units = [
        UnitLine(
            name=status.unit.name,
            status=status.status,
            received=(
                received_local(status.report, config.tz).strftime("%Y-%m-%d %H:%M")
                if status.report
                else None
            ),
            versions=status.versions,
            values=status.report.values if status.report else None,
            warnings=[w["message"] for w in status.report.warnings]
            if status.report
            else [],
        )
        for status in month.units
    ]
    start = month_start(period, config)
    return SummaryData(
        district=config.reporting.district,
        period=period,
        generated=local_moment(now, config).strftime("%Y-%m-%d %H:%M"),
        units=units,
        totals=month.totals,
        previous_totals=overview(session, previous_period(period)).totals,
        year_to_date=_year_to_date(session, period),
        problems=_problems(session, config, period, start),
        failed_notices=[_failed_json(n) for n in notices.failed_since(session, start)],
        last_poll=_last_poll(session, config),
    )


def month_start(period: str, config: Config) -> dt.datetime:
    year, month = (int(part) for part in period.split("-"))
    return dt.datetime(year, month, 1, tzinfo=config.tz)


def _month_end(period: str, config: Config) -> dt.datetime:
    start = month_start(period, config)
    return (start + dt.timedelta(days=32)).replace(day=1)


def _year_to_date(session: Session, period: str) -> dict[str, Number]:
    query = select(Report).where(
        Report.current,
        Report.period >= f"{period[:4]}-01",
        Report.period <= period,
    )
    return totals(list(session.scalars(query)))


def _problems(
    session: Session, config: Config, period: str, start: dt.datetime
) -> list[dict[str, Any]]:
    # A problem without a period (no table was read) belongs to the month
    # its mail arrived in.
    arrived = and_(
        Problem.period.is_(None),
        Mail.received_at >= to_db(start),
        Mail.received_at < to_db(_month_end(period, config)),
    )
    query = (
        select(Problem, Mail)
        .join(Mail, Problem.mail_id == Mail.id)
        .where(Problem.code.in_(NEEDS_A_PERSON))
        .where(or_(Problem.period == period, arrived))
        .order_by(Problem.id)
    )
    return [
        {
            "code": problem.code,
            "message": problem.message,
            "sender": mail.sender,
            "received": local_text(mail.received_at, config.tz),
        }
        for problem, mail in session.execute(query)
    ]


def _failed_json(notice: Notice) -> dict[str, Any]:
    return {
        "kind": notice.kind,
        "recipients": notice.recipients,
        "error": notice.last_error or "",
        "key": notice.key,
    }


def _last_poll(session: Session, config: Config) -> str | None:
    last = session.scalar(select(func.max(MailboxState.last_success_at)))
    return local_text(last, config.tz) if last else None


def _round(value: Number) -> Number:
    return round(value, 2) if isinstance(value, float) else value


def queue_summary(
    session: Session,
    config: Config,
    period: str,
    now: dt.datetime,
    step: str = "monthly",
) -> Notice | None:
    """Queue the summary of ``period`` to the coordinator, with the district
    table attached; nothing if this step is queued already. The scheduled
    one is step "monthly"; one asked for on demand names its own step, so
    the coordinator can have it again after late corrections."""
    key = notices.default_key("summary", step, None, period)
    if not config.notify.coordinator:
        logger.warning("summary %s: notify.coordinator is empty, not sent", period)
        return None
    if notices.exists(session, key):
        return None

    summary = build_summary(session, config, period, now)
    relative = f"{SUMMARY_DIR}/{period}.xlsx"
    write_district_table(summary, config.data_dir / relative)

    context = summary.as_context()
    context["attachments"] = [
        {
            "path": relative,
            "filename": f"{summary.district}{period_label(period)}生命通道统计汇总.xlsx",
        }
    ]
    return notices.queue(
        session,
        kind="summary",
        step=step,
        recipients=[config.notify.coordinator],
        context=context,
        period=period,
        key=key,
    )


def queue_due_summary(
    session: Session, config: Config, now: dt.datetime
) -> Notice | None:
    """Queue this month's summary once ``notify.summary_day`` at
    ``summary_time`` (district time) has passed."""
    local = local_moment(now, config)
    period = period_of(local)
    step = ReminderStep(
        "summary", config.notify.summary_day, config.notify.summary_time
    )
    if local < step_moment(step, period, config):
        return None
    return queue_summary(session, config, period, now)


def format_summary(data: SummaryData) -> str:
    """What ``lifeline summary --dry-run`` prints: the mail's text."""
    return render_text("coordinator-summary", data.as_context())


def write_district_table(summary: SummaryData, path: Path | str) -> None:
    """The district table as .xlsx at ``path``."""
    # Imported here: openpyxl (and numpy with it) would add a fifth of a
    # second to the daemon's start-up for a table written once a month.
    from notify import district_table

    district_table.write_district_table(summary, path)
