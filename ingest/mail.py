"""Decode a raw mail into what ingest needs: who, when, what it says, and
the files that may hold the table.

The parser runs with the compat32 policy: it keeps header bytes as they
came, so the Chinese charsets are decoded here (ingest.headers) rather than
by the modern policy, which mislabels GBK text sent as gb2312 and gives up
on raw 8-bit names. decode_mail never raises: a broken mail yields what
could be read and an ``undecodable-mail`` problem.
"""

from __future__ import annotations

import datetime as dt
import email
import email.errors
import email.policy
import email.utils
import html
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import TypeVar

from ingest.archives import ArchiveLimits
from ingest.attachments import (
    decode_part_text,
    disposition,
    find_attachments,
    part_filename,
    raw_header,
)
from ingest.headers import header_text, parse_address, unfold
from ingest.model import Attachment, Issue
from ingest.split import SplitMail, as_message

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Links of the mail services' "large attachment" clouds (163/126 超大附件,
# QQ 文件中转站) and the word they put in the body.
_CLOUD_MARKERS = re.compile(
    r"mail\.163\.com/large-attachment-download|dashi\.163\.com|"
    r"wx\.mail\.qq\.com/ftn|mail\.qq\.com/cgi-bin/ftnExs_download|超大附件",
    re.IGNORECASE,
)
_TAG = re.compile(r"<(?:script|style)\b.*?</(?:script|style)>|<[^>]+>", re.S | re.I)
_PRECEDENCE_AUTOMATED = frozenset({"bulk", "junk", "list", "auto_reply"})
_MAILER_DAEMONS = frozenset({"mailer-daemon", "postmaster"})
_COMMENT = re.compile(r"\([^()]*\)")


@dataclass
class DecodedMail:
    """A mail as ingest sees it. ``attachments`` are candidate table files
    in mail order; ``problems`` are for the sender (oversized attachment,
    cloud attachment, unreadable archive, undecodable mail)."""

    message_id: str | None
    sender: str
    sender_name: str
    subject: str
    date: dt.datetime | None
    received_at: dt.datetime | None
    body_text: str
    attachments: list[Attachment] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)
    auto_reply: bool = False


def decode_mail(
    raw: bytes,
    *,
    split: SplitMail | None = None,
    max_attachment_bytes: int = 25 * 1024 * 1024,
    archive_limits: ArchiveLimits = ArchiveLimits(),
) -> DecodedMail:
    """Decode ``raw`` (the mail's bytes as fetched). ``split``, the parts
    the server cut it into, spares parsing the whole mail and gives the
    same result. Never raises."""
    problems: list[Issue] = []
    message = _from_parts(split, raw) if split is not None else None
    if message is None:
        message = _parsed(raw, problems)

    if _is_broken(message):
        problems.append(_undecodable())

    def safely(step: Callable[[], T], default: T) -> T:
        # One unforeseen flaw in a header must not cost the attachments.
        try:
            return step()
        except Exception:  # noqa: BLE001 - see above
            logger.warning("mail %r: decoding step failed", raw[:60], exc_info=True)
            if _undecodable() not in problems:
                problems.append(_undecodable())
            return default

    sender_name, sender = safely(lambda: _from(message), ("", ""))
    findings = safely(
        lambda: find_attachments(
            message, max_bytes=max_attachment_bytes, limits=archive_limits
        ),
        None,
    )
    attachments = findings.attachments if findings else []
    problems += findings.problems if findings else []
    plain, markup = safely(lambda: _body(message), ("", ""))
    if not attachments and _CLOUD_MARKERS.search(plain + markup):
        problems.append(_cloud_attachment())

    return DecodedMail(
        message_id=safely(lambda: _message_id(message), None),
        sender=sender,
        sender_name=sender_name,
        subject=safely(lambda: _header(message, "subject"), ""),
        date=safely(lambda: _date(_header(message, "date")), None),
        received_at=safely(lambda: _received_at(message), None),
        body_text=_normalize_newlines(plain or _strip_tags(markup)),
        attachments=attachments,
        problems=problems,
        auto_reply=safely(lambda: _is_auto_reply(message, sender), False),
    )


