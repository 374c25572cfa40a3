"""``lifeline check`` and ``lifeline status``: is it set up right, and is
it working?

``check`` tries every part the daemon needs (configuration, database,
roster, IMAP login and folder, SMTP or outbox, coordinator) and says for
each whether it works and, if not, what to change. ``status`` reads the
store: the last successful poll, mails taken, this month's reports,
notices and mails held for the coordinator.
"""

from __future__ import annotations

import datetime as dt
import smtplib
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lifeline import config as config_module
from lifeline.app import App
from lifeline.config import Config
from lifeline.errors import LifelineError
from notify.send import SmtpSender
from store import reports
from store.models import Mail, MailboxState, Notice, to_db, utc


@dataclass(frozen=True)
class Part:
    """One thing ``check`` tried: whether it works, and what it found or
    what to fix."""

    name: str
    ok: bool
    detail: str


def check(config_path: Path) -> list[Part]:
    """Try each part in turn; parts that need a broken one are skipped."""
    try:
        config = config_module.load(config_path)
    except LifelineError as exc:
        return [Part("config", False, str(exc))]

    parts = [Part("config", True, f"{config.source} is valid")]
    app = App(config)
    database = _try("database", lambda: _database(app))
    parts.append(database)
    if database.ok:
        parts.append(_try("roster", lambda: _roster(app)))
    parts.append(_try("imap", lambda: _imap(app)))
    parts.append(_try("notices", lambda: _notices(config)))
    parts.append(_coordinator(config))
    return parts


def format_check(parts: list[Part]) -> str:
    lines = [f"{'ok' if p.ok else 'FAIL':<4}  {p.name}: {p.detail}" for p in parts]
    failed = [p.name for p in parts if not p.ok]
    lines.append(
        f"{len(failed)} part(s) to fix: {', '.join(failed)}" if failed
        else "everything works"
    )
    return "\n".join(lines)


def _try(name: str, attempt: Callable[[], str]) -> Part:
    try:
        return Part(name, True, attempt())
    except LifelineError as exc:
        return Part(name, False, str(exc))


def _database(app: App) -> str:
    with app.sessions() as session:
        mails = session.scalar(select(func.count()).select_from(Mail)) or 0
    url = app.engine.url.render_as_string(hide_password=True)
    return f"{url} is up to date, {mails} mail(s) stored"


def _roster(app: App) -> str:
    if not app.config.roster.file:
        return "no roster.file; units come from 'lifeline units import' only"
    changes = app.sync_roster()
    return f"{app.config.roster.file} read, {len(changes)} change(s) applied"


def _imap(app: App) -> str:
    mailbox = app.mailbox()
    with mailbox:
        folders = mailbox.folders()
        idle = mailbox.idle_supported()
        count = len(mailbox.all_uids())
    push = "IDLE offered: new mail is taken at once" if idle else (
        "no IDLE: polling every "
        f"{app.config.mailbox.poll_interval_seconds} s"
    )
    return (
        f"logged in to {mailbox.account}, folder {mailbox.folder} has {count} "
        f"mail(s); {push}; folders: {', '.join(folders)}"
    )


def _notices(config: Config) -> str:
    if config.notify.outbox_dir:
        return _outbox(config.resolve(config.notify.outbox_dir))
    if not config.smtp.host:
        raise LifelineError(
            "nowhere to send receipts and reminders: set [smtp] host (and "
            "user, password_env, from) or [notify] outbox_dir"
        )
    if not config.smtp.sender:
        raise LifelineError('smtp.from: missing; set the address notices come from')
    return _smtp(config)


def _outbox(folder: Path) -> str:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".check-"):
            pass
    except OSError as exc:
        raise LifelineError(
            f"notify.outbox_dir: cannot write to {folder} ({exc.strerror}); "
            "create it and give the lifeline user write access"
        ) from exc
    return f"notices are written to {folder} (no SMTP)"


