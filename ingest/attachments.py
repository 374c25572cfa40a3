"""Find the files in a mail that may hold the statistics table.

A table arrives in every packaging mailers produce: a plain attachment, an
inline part, an octet-stream, a mail whose whole body is the file, a
forwarded mail (possibly base64-encoded), Outlook's winmail.dat, or an
archive. Whether a document really holds a table is for the table reader to
decide; here only photos, signatures, calendar and contact cards, and text
bodies are left out.
"""

from __future__ import annotations

import email
import email.policy
import io
import logging
import mimetypes
import re
import unicodedata
import zipfile
from dataclasses import dataclass, field
from email.message import Message

from ingest.archives import (
    TNEF_MAGIC,
    ArchiveLimits,
    archive_kind,
    unpack_archive,
    unpack_winmail,
)
from ingest.headers import decode_text, header_text, parse_params
from ingest.model import Attachment, Issue
from lifeline.errors import TableError

logger = logging.getLogger(__name__)

TABLE_EXTENSIONS = frozenset(
    {"xlsx", "xlsm", "xls", "et", "ods", "csv"}
    | {"doc", "docx", "wps", "htm", "html", "xml"}
)
ARCHIVE_EXTENSIONS = frozenset({"zip", "7z", "rar"})
IGNORED_EXTENSIONS = frozenset({"p7s", "p7m", "asc", "sig", "vcf", "ics", "vcs"})
IGNORED_TYPES = frozenset(
    {
        "application/pkcs7-signature",
        "application/x-pkcs7-signature",
        "application/pgp-signature",
        "application/pgp-keys",
        "text/calendar",
        "text/vcard",
        "text/x-vcard",
        "text/directory",
    }
)

# A name for a part that has none, so the reader and the sender see what
# kind of file it was.
_EXTENSION_BY_TYPE = {
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsm",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "text/csv": "csv",
    "application/zip": "zip",
    "application/x-zip-compressed": "zip",
    "application/x-7z-compressed": "7z",
    "application/ms-tnef": "dat",
    "message/rfc822": "eml",
}

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKUP_START = re.compile(rb"^\s*<(?:\?xml|!doctype html|html|table)", re.IGNORECASE)

# A forward of a forward of ...: deep enough for real mail, shallow enough
# that a crafted nesting cannot recurse without end.
MAX_DEPTH = 6
_MAX_NAME_BYTES = 180
_UNSAFE_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')


@dataclass
class Findings:
    """What the MIME walk found: candidate files in mail order, and the
    problems the sender should hear about."""

    attachments: list[Attachment] = field(default_factory=list)
    problems: list[Issue] = field(default_factory=list)


@dataclass(frozen=True)
class _Context:
    max_bytes: int
    limits: ArchiveLimits
    container: str | None = None
    depth: int = 0

    def inside(self, container: str | None) -> _Context:
        return _Context(self.max_bytes, self.limits, container, self.depth + 1)


def find_attachments(
    message: Message,
    *,
    max_bytes: int,
    limits: ArchiveLimits = ArchiveLimits(),
) -> Findings:
    """Every candidate table file in ``message``, forwards and archives
    opened."""
    findings = Findings()
    _visit(message, _Context(max_bytes, limits), findings)
    return findings


def safe_filename(name: str) -> str:
    """A name fit for storing on disk: last path component, no control or
    reserved characters, no leading dots, at most ~180 UTF-8 bytes with the
    extension kept."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").split("/")[-1]
    name = _UNSAFE_CHARS.sub("_", name).strip().lstrip(".").strip()
    if not name:
        return "attachment"
    stem, dot, extension = name.rpartition(".")
    if not dot or len(extension) > 10:
        stem, extension = name, ""
    suffix = f".{extension}" if extension else ""
    while len((stem + suffix).encode("utf-8")) > _MAX_NAME_BYTES and stem:
        stem = stem[:-1]
    return (stem + suffix) if stem else f"attachment{suffix}"


def raw_header(part: Message, name: str) -> bytes | None:
    """A header's bytes as they came, undecoded (the parser keeps 8-bit
    bytes as surrogate escapes)."""
    for key, value in part.raw_items():
        if key.lower() == name:
            return str(value).encode("utf-8", "surrogateescape")
    return None


def part_filename(part: Message) -> str:
    """The decoded file name of a part: Content-Disposition's filename, else
    Content-Type's name (either header may carry either parameter)."""
    for header in ("content-disposition", "content-type"):
        raw = raw_header(part, header)
        if raw is None:
            continue
        _, params = parse_params(raw)
        for key in ("filename", "name"):
            if params.get(key):
                return params[key]
    return ""


