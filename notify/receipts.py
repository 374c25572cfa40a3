"""Answering a unit's mail: a receipt with the figures as read, or a
problem notice saying what to fix; and a word to the coordinator when a
mail needs a person.

The ingest pipeline asks ``receipt_notices`` for them and queues them in
the transaction that stores the mail, so a notice exists exactly when its
cause does.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from lifeline.config import Config
from notify.wording import (
    FORMATS,
    NEEDS_A_PERSON,
    advice_for,
    figure_lines,
    local_text,
    period_label,
)
from store import notices
from store.models import Mail, Problem, Report, Unit
from store.reports import history

logger = logging.getLogger(__name__)


def receipt_notices(
    session: Session,
    config: Config,
    mail: Mail,
    reports: list[Report],
    problems: list[Problem],
    *,
    sender_is_known: bool,
    auto_reply: bool,
    correction: bool | None = None,
    not_current: bool | None = None,
) -> list[notices.Pending]:
    """What ``mail`` should be answered with, not yet queued: the
    pipeline queues a whole batch's in one statement.

    Bounces and auto-replies get no answer (answering them starts mail
    loops), though a problem in one still reaches the coordinator; unknown
    senders get an answer only when the configuration says so.
    ``correction`` says whether a report replaces an earlier version of
    its month; the pipeline knows, else the stored history is read.
    ``not_current`` says whether a later version already stood when the
    mail was taken; else it is read from the reports as they are now.
    """
    may_answer = (
        not auto_reply
        and bool(mail.sender)
        and (sender_is_known or config.notify.receipts_to_unknown_senders)
    )
    if auto_reply:
        logger.info("mail %s: an automatic reply, not answered", mail.id)

    found: list[notices.Pending | None] = []
    if may_answer:
        found.append(
            _answer(session, config, mail, reports, problems, correction, not_current)
        )
    found.append(_attention(session, config, mail, reports, problems, may_answer))
    return [pending for pending in found if pending is not None]


def _answer(
    session: Session,
    config: Config,
    mail: Mail,
    reports: list[Report],
    problems: list[Problem],
    correction: bool | None,
    not_current: bool | None,
) -> notices.Pending | None:
    context = _mail_context(session, config, mail, problems)
    if not reports:
        if not problems:
            return None
        return notices.Pending(
            kind="problem",
            step=f"mail-{mail.id}",
            recipients=[mail.sender],
            context=context,
            mail_id=mail.id,
        )

    first = reports[0]
    if correction is None:
        # It replaced an earlier version only if it is now the one in force.
        correction = any(
            r.current and len(history(session, r.unit_id, r.period)) > 1
            for r in reports
        )
    if not_current is None:
        not_current = any(not r.current for r in reports)
    context.update(_receipt_context(session, config, reports, correction, not_current))
    return notices.Pending(
        kind="receipt",
        step=f"mail-{mail.id}",
        recipients=[mail.sender],
        context=context,
        unit_id=first.unit_id,
        period=first.period,
        mail_id=mail.id,
    )


def _attention(
    session: Session,
    config: Config,
    mail: Mail,
    reports: list[Report],
    problems: list[Problem],
    sender_notified: bool,
) -> notices.Pending | None:
    issues = [_problem_json(p) for p in problems if p.code in NEEDS_A_PERSON]
    for report in reports:
        issues.extend(
            _issue_json(w, report.attachment)
            for w in report.warnings
            if w["code"] in NEEDS_A_PERSON
        )
    if not issues or not config.notify.coordinator:
        return None

    context = _mail_context(session, config, mail, [])
    context.update(
        problems=issues,
        codes=sorted({issue["code"] for issue in issues}),
        sender_is_known=not any(i["code"] == "unknown-sender" for i in issues),
        sender_notified=sender_notified,
        raw_path=mail.raw_path,
        reports=[_report_heading(session, r) for r in reports],
    )
    return notices.Pending(
        kind="attention",
        step=f"mail-{mail.id}",
        recipients=[config.notify.coordinator],
        context=context,
        mail_id=mail.id,
    )


def _mail_context(
    session: Session, config: Config, mail: Mail, problems: list[Problem]
) -> dict[str, Any]:
    unit_ids = [p.unit_id for p in problems if p.unit_id is not None]
    unit = session.get(Unit, unit_ids[0]) if unit_ids else None
    return {
        "sender": mail.sender,
        "sender_name": mail.sender_name,
        "unit": unit.name if unit else None,
        "original_subject": mail.subject,
        "received": local_text(mail.received_at, config.tz),
        "in_reply_to": mail.message_id,
        "formats": FORMATS,
        "problems": [_problem_json(p) for p in problems],
    }


def _receipt_context(
    session: Session,
    config: Config,
    reports: list[Report],
    correction: bool,
    not_current: bool,
) -> dict[str, Any]:
    first = reports[0]
    year, month = first.period.split("-")
    return {
        "unit": _unit_name(session, first),
        "period": first.period,
        "period_label": period_label(first.period),
        "on_time": all(r.on_time for r in reports),
        "deadline": f"{int(year)}年{int(month)}月{config.reporting.deadline_day}日",
        "correction": correction,
        # A version received before the one in force (mail delivered
        # late, or imported out of order) changes nothing: say so.
        "not_current": not_current,
        "reports": [_report_json(session, r) for r in reports],
    }


def _report_json(session: Session, report: Report) -> dict[str, Any]:
    return {
        **_report_heading(session, report),
        "on_time": report.on_time,
        "attachment": report.attachment,
        "sheet": report.sheet,
        "cells": report.cells,
        "figures": figure_lines(report.values),
        "warnings": [w["message"] for w in report.warnings],
    }


def _report_heading(session: Session, report: Report) -> dict[str, str]:
    return {
        "unit": _unit_name(session, report),
        "period_label": period_label(report.period),
    }


def _unit_name(session: Session, report: Report) -> str:
    # A new report carries its unit already; looking it up by id would
    # cost a query when the roster was read in another session.
    unit = report.unit or session.get(Unit, report.unit_id)
    return unit.name if unit else f"单位 {report.unit_id}"


def _problem_json(problem: Problem) -> dict[str, Any]:
    return {
        "code": problem.code,
        "message": problem.message,
        "attachment": problem.attachment,
        "advice": advice_for(problem.code),
    }


def _issue_json(issue: dict[str, str], attachment: str) -> dict[str, Any]:
    return {
        "code": issue["code"],
        "message": issue["message"],
        "attachment": attachment,
        "advice": advice_for(issue["code"]),
    }