def _smtp(config: Config) -> str:
    where = f"{config.smtp.host}:{config.smtp.port}"
    try:
        smtp = SmtpSender(config.smtp).connect()
        smtp.noop()
        smtp.quit()
    except LifelineError:
        raise
    except (smtplib.SMTPException, OSError) as exc:
        raise LifelineError(
            f"smtp {where}: {exc or type(exc).__name__}; check [smtp] host, port "
            'and tls (465 expects "ssl", 587 "starttls")'
        ) from exc
    login = f"logged in as {config.smtp.user}" if config.smtp.user else "no login"
    return f"{where} answers, {login}; notices come from {config.smtp.sender}"


def _coordinator(config: Config) -> Part:
    if config.notify.coordinator:
        return Part("coordinator", True, f"summaries go to {config.notify.coordinator}")
    return Part(
        "coordinator", False,
        "notify.coordinator: missing; set the address that gets the monthly "
        "summary, problem mails and the warning when polling stops",
    )


@dataclass
class MailboxHealth:
    account: str
    folder: str
    last_success: str | None
    stale: bool


@dataclass
class Status:
    """What ``lifeline status`` shows."""

    now: str
    period: str
    mailboxes: list[MailboxHealth] = field(default_factory=list)
    mails_today: int = 0
    mails_this_month: int = 0
    on_time: int = 0
    late: int = 0
    missing: int = 0
    notices_pending: int = 0
    notices_failed: int = 0
    held: int = 0

    @property
    def healthy(self) -> bool:
        return bool(self.mailboxes) and not any(m.stale for m in self.mailboxes)

    def as_json(self) -> dict[str, object]:
        return asdict(self) | {"healthy": self.healthy}


def status(session: Session, config: Config, now: dt.datetime) -> Status:
    """The state of the store at ``now`` (aware)."""
    local = now.astimezone(config.tz)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    result = Status(now=_local(now, config), period=f"{local:%Y-%m}")

    result.mailboxes = _mailboxes(session, config, now)
    result.mails_today = _count(session, Mail, Mail.taken_at >= to_db(day_start))
    result.mails_this_month = _count(
        session, Mail, Mail.taken_at >= to_db(month_start)
    )

    month = reports.overview(session, result.period)
    result.on_time = len(month.named("on-time"))
    result.late = len(month.named("late"))
    result.missing = len(month.named("missing"))

    result.notices_pending = _count(
        session, Notice, Notice.status.in_(("pending", "sending"))
    )
    result.notices_failed = _count(
        session, Notice,
        Notice.status == "failed", Notice.created_at >= to_db(month_start),
    )
    result.held = _count(session, Mail, Mail.outcome == "held")
    return result


def format_status(data: Status, config: Config) -> str:
    lines = [f"lifeline status at {data.now}"]
    limit = config.notify.stale_poll_hours
    for box in data.mailboxes:
        last = box.last_success or "never"
        warning = (
            f"  STALE: no successful poll for over {limit:g} h; see "
            "'journalctl -u lifeline' and run 'lifeline check'"
            if box.stale else ""
        )
        lines.append(f"mailbox {box.account}/{box.folder}: last successful poll {last}{warning}")
    if not data.mailboxes:
        lines.append("mailbox: never polled successfully; run 'lifeline check'")
    lines += [
        f"mails taken: {data.mails_today} today, {data.mails_this_month} this month",
        f"reports {data.period}: {data.on_time} on time, {data.late} late, "
        f"{data.missing} missing",
        f"notices: {data.notices_pending} pending, {data.notices_failed} failed "
        "this month",
        f"mails held for the coordinator: {data.held}",
    ]
    return "\n".join(lines)


def _mailboxes(
    session: Session, config: Config, now: dt.datetime
) -> list[MailboxHealth]:
    limit = dt.timedelta(hours=config.notify.stale_poll_hours)
    found = []
    for state in session.scalars(select(MailboxState).order_by(MailboxState.account)):
        last = state.last_success_at
        found.append(
            MailboxHealth(
                account=state.account,
                folder=state.folder,
                last_success=_local(utc(last), config) if last else None,
                stale=last is None or now - utc(last) > limit,
            )
        )
    return found


def _count(session: Session, model: type, *conditions: object) -> int:
    query = select(func.count()).select_from(model).where(*conditions)  # type: ignore[arg-type]
    return session.scalar(query) or 0


def _local(moment: dt.datetime, config: Config) -> str:
    return moment.astimezone(config.tz).strftime("%Y-%m-%d %H:%M")
