"""The ``lifeline`` command line."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from lifeline import __version__
from lifeline.config import ENV_VAR
from lifeline.errors import LifelineError

logger = logging.getLogger("lifeline")

LOG_FILE_VAR = "LIFELINE_LOG_FILE"


# The exit status a shell gives a command killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    handler = _command_function(args.command)
    try:
        status = int(handler(args) or 0)
        # Output to a pipe is buffered; a reader gone early shows here.
        sys.stdout.flush()
        return status
    except LifelineError as exc:
        logger.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `lifeline report ... | head -1`: the reader has all it wants.
        # Python flushes stdout again at exit, so it must point elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _command_function(name: str) -> Callable[[argparse.Namespace], int]:
    """The function in lifeline.commands that runs command ``name``.

    Imported only now, so that ``--help`` and a mistyped option cost no
    SQLAlchemy. The collector is paused meanwhile: the import makes some
    70,000 objects that live as long as the process, and the 170 or so
    collections on the way cost 50-70 ms, a tenth of the daemon's
    start-up. Frozen afterwards, they are never scanned again (nor freed:
    the few hundred objects the imports left as garbage stay with them).
    """
    gc.disable()
    try:
        from lifeline import commands
    finally:
        gc.freeze()
        gc.enable()
    return getattr(commands, name)


def _setup_logging(verbose: bool) -> None:
    # Under systemd the journal adds the time; on a terminal we add it.
    fmt = "%(levelname)s %(name)s: %(message)s"
    if "JOURNAL_STREAM" not in os.environ:
        fmt = "%(asctime)s " + fmt
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if os.environ.get(LOG_FILE_VAR):
        # A copy of every line, e.g. for a cron job's own log.
        handlers.append(logging.FileHandler(os.environ[LOG_FILE_VAR], encoding="utf-8"))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=fmt,
        handlers=handlers,
    )
    # imapclient logs every command at DEBUG; its own redaction hides
    # the password, but the volume drowns the one line per mail.
    logging.getLogger("imapclient").setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lifeline",
        description="Takes the units' monthly statistics tables from the "
        "campaign mailbox, stores them, answers and reminds.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="FILE",
        help=f"configuration file (default: ${ENV_VAR}, else ./config.toml)",
    )
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    def command(name: str, function: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(command=function)
        return p

    command("run", "run", "run the daemon: poll, remind, summarise on schedule")

    p = command("poll", "poll", "poll the mailbox")
    p.add_argument("--once", action="store_true", required=True, help="one poll, then exit")
    p.add_argument(
        "--no-notices", action="store_true",
        help="queue and send no notices (a first catch-up on years of mail)",
    )

    p = command("import", "import_", "take .eml files, a Maildir or an mbox as if they came from the mailbox")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--json", action="store_true", help="one JSON line per mail on stdout")
    p.add_argument("--no-notices", action="store_true", help="queue no receipts (re-importing an archive)")

    p = command("parse", "parse", "read one table file and show what lifeline sees")
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")

    p = command("report", "report", "every unit's status and figures for a month")
    p.add_argument("--period", required=True, type=_period, metavar="YYYY-MM")
    p.add_argument("--unit", help="one unit (name or alias)")
    p.add_argument("--history", action="store_true", help="with --unit: every version")
    p.add_argument("--json", action="store_true")

    _units_parser(sub, common)

    p = command("remind", "remind", "queue (and send) the reminders due now")
    p.add_argument("--dry-run", action="store_true", help="only print who would get what, and why")
    p.add_argument("--at", type=_moment, metavar="DATETIME", help="as of this local moment (YYYY-MM-DDTHH:MM)")

    p = command("summary", "summary", "the coordinator's monthly summary")
    p.add_argument("--period", required=True, type=_period, metavar="YYYY-MM")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--send", action="store_true", help="queue it and send it now")
    mode.add_argument("--dry-run", action="store_true", help="print it (the default)")
    p.add_argument("--xlsx", type=Path, metavar="FILE", help="also write the district table here")

    command("deliver", "deliver", "send every pending notice now")

    command("check", "check", "try the configuration, database, IMAP and SMTP; say what to fix")
    p = command("status", "status", "last poll, mails taken, this month's reports, notices")
    p.add_argument("--json", action="store_true")

    p = command("demo", "demo", "take the bundled sample mailbox into a demo folder and print the month's report")
    p.add_argument("--dir", type=Path, default=Path("lifeline-demo"), help="where the demo keeps its data (default ./lifeline-demo)")
    return parser


def _units_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    units = sub.add_parser("units", help="the roster of units", description="the roster of units")
    verbs = units.add_subparsers(title="verbs", required=True, metavar="VERB")

    def verb(name: str, function: str, help: str) -> argparse.ArgumentParser:
        p = verbs.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(command=function)
        return p

    p = verb("import", "units_import", "load a roster CSV or XLSX (name, aliases, emails, kind)")
    p.add_argument("file", type=Path)
    p.add_argument("--retire-missing-from", type=_period, metavar="YYYY-MM", help="retire units absent from the file from this month on")
    verb("list", "units_list", "list the units")
    p = verb("show", "units_show", "one unit with its aliases, addresses and history")
    p.add_argument("name")
    p = verb("add-email", "units_add_email", "add a sender address to a unit")
    p.add_argument("name")
    p.add_argument("address")
    p = verb("remove-email", "units_remove_email", "take a sender address from a unit")
    p.add_argument("name")
    p.add_argument("address")
    p = verb("retire", "units_retire", "stop expecting reports from a unit from a month on")
    p.add_argument("name")
    p.add_argument("--from", dest="period", required=True, type=_period, metavar="YYYY-MM")


def _period(text: str) -> str:
    try:
        return dt.datetime.strptime(text, "%Y-%m").strftime("%Y-%m")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month like 2025-05") from None


def _moment(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date-time like 2025-05-15T09:00") from None


if __name__ == "__main__":
    sys.exit(main())