def _from_parts(split: SplitMail, raw: bytes) -> Message | None:
    """The message built from the server's parts; None (parse the raw
    mail) where that cannot be done exactly."""
    try:
        return as_message(split, raw)
    except Exception:  # noqa: BLE001 - the raw mail is still there to parse
        logger.warning(
            "mail %r: its parts are unusable", split.header[:60], exc_info=True
        )
        return None


def _parsed(raw: bytes, problems: list[Issue]) -> Message:
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except Exception:  # noqa: BLE001 - any bytes at all must give a result
        logger.warning("mail of %d bytes: parser failed", len(raw), exc_info=True)
        problems.append(_undecodable())
        return Message()


def _undecodable() -> Issue:
    return Issue(
        "undecodable-mail",
        "the mail is damaged and could only be read in part; send it again "
        "with the statistics table as an ordinary attachment",
    )


def _cloud_attachment() -> Issue:
    return Issue(
        "cloud-attachment",
        "the table was sent as a cloud link (超大附件 / 文件中转站), which "
        "cannot be downloaded; attach the file itself and send it again",
    )


def _is_broken(message: Message) -> bool:
    """No header at all, or a multipart whose parts could not be found."""
    if not message.keys():
        return True
    fatal = (
        email.errors.StartBoundaryNotFoundDefect,
        email.errors.MultipartInvariantViolationDefect,
        email.errors.NoBoundaryInMultipartDefect,
    )
    return any(isinstance(defect, fatal) for defect in message.defects)


def _header(message: Message, name: str) -> str:
    raw = raw_header(message, name)
    return header_text(raw) if raw is not None else ""


def _message_id(message: Message) -> str | None:
    return _header(message, "message-id") or None


def _from(message: Message) -> tuple[str, str]:
    raw = raw_header(message, "from")
    return parse_address(raw) if raw is not None else ("", "")


def _date(text: str) -> dt.datetime | None:
    """An aware datetime from an RFC 5322 date, tolerant of comments such
    as "(CST)"; a date without zone is taken as UTC."""
    text = _COMMENT.sub(" ", text).strip()
    if not text:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed


def _received_at(message: Message) -> dt.datetime | None:
    """The date our own server stamped: after the last ";" of the topmost
    Received header."""
    raw = raw_header(message, "received")
    if raw is None:
        return None
    text = unfold(raw.decode("ascii", errors="replace"))
    return _date(text.rpartition(";")[2])


def _is_auto_reply(message: Message, sender: str) -> bool:
    """Out-of-office replies, bounces and list mail: never answered, so that
    two robots do not answer each other."""
    auto_submitted = _header(message, "auto-submitted").lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if _header(message, "precedence").lower() in _PRECEDENCE_AUTOMATED:
        return True
    if _header(message, "list-id") or _header(message, "x-autoreply"):
        return True
    return_path = raw_header(message, "return-path")
    if return_path is not None and return_path.strip() == b"<>":
        return True
    return sender.partition("@")[0] in _MAILER_DAEMONS


def _body(message: Message) -> tuple[str, str]:
    """(text/plain, text/html) of the top mail: the first of each that is
    not an attachment; forwarded mails are not entered."""
    plain = markup = ""
    for part in _body_parts(message):
        kind = part.get_content_type()
        if kind == "text/plain" and not plain:
            plain = decode_part_text(part)
        elif kind == "text/html" and not markup:
            markup = decode_part_text(part)
    return plain, markup


def _body_parts(part: Message) -> list[Message]:
    if part.get_content_maintype() == "message":
        return []
    if part.is_multipart():
        children = part.get_payload()
        return [
            leaf
            for child in children
            if isinstance(child, Message)
            for leaf in _body_parts(child)
        ]
    if part_filename(part) or disposition(part) == "attachment":
        return []
    return [part]


def _normalize_newlines(text: str) -> str:
    # Quoted-printable CRLF bodies decode to "\r\r\n" under compat32.
    return re.sub(r"\r+\n?", "\n", text)


def _strip_tags(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", markup)).strip()
