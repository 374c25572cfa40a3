"""What each ``lifeline`` command does; cli.py only parses arguments."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from ingest import sources
from ingest.pipeline import Incoming, Ingest
from ingest.poll import poll_once
from ingest.tables import read_tables
from lifeline import config as config_module
from lifeline import output
from lifeline.app import App
from lifeline.config import Config
from lifeline.errors import ConfigError, LifelineError, NotATable, TableError
from lifeline.progress import Progress
from store import lease, reports, roster
from store.models import Unit

if TYPE_CHECKING:
    from notify.deliver import DeliveryResult

logger = logging.getLogger(__name__)


def _app(args: argparse.Namespace) -> App:
    config = config_module.load(config_module.find_path(args.config))
    app = App(config)
    app.sync_roster()
    return app


def _print_json(obj: object) -> None:
    print(json.dumps(obj, ensure_ascii=False), flush=True)


def run(args: argparse.Namespace) -> int:
    from lifeline.daemon import Daemon  # the scheduler is only for `run`

    return Daemon(_app(args)).run()


def _deliver(app: App) -> DeliveryResult:
    """Send what is queued. Nowhere to send is not a reason to fail a
    command whose mail is already stored: the notices wait in the queue."""
    # Imported where notices go out, not at the top: `run` imports this
    # module too, and jinja2 and smtplib would only delay its first poll.
    from notify.deliver import DeliveryResult, deliver_pending

    try:
        return deliver_pending(app.sessions, app.config)
    except ConfigError as exc:
        logger.warning("%s; the notices stay queued until then", exc)
        return DeliveryResult()


def poll(args: argparse.Namespace) -> int:
    app = _app(args)
    poll_lease = lease.Keeper(app.sessions, lease.POLL, lease.POLL_TTL)
    if not poll_lease.take():
        raise LifelineError(
            f"another lifeline is polling this mailbox now: "
            f"{poll_lease.other_holder()}; try again when it is done"
        )
    try:
        with app.mailbox() as mailbox:
            result = poll_once(
                app.sessions, mailbox, lambda session: _ingest(app, session, args),
                commit_every=app.config.mailbox.batch_size,
                should_stop=lambda: not poll_lease.keep(),
            )
    finally:
        poll_lease.give_up()
    logger.info(
        "poll done: %d new, %d taken, %d already known",
        result.new, result.taken, result.duplicates,
    )
    if not args.no_notices:
        delivery = _deliver(app)
        logger.info("notices sent %d, failed %d", delivery.sent, delivery.failed)
    return 0


def _ingest(app: App, session: Session, args: argparse.Namespace) -> Ingest:
    ingest = app.ingest(session)
    if args.no_notices:
        # Years of mail on a first start: answering them would flood the
        # units with receipts for long-settled months.
        ingest.after_mail = None
    return ingest


def import_(args: argparse.Namespace) -> int:
    app = _app(args)
    ingest = app.ingest()
    if args.no_notices:
        ingest.after_mail = None

    progress = Progress("import", sources.count(args.paths))
    batch: list[Incoming] = []
    with app.sessions() as session:
        for incoming in sources.read(args.paths):
            batch.append(incoming)
            if len(batch) >= app.config.mailbox.batch_size:
                _import_batch(session, ingest, batch, args.json, progress)
        _import_batch(session, ingest, batch, args.json, progress)
    ingest.close()
    progress.done()
    if not args.no_notices:
        _deliver(app)
    return 0


def _import_batch(
    session: Session,
    ingest: Ingest,
    batch: list[Incoming],
    as_json: bool,
    progress: Progress,
) -> None:
    """Take and commit one batch, then say what became of each mail."""
    outcomes = ingest.take_all(session, batch) if batch else []
    session.commit()
    for outcome in outcomes:
        if as_json:
            _print_json(output.outcome_json(outcome))
        progress.step()
    batch.clear()


def parse(args: argparse.Namespace) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as exc:
        raise LifelineError(f"{args.file}: cannot read it ({exc.strerror})") from exc

    failed = 0
    for name, data in _files_in(args.file.name, content):
        try:
            tables = read_tables(name, data)
        except (TableError, NotATable) as exc:
            failed += 1
            code = exc.code if isinstance(exc, TableError) else "not-a-table"
            problem = {"code": code, "message": str(exc)}
            if args.json:
                _print_json({"file": name, "tables": [], "problems": [problem]})
            else:
                print(f"{name}: {exc}")
            continue
        for table in tables:
            if args.json:
                _print_json(table.as_json())
            else:
                print(output.table_text(table))
    return 1 if failed else 0


def _files_in(name: str, content: bytes) -> list[tuple[str, bytes]]:
    """The file itself, or the members of an archive, as a mail's
    attachments would be read."""
    from ingest.archives import archive_kind, unpack_archive

    if archive_kind(name, content) is None:
        return [(name, content)]
    try:
        read_tables(name, content)  # an .xlsx or .docx is a zip too
        return [(name, content)]
    except NotATable:
        return [(member.name, member.content) for member in unpack_archive(name, content)]
    except TableError:
        return [(name, content)]


def report(args: argparse.Namespace) -> int:
    app = _app(args)
    tz = app.config.tz
    with app.sessions() as session:
        if args.unit:
            return _unit_report(session, args, tz)
        overview = reports.overview(session, args.period)
        if args.json:
            _print_json(output.overview_json(overview, tz))
        else:
            print(output.overview_text(overview, tz))
    return 0


def _unit_report(session: Session, args: argparse.Namespace, tz: dt.tzinfo) -> int:
    unit = roster.find(session, args.unit)
    if unit is None:
        raise LifelineError(f"no unit named {args.unit!r}; see 'lifeline units list'")
    versions = reports.history(session, unit.id, args.period)
    if args.json:
        shown = versions if args.history else [v for v in versions if v.current]
        _print_json(
            {"unit": unit.name, "period": args.period,
             "versions": output.history_json(shown, tz)}
        )
    elif versions:
        print(f"{unit.name} {args.period}")
        print(output.history_text(versions, tz, current_only=not args.history))
    else:
        print(f"{unit.name} {args.period}: no report")
    return 0


def units_import(args: argparse.Namespace) -> int:
    app = App(config_module.load(config_module.find_path(args.config)))
    entries = roster.read_file(args.file)
    with app.sessions() as session:
        changes = roster.sync(
            session, entries, retire_from=args.retire_missing_from, reinstate=True
        )
        session.commit()
    for change in changes:
        print(change)
    print(f"{len(entries)} units read from {args.file}, {len(changes)} change(s)")
    return 0


def units_list(args: argparse.Namespace) -> int:
    app = _app(args)
    with app.sessions() as session:
        for unit in roster.all_units(session):
            retired = f"  retired from {unit.retired_from}" if unit.retired_from else ""
            emails = ", ".join(e.address for e in unit.emails)
            print(f"{unit.name}\t{unit.kind}\t{emails}{retired}")
    return 0


def units_show(args: argparse.Namespace) -> int:
    app = _app(args)
    with app.sessions() as session:
        unit = _unit(session, args.name)
        print(f"name:     {unit.name}")
        print(f"kind:     {unit.kind}")
        print(f"aliases:  {', '.join(a.alias for a in unit.aliases) or '-'}")
        print(f"emails:   {', '.join(e.address for e in unit.emails) or '-'}")
        print(f"retired:  {unit.retired_from or '-'}")
        for change in roster.changes_for(session, unit.name):
            print(f"  {change.at:%Y-%m-%d %H:%M} {change.action} {change.detail}")
    return 0


def units_add_email(args: argparse.Namespace) -> int:
    app = _app(args)
    with app.sessions() as session:
        change = roster.add_email(session, _unit(session, args.name), args.address)
        session.commit()
    print(change or f"{args.address} is already an address of {args.name}")
    return 0


def units_remove_email(args: argparse.Namespace) -> int:
    app = _app(args)
    with app.sessions() as session:
        print(roster.remove_email(session, _unit(session, args.name), args.address))
        session.commit()
    return 0


def units_retire(args: argparse.Namespace) -> int:
    app = _app(args)
    with app.sessions() as session:
        print(roster.retire(session, _unit(session, args.name), args.period))
        session.commit()
    return 0


def _unit(session: Session, name: str) -> Unit:
    unit = roster.find(session, name)
    if unit is None:
        raise LifelineError(f"no unit named {name!r}; see 'lifeline units list'")
    return unit


def remind(args: argparse.Namespace) -> int:
    from notify import reminders

    app = _app(args)
    at = _aware(args.at, app.config) if args.at else dt.datetime.now(app.config.tz)
    with app.sessions() as session:
        plans = reminders.due_reminders(session, app.config, at)
        print(reminders.format_plan(plans))
        if args.dry_run:
            return 0
        reminders.queue_due_reminders(session, app.config, at)
        session.commit()
    _deliver(app)
    return 0


def summary(args: argparse.Namespace) -> int:
    from notify import summary as summaries

    app = _app(args)
    now = dt.datetime.now(app.config.tz)
    with app.sessions() as session:
        data = summaries.build_summary(session, app.config, args.period, now)
        print(summaries.format_summary(data))
        if args.xlsx:
            summaries.write_district_table(data, args.xlsx)
        if args.send:
            # Asked for by hand: its own step, so it goes out even when the
            # scheduled summary of the month went already.
            step = f"on-demand-{now:%Y%m%d%H%M%S}"
            if summaries.queue_summary(session, app.config, args.period, now, step) is None:
                raise LifelineError(
                    "notify.coordinator: missing; set the coordinator's address "
                    "to send the summary"
                )
            session.commit()
    if args.send:
        result = _deliver(app)
        print(f"summary for {args.period}: sent {result.sent}, failed {result.failed}")
    return 0


def deliver(args: argparse.Namespace) -> int:
    from notify.deliver import deliver_pending

    app = _app(args)
    result = deliver_pending(app.sessions, app.config)
    print(f"sent {result.sent}, failed {result.failed}, to retry {result.retried}")
    return 0 if not result.failed else 1


def demo(args: argparse.Namespace) -> int:
    from lifeline import demo as demo_module
    from notify.deliver import deliver_pending

    config = demo_module.prepare(args.dir)
    app = App(config)
    app.sync_roster()
    ingest = app.ingest()
    mailbox = demo_module.mailbox_path()
    with app.sessions() as session:
        for incoming in sources.read([mailbox]):
            ingest.take(session, incoming)
            session.commit()
    delivery = deliver_pending(app.sessions, app.config)

    period = demo_module.busiest_period(app)
    with app.sessions() as session:
        print(output.overview_text(reports.overview(session, period), config.tz))
    print(
        f"\n{delivery.sent} notices written to {config.resolve(config.notify.outbox_dir)}; "
        f"data in {config.data_dir}; configuration {config.source}",
        file=sys.stderr,
    )
    return 0


def check(args: argparse.Namespace) -> int:
    from lifeline import health

    parts = health.check(config_module.find_path(args.config))
    print(health.format_check(parts))
    return 0 if all(part.ok for part in parts) else 1


def status(args: argparse.Namespace) -> int:
    from lifeline import health

    app = App(config_module.load(config_module.find_path(args.config)))
    with app.sessions() as session:
        data = health.status(session, app.config, dt.datetime.now(app.config.tz))
    if args.json:
        _print_json(data.as_json())
    else:
        print(health.format_status(data, app.config))
    return 0 if data.healthy else 1


def _aware(moment: dt.datetime, config: Config) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=config.tz)