def disposition(part: Message) -> str:
    """The lower-cased disposition type ("attachment", "inline") or ""."""
    raw = raw_header(part, "content-disposition")
    return parse_params(raw)[0] if raw else ""


def _extension(name: str) -> str:
    return name.lower().rsplit(".", 1)[-1] if "." in name else ""


def _visit(part: Message, context: _Context, findings: Findings) -> None:
    content_type = part.get_content_type()
    if part.is_multipart() and part.get_content_maintype() != "message":
        for child in part.get_payload():
            if isinstance(child, Message):
                _visit(child, context, findings)
        return

    # Mail from the wild breaks in ways no test foresees; one bad part
    # must not cost the sender the table in the next one.
    try:
        if part.get_content_maintype() == "message" and (
            content_type == "message/rfc822" or part.is_multipart()
        ):
            _visit_forward(part, context, findings)
        else:
            _visit_leaf(part, context, findings)
    except Exception:  # noqa: BLE001 - see above
        logger.warning("part %s: cannot be read", content_type, exc_info=True)
        findings.problems.append(
            Issue(
                "undecodable-mail",
                "one part of the mail could not be read; send it again with "
                "the statistics table as an ordinary attachment",
            )
        )


def _visit_leaf(part: Message, context: _Context, findings: Findings) -> None:
    name = part_filename(part)
    content_type = part.get_content_type()
    is_attached = bool(name) or disposition(part) == "attachment"
    if not is_attached and part.get_content_maintype() in ("text", "multipart"):
        return
    if _is_ignored(name, content_type):
        return
    content = part.get_payload(decode=True)
    if not isinstance(content, bytes):
        return
    name = name or _default_name(content_type, content)
    _take_file(name, content, content_type, context, findings)


def _is_ignored(name: str, content_type: str) -> bool:
    """Photos, signatures, cards and calendar entries never hold a table."""
    if content_type in IGNORED_TYPES or content_type.startswith(
        ("image/", "audio/", "video/")
    ):
        return _extension(name) not in TABLE_EXTENSIONS | ARCHIVE_EXTENSIONS
    return _extension(name) in IGNORED_EXTENSIONS


def _default_name(content_type: str, content: bytes) -> str:
    extension = _EXTENSION_BY_TYPE.get(content_type)
    if extension is None and content.startswith(OLE2_MAGIC):
        extension = "xls"
    return f"attachment.{extension}" if extension else "attachment"


def _take_file(
    name: str,
    content: bytes,
    content_type: str,
    context: _Context,
    findings: Findings,
) -> None:
    """Keep a file, or open it if it is a container of more files."""
    if len(content) > context.max_bytes:
        findings.problems.append(_oversized(name, context.max_bytes))
        return
    kind = _file_kind(name, content, content_type)
    if kind not in ("table", None) and context.depth >= MAX_DEPTH:
        findings.problems.append(_too_deep(name))
        return
    if kind == "table":
        findings.attachments.append(
            Attachment(name, content, content_type, context.container)
        )
    elif kind == "archive":
        _take_archive(name, content, context, findings)
    elif kind == "winmail":
        _take_winmail(name, content, context, findings)
    elif kind == "mail":
        forwarded = email.message_from_bytes(content, policy=email.policy.compat32)
        _visit_message(forwarded, context, findings)
    else:
        logger.debug("%s: not a table candidate (%s)", name, content_type)


