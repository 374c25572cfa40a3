"""Turning a queued notice into a mail: templates, headers, attachments.

Each kind of notice has three templates in ``notify/templates/``, named by
audience and event (``unit-receipt.subject.j2``, ``.txt.j2``, ``.html.j2``).
A folder named by ``notify.templates_dir`` is searched first, so a district
can reword any of them without touching the package.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import mimetypes
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import jinja2

from lifeline.config import Config
from lifeline.errors import SendError
from store.models import Notice
from store.notices import message_id_for

logger = logging.getLogger(__name__)

PACKAGE_TEMPLATES = Path(__file__).parent / "templates"

# The template family of each notice kind.
TEMPLATES: dict[str, str] = {
    "receipt": "unit-receipt",
    "problem": "unit-problem",
    "reminder": "unit-reminder",
    "overdue": "unit-overdue",
    "attention": "coordinator-problem",
    "summary": "coordinator-summary",
    "stale-poll": "coordinator-stale-poll",
}

# RFC 3834: answers to a unit's mail are auto-replied, the rest is
# auto-generated; either way well-behaved servers send no vacation reply.
AUTO_REPLIED = frozenset({"receipt", "problem"})


class ComposeError(SendError):
    """A notice cannot be turned into a mail (a template or an attachment
    is missing or broken); sending it again would not help."""


def compose(notice: Notice, config: Config) -> EmailMessage:
    """The mail for ``notice``, ready to hand to a sender."""
    family = TEMPLATES.get(notice.kind)
    if family is None:
        raise ComposeError(f"notice {notice.key}: no templates for {notice.kind!r}")

    context = dict(notice.context, recipients=notice.recipients)
    subject, text, html = _render(family, context, config.notify.templates_dir)

    message = EmailMessage()
    _set_headers(message, notice, config, subject)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    for attachment in notice.context.get("attachments", []):
        _attach(message, attachment, config)
    return message


def _render(
    family: str, context: dict[str, Any], templates_dir: str
) -> tuple[str, str, str]:
    environment = _environment(templates_dir)
    try:
        subject = environment.get_template(f"{family}.subject.j2").render(context)
        text = environment.get_template(f"{family}.txt.j2").render(context)
        html = environment.get_template(f"{family}.html.j2").render(context)
    except jinja2.TemplateError as exc:
        raise ComposeError(f"template {family}: {exc}") from exc

    # A subject is one line whatever the template's line breaks.
    return " ".join(subject.split()), text, html


def render_text(family: str, context: dict[str, Any], templates_dir: str = "") -> str:
    """The plain-text body of a notice, e.g. for a dry run."""
    return _render(family, context, templates_dir)[1]


@functools.lru_cache(maxsize=8)
def _environment(templates_dir: str) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(templates_dir))
    loaders.append(jinja2.FileSystemLoader(PACKAGE_TEMPLATES))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html.j2"], default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _set_headers(
    message: EmailMessage, notice: Notice, config: Config, subject: str
) -> None:
    message["Subject"] = subject
    message["From"] = config.smtp.sender
    message["To"] = ", ".join(notice.recipients)
    message["Date"] = format_datetime(dt.datetime.now(config.tz))
    message["Message-ID"] = message_id_for(notice.key, sender_domain(config))

    automatic = "auto-replied" if notice.kind in AUTO_REPLIED else "auto-generated"
    message["Auto-Submitted"] = automatic
    # Exchange ignores Auto-Submitted; this keeps its out-of-office quiet.
    message["X-Auto-Response-Suppress"] = "All"

    original = notice.context.get("in_reply_to")
    if original:
        message["In-Reply-To"] = original
        message["References"] = original


def sender_domain(config: Config) -> str:
    address = parseaddr(config.smtp.sender)[1]
    return address.partition("@")[2] or "lifeline"


def _attach(message: EmailMessage, attachment: dict[str, str], config: Config) -> None:
    path = config.data_dir / attachment["path"]
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ComposeError(f"attachment {path}: {exc.strerror}") from exc

    filename = attachment.get("filename") or path.name
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    maintype, _, subtype = content_type.partition("/")
    message.add_attachment(
        content, maintype=maintype, subtype=subtype, filename=filename
    )
