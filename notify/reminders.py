"""Reminding units that have not reported yet, on the configured ladder.

Each step of ``notify.reminders`` has a day and a time of the period's own
month, in the district's time zone (a step on a weekend or holiday moves to
the next working day when configured so). At a moment ``at``, a unit still
missing its report gets the *latest* step whose moment has passed, if that
step was not queued for it yet: a daemon that was down over the first step
does not send two reminders at once when it comes back.
"""

from __future__ import annotations

import calendar
import datetime as dt
import logging
from dataclasses import dataclass
from email.utils import parseaddr

from sqlalchemy.orm import Session

from lifeline.config import Config, ReminderStep
from notify.wording import FORMATS, period_label, period_of
from store import notices
from store.models import Notice
from store.reports import overview

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedReminder:
    """One reminder that is due: to whom, which step, and why."""

    unit_id: int
    unit: str
    period: str
    step: str
    kind: str
    due_at: dt.datetime
    recipients: tuple[str, ...]
    deadline: dt.date
    days_left: int

    @property
    def key(self) -> str:
        return notices.default_key(self.kind, self.step, self.unit_id, self.period)


def due_reminders(
    session: Session, config: Config, at: dt.datetime
) -> list[PlannedReminder]:
    """The reminders due at ``at`` (naive means the district's local time)
    for the period of ``at``'s month, not queued yet."""
    local = local_moment(at, config)
    period = period_of(local)
    due = [
        (moment, step)
        for step in config.notify.reminders
        if (moment := step_moment(step, period, config)) <= local
    ]
    if not due:
        return []

    moment, step = max(due, key=lambda pair: pair[0])
    deadline = deadline_of(period, config)
    plans = []
    # Reports received after ``at`` do not count: a dry run for a past
    # moment shows what was due then.
    for status in overview(session, period, as_of=local).named("missing"):
        unit = status.unit
        plan = PlannedReminder(
            unit_id=unit.id,
            unit=unit.name,
            period=period,
            step=step.step,
            kind=step.kind,
            due_at=moment,
            recipients=tuple(e.address for e in unit.emails),
            deadline=deadline,
            days_left=(deadline - local.date()).days,
        )
        if not plan.recipients:
            logger.warning("unit %s: no address, cannot remind it", unit.name)
        elif not notices.exists(session, plan.key):
            plans.append(plan)
    return plans


def queue_due_reminders(
    session: Session, config: Config, at: dt.datetime
) -> list[Notice]:
    """Queue every reminder ``due_reminders`` names; the caller commits."""
    checked = local_moment(at, config).strftime("%Y-%m-%d %H:%M")
    queued = []
    for plan in due_reminders(session, config, at):
        notice = notices.queue(
            session,
            kind=plan.kind,
            step=plan.step,
            recipients=list(plan.recipients),
            context=_context(plan, config, checked),
            unit_id=plan.unit_id,
            period=plan.period,
        )
        if notice is not None:
            queued.append(notice)
    return queued


def _context(plan: PlannedReminder, config: Config, checked: str) -> dict[str, object]:
    return {
        "unit": plan.unit,
        "period": plan.period,
        "period_label": period_label(plan.period),
        "step": plan.step,
        "deadline": _date_label(plan.deadline),
        "days_left": plan.days_left,
        "checked": checked,
        "formats": FORMATS,
        "reply_to": config.mailbox.user or parseaddr(config.smtp.sender)[1],
    }


def format_plan(plans: list[PlannedReminder]) -> str:
    """What ``lifeline remind --dry-run`` prints: who gets what and why."""
    if not plans:
        return "No reminders are due."

    lines = []
    for plan in plans:
        if plan.days_left >= 0:
            why = f"{plan.days_left} day(s) left before the deadline"
        else:
            why = f"{-plan.days_left} day(s) past the deadline"
        lines.append(
            f"{plan.unit}: {_step_name(plan)} (due "
            f"{plan.due_at:%Y-%m-%d %H:%M}) to {', '.join(plan.recipients)}; "
            f"no report for {plan.period} yet, {why} {plan.deadline:%Y-%m-%d}"
        )
    return "\n".join(lines)


def _step_name(plan: PlannedReminder) -> str:
    """"reminder 'first'", but not "overdue 'overdue'"."""
    if plan.step == plan.kind:
        return plan.kind
    return f"{plan.kind} '{plan.step}'"


def local_moment(at: dt.datetime, config: Config) -> dt.datetime:
    """``at`` in the district's time zone; a naive ``at`` is local already."""
    if at.tzinfo is None:
        return at.replace(tzinfo=config.tz)
    return at.astimezone(config.tz)


def step_moment(step: ReminderStep, period: str, config: Config) -> dt.datetime:
    """When ``step`` is due in ``period``, moved off weekends and holidays
    if the configuration asks for it."""
    day = working_day(_day_of(period, step.day), config)
    hours, minutes = (int(part) for part in step.time.split(":"))
    return dt.datetime.combine(day, dt.time(hours, minutes), tzinfo=config.tz)


def working_day(day: dt.date, config: Config) -> dt.date:
    holidays = set(config.notify.holidays)
    while (config.notify.skip_weekends and day.weekday() >= 5) or (
        day.isoformat() in holidays
    ):
        day += dt.timedelta(days=1)
    return day


def deadline_of(period: str, config: Config) -> dt.date:
    return _day_of(period, config.reporting.deadline_day)


def _day_of(period: str, day: int) -> dt.date:
    # A step on the 31st falls on the last day of shorter months.
    year, month = (int(part) for part in period.split("-"))
    return dt.date(year, month, min(day, calendar.monthrange(year, month)[1]))


def _date_label(day: dt.date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"
