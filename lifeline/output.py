"""The JSON contract of the commands (field names and codes of
../shared/samples/README.md), and their plain-text forms."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ingest.model import FIGURES, Table
from ingest.pipeline import Outcome
from store import reports
from store.models import Report


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """One line of ``lifeline import --json``."""
    mail = outcome.mail
    return {
        "mail": outcome.label,
        "message_id": mail.message_id if mail else None,
        "outcome": outcome.outcome,
        "reports": [
            report_json(f.report) | {"supersedes": _source(f.supersedes)}
            for f in outcome.filed
        ],
        "problems": [p.as_json() for p in outcome.problems],
    }


def _source(report: Report | None) -> str | None:
    return None if report is None else report.mail.source


def report_json(report: Report) -> dict[str, Any]:
    return {
        "unit": report.unit.name,
        "period": report.period,
        "on_time": report.on_time,
        "attachment": report.attachment,
        "values": {key: report.values.get(key) for key in FIGURES},
        "warnings": list(report.warnings),
    }


def overview_json(
    overview: reports.MonthOverview, tz: dt.tzinfo
) -> dict[str, Any]:
    """``lifeline report --period P --json``."""
    units = []
    for status in overview.units:
        report = status.report
        units.append(
            {
                "unit": status.unit.name,
                "kind": status.unit.kind,
                "status": status.status,
                "on_time": None if report is None else report.on_time,
                "received_at": None if report is None else _local(report, tz),
                "attachment": None if report is None else report.attachment,
                "mail": None if report is None else report.mail.source,
                "values": None if report is None else report.values,
                "warnings": [] if report is None else report.warnings,
                "versions": status.versions,
            }
        )
    return {
        "period": overview.period,
        "units": units,
        "counts": {
            name: len(overview.named(name)) for name in ("on-time", "late", "missing")
        },
        "totals": overview.totals,
    }


def _local(report: Report, tz: dt.tzinfo) -> str:
    return reports.received_local(report, tz).isoformat(timespec="seconds")


def overview_text(overview: reports.MonthOverview, tz: dt.tzinfo) -> str:
    counts = {n: len(overview.named(n)) for n in ("on-time", "late", "missing")}
    lines = [
        f"Period {overview.period}: {counts['on-time']} on time, "
        f"{counts['late']} late, {counts['missing']} missing "
        f"of {len(overview.units)} units",
        "",
        f"{'unit':<16} {'status':<8} {'ver':>3}  received",
    ]
    for status in overview.units:
        received = _local(status.report, tz) if status.report else "-"
        lines.append(
            f"{_pad(status.unit.name, 16)} {status.status:<8} "
            f"{status.versions:>3}  {received}"
        )
    lines += ["", "District totals:"]
    lines += [f"  {key:<22} {overview.totals[key]}" for key in FIGURES]
    return "\n".join(lines)


def table_text(table: Table) -> str:
    """What `lifeline parse` shows a person about one table."""
    lines = [
        f"{table.file}: sheet {table.sheet or '-'}, cells {table.cells or '-'}",
        f"  报送单位 {table.unit_name or '-'}, 报送时间 "
        f"{table.reported_on or '-'}, month in title {table.period or '-'}",
        f"  {len(table.rows)} row(s) read"
        + (", with a 合计 row" if any(r.is_total for r in table.rows) else ""),
    ]
    lines += [f"  {key:<22} {table.values.get(key)}" for key in FIGURES]
    lines += [f"  warning {w.code}: {w.message}" for w in table.warnings]
    lines += [f"  problem {p.code}: {p.message}" for p in table.problems]
    return "\n".join(lines)


def history_text(
    versions: list[Report], tz: dt.tzinfo, current_only: bool = False
) -> str:
    """Every version of one unit's report (oldest first, numbered so), with
    what each one changed; or only the current one, with its number."""
    lines = []
    previous: Report | None = None
    for number, report in enumerate(versions, start=1):
        if report.current or not current_only:
            lines += _version_lines(number, report, previous, tz)
        previous = report
    return "\n".join(lines)


def _version_lines(
    number: int, report: Report, previous: Report | None, tz: dt.tzinfo
) -> list[str]:
    mark = " (current)" if report.current else ""
    header = (
        f"version {number}{mark}: received {_local(report, tz)}, "
        f"{'on time' if report.on_time else 'late'}, mail "
        f"{report.mail.source} {report.mail.message_id or '-'}, "
        f"file {report.attachment}"
    )
    return [header] + [f"    {change}" for change in _changes(previous, report)]


def history_json(versions: list[Report], tz: dt.tzinfo) -> list[dict[str, Any]]:
    out = []
    previous: Report | None = None
    for report in versions:
        out.append(
            report_json(report)
            | {
                "current": report.current,
                "received_at": _local(report, tz),
                "mail": report.mail.source,
                "message_id": report.mail.message_id,
                "changed": _changes(previous, report),
            }
        )
        previous = report
    return out


def _changes(previous: Report | None, report: Report) -> list[str]:
    if previous is None:
        return [f"{key} {report.values.get(key)}" for key in FIGURES]
    return [
        f"{key} {previous.values.get(key)} -> {report.values.get(key)}"
        for key in FIGURES
        if previous.values.get(key) != report.values.get(key)
    ]


def _pad(text: str, width: int) -> str:
    """Left-align text whose CJK characters take two columns."""
    columns = sum(2 if ord(c) > 0x2E7F else 1 for c in text)
    return text + " " * max(0, width - columns)