def _file_kind(name: str, content: bytes, content_type: str) -> str | None:
    """"table", "archive", "winmail", "mail" or None: by extension first,
    then by content for files named oddly or not at all."""
    extension = _extension(name)
    if extension in TABLE_EXTENSIONS:
        return "table"
    if content.startswith(TNEF_MAGIC) or content_type == "application/ms-tnef":
        return "winmail"
    if extension == "eml" or content_type == "message/rfc822":
        return "mail"
    if content.startswith(OLE2_MAGIC) or _is_office_zip(content):
        return "table"
    if archive_kind(name, content) is not None:
        return "archive"
    if content_type != "text/plain" and extension != "txt":
        if _MARKUP_START.match(content[:512]):
            return "table"
    return None


def _is_office_zip(content: bytes) -> bool:
    """An OOXML or OpenDocument file, whatever its name says (only the
    central directory is read)."""
    if not content.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return "[Content_Types].xml" in names or "mimetype" in names


def _too_deep(name: str) -> Issue:
    return Issue(
        "archive-too-large",
        f"{name} is nested too deeply (archives in archives or forwards of "
        f"forwards); attach the statistics table itself",
    )


def _oversized(name: str, limit: int) -> Issue:
    return Issue(
        "oversized-attachment",
        f"{name} is larger than the limit of {limit:,} bytes and was not "
        f"read; send only the statistics table, without pictures",
    )


def _take_archive(
    name: str, content: bytes, context: _Context, findings: Findings
) -> None:
    try:
        members = unpack_archive(name, content, context.limits)
    except TableError as error:
        logger.info("%s: archive refused: %s", name, error.code)
        findings.problems.append(Issue(error.code, str(error)))
        return
    inner = context.inside(name)
    for member in members:
        if not _is_ignored(member.name, ""):
            kind = _guess_type(member.name)
            _take_file(member.name, member.content, kind, inner, findings)


def _take_winmail(
    name: str, content: bytes, context: _Context, findings: Findings
) -> None:
    try:
        files = unpack_winmail(content)
    except TableError as error:
        findings.problems.append(Issue(error.code, f"{name}: {error}"))
        return
    inner = context.inside(name)
    for member in files:
        kind = _guess_type(member.name)
        _take_file(member.name, member.content, kind, inner, findings)


def _guess_type(name: str) -> str:
    """A content type for a file that came without one (from an archive)."""
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def _visit_forward(part: Message, context: _Context, findings: Findings) -> None:
    """Open a forwarded mail. Some mailers base64-encode message/rfc822
    (not allowed, but common); the parser then sees the encoded text as a
    headerless body, so it is decoded and parsed again."""
    if context.depth >= MAX_DEPTH:
        findings.problems.append(_too_deep(part_filename(part) or "message/rfc822"))
        return
    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    children = part.get_payload()
    if encoding in ("base64", "quoted-printable"):
        content = _encoded_inner(children, encoding)
        forwarded = email.message_from_bytes(content, policy=email.policy.compat32)
    elif isinstance(children, list) and children and isinstance(children[0], Message):
        forwarded = children[0]
    else:
        return
    _visit_message(forwarded, context, findings)


def _encoded_inner(children: object, encoding: str) -> bytes:
    """The decoded bytes of a message/rfc822 part the parser already split
    as if it were not encoded."""
    if not isinstance(children, list) or not children:
        return b""
    inner = children[0]
    head = "".join(f"{key}: {value}\n" for key, value in inner.raw_items())
    body = inner.get_payload()
    text = head + ("\n" if head else "") + (body if isinstance(body, str) else "")
    carrier = Message()
    carrier["Content-Transfer-Encoding"] = encoding
    carrier.set_payload(text)
    decoded = carrier.get_payload(decode=True)
    return decoded if isinstance(decoded, bytes) else b""


def _visit_message(forwarded: Message, context: _Context, findings: Findings) -> None:
    """Walk a forwarded mail; its files are labelled with its subject."""
    subject_raw = raw_header(forwarded, "subject")
    subject = header_text(subject_raw) if subject_raw is not None else ""
    _visit(forwarded, context.inside(subject or None), findings)


def decode_part_text(part: Message) -> str:
    """The text of a text/* part in its declared charset, with fallbacks."""
    content = part.get_payload(decode=True)
    if not isinstance(content, bytes):
        return ""
    return decode_text(content, part.get_content_charset())

