"""A mail as the IMAP server splits it, so a backlog is read without the
email package's parser walking every line of every mail.

The server knows each mail's tree (BODYSTRUCTURE) and hands over every
part's own header (BODY[n.MIME]) and body (BODY[n]). The email package
still reads every header and decodes every body, as it does for the whole
mail; only the cutting at the boundaries is the server's. Where the two
could cut differently, there is no split and the raw mail is parsed whole,
as before; the raw mail is fetched and kept either way.

Bodies are asked for still transfer-encoded (BODY, not RFC 3516 BINARY),
so they are decoded exactly as in a whole mail: Dovecot 2.3.19 decodes
quoted-printable otherwise (it drops trailing blanks), decodes a
"base64 " the email package leaves alone, and drops the connection on
base64 whose length is not a multiple of four.
"""

from __future__ import annotations

import email.parser
import email.policy
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message

logger = logging.getLogger(__name__)

# RFC 2046 allows 70 characters; Dovecot matches only the first 80 of a
# longer one, and the email package all of it.
MAX_BOUNDARY = 70
# A FETCH names every part: a mail of more parts is parsed whole rather
# than sent as one very long command line.
MAX_PARTS = 100
_HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class Leaf:
    """A part that holds content: its header block and its body, still
    transfer-encoded, both byte for byte as they are in the mail."""

    header: bytes
    body: bytes


@dataclass(frozen=True)
class Multipart:
    """A multipart/* part: its header block, and its parts in order as
    the server cut them at ``boundary``."""

    header: bytes
    boundary: str
    parts: tuple[Leaf | Multipart, ...]


# The whole mail: its header block, then its one body or its parts.
SplitMail = Leaf | Multipart

# Runs one FETCH of these items for these UIDs.
FetchParts = Callable[[list[int], list[bytes]], dict[int, dict[bytes, object]]]


@dataclass(frozen=True)
class _Shape:
    """Where a part sits (its IMAP section, "" for the mail itself) and,
    for a multipart, its boundary and parts, as the server read them from
    BODYSTRUCTURE."""

    section: str
    boundary: str = ""
    parts: tuple[_Shape, ...] = ()


def split_all(
    mails: dict[int, tuple[bytes, object]], fetch_parts: FetchParts
) -> dict[int, SplitMail]:
    """The parts of each mail the server can split, by UID. ``mails``
    maps a UID to its raw bytes and its BODYSTRUCTURE; the parts of all
    mails of one structure are fetched together, in one FETCH."""
    shapes: dict[int, _Shape] = {}
    groups: dict[tuple[bytes, ...], list[int]] = {}
    for uid, (_, structure) in mails.items():
        shape = _shape_of(structure)
        if shape is not None:
            shapes[uid] = shape
            groups.setdefault(tuple(_items(shape)), []).append(uid)

    found: dict[int, SplitMail] = {}
    for items, uids in groups.items():
        fetched = fetch_parts(uids, list(items))
        for uid in uids:
            split = _assembled(shapes[uid], mails[uid][0], fetched.get(uid, {}))
            if split is not None:
                found[uid] = split
    return found


def as_message(split: SplitMail, raw: bytes) -> Message | None:
    """The mail as ``email.message_from_bytes`` (compat32) reads ``raw``,
    built from the server's parts; None where the email package might
    have cut ``raw`` otherwise, so the raw mail must be parsed."""
    if not _cut_alike(split, raw):
        return None
    return _message(split)


# --- the server's side: which parts to fetch, and the parts fetched -----------


def _shape_of(structure: object) -> _Shape | None:
    """The mail's tree from its BODYSTRUCTURE (as imapclient parsed it),
    or None when it is not to be split: it holds a forwarded mail or any
    other message/* part, or too many parts, or is not understood."""
    try:
        shape = _shape(structure, "")
    except (TypeError, IndexError):
        return None
    if shape is None or len(_descendants(shape)) > MAX_PARTS:
        return None
    return shape


def _shape(structure: object, section: str) -> _Shape | None:
    if not isinstance(structure, tuple):
        return None
    if isinstance(structure[0], list):
        return _multipart_shape(structure, section)
    if _text(structure[0]).lower() == "message":
        return None
    return _Shape(section)


def _multipart_shape(structure: tuple[object, ...], section: str) -> _Shape | None:
    children, subtype = structure[0], _text(structure[1]).lower()
    boundary = _boundary(structure[2] if len(structure) > 2 else None)
    # A digest's parts are mails by default: not ours to split.
    if not isinstance(children, list) or not children or subtype == "digest":
        return None
    if boundary is None or not 0 < len(boundary) <= MAX_BOUNDARY:
        return None

    parts = []
    for number, child in enumerate(children, 1):
        part = _shape(child, f"{section}.{number}" if section else str(number))
        if part is None:
            return None
        parts.append(part)
    return _Shape(section, boundary, tuple(parts))


def _boundary(params: object) -> str | None:
    """The boundary parameter of a multipart's BODYSTRUCTURE parameters
    (a flat tuple of names and values)."""
    if not isinstance(params, tuple):
        return None
    for name, value in zip(params[::2], params[1::2]):
        if _text(name).lower() == "boundary":
            return _text(value)
    return None


def _text(value: object) -> str:
    if not isinstance(value, bytes):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return value.decode("ascii", "surrogateescape")


def _items(shape: _Shape) -> list[bytes]:
    """What to FETCH for a mail of this shape: each part's header and each
    leaf's body (.PEEK, so that \\Seen is not set)."""
    if not shape.parts:
        return [b"BODY.PEEK[TEXT]"]
    found = []
    for part in _descendants(shape):
        found.append(f"BODY.PEEK[{part.section}.MIME]".encode())
        if not part.parts:
            found.append(f"BODY.PEEK[{part.section}]".encode())
    return found


def _descendants(shape: _Shape) -> list[_Shape]:
    found = []
    for part in shape.parts:
        found += [part, *_descendants(part)]
    return found


def _assembled(
    shape: _Shape, raw: bytes, data: dict[bytes, object]
) -> SplitMail | None:
    """The split mail from the server's FETCH answer, its own header block
    taken from the raw mail; None when the answer lacks a part."""
    end = raw.find(_HEADER_END)
    if end < 0:
        return None
    header = raw[: end + len(_HEADER_END)]
    try:
        if not shape.parts:
            return Leaf(header, _fetched(data, "TEXT"))
        return _part(shape, header, data)
    except KeyError:
        return None


def _part(shape: _Shape, header: bytes, data: dict[bytes, object]) -> SplitMail:
    if not shape.parts:
        return Leaf(header, _fetched(data, shape.section))
    parts = tuple(
        _part(part, _fetched(data, f"{part.section}.MIME"), data)
        for part in shape.parts
    )
    return Multipart(header, shape.boundary, parts)


def _fetched(data: dict[bytes, object], section: str) -> bytes:
    # The server names the data it returns without the .PEEK.
    value = data.get(f"BODY[{section}]".encode())
    if not isinstance(value, bytes):
        raise KeyError(section)
    return value


# --- the reader's side: the message, where both would cut alike ---------------


def _cut_alike(split: SplitMail, raw: bytes) -> bool:
    """Whether the email package cuts ``raw`` where the server did.

    The email package ends a line at a bare CR too, Dovecot only at LF.
    Dovecot takes any line that starts with a boundary as its delimiter,
    the email package only one followed by nothing but "--" and blanks.
    At the end of a multipart never closed, the email package drops the
    last line end and Dovecot keeps it.
    """
    if _bare_line_ends(raw):
        return False
    if isinstance(split, Leaf):
        return True
    last = _last_leaf(split)
    return _delimiters_plain(raw, _boundaries(split)) and not raw.endswith(last.body)


def _bare_line_ends(data: bytes) -> bool:
    """Whether ``data`` has a CR or LF that is not part of a CRLF."""
    crlf = data.count(b"\r\n")
    return data.count(b"\r") != crlf or data.count(b"\n") != crlf


def _delimiters_plain(raw: bytes, boundaries: list[bytes]) -> bool:
    """Whether every line that starts with "--" and a boundary is that
    boundary's delimiter line, and no boundary starts with another."""
    for boundary in boundaries:
        if any(o.startswith(boundary) for o in boundaries if o != boundary):
            return False
    starts = tuple(b"--" + boundary for boundary in boundaries)
    delimiters = {start + end for start in starts for end in (b"", b"--")}

    at = raw.find(b"\r\n--")
    while at >= 0:
        end = raw.find(b"\r\n", at + 2)
        line = raw[at + 2 : end if end >= 0 else len(raw)]
        if line.startswith(starts) and line.rstrip(b" \t") not in delimiters:
            return False
        at = raw.find(b"\r\n--", at + 2)
    return True


def _boundaries(split: Multipart) -> list[bytes]:
    found = [split.boundary.encode("ascii", "surrogateescape")]
    for part in split.parts:
        if isinstance(part, Multipart):
            found += _boundaries(part)
    return found


def _last_leaf(split: SplitMail) -> Leaf:
    while isinstance(split, Multipart):
        split = split.parts[-1]
    return split


def _message(split: SplitMail) -> Message | None:
    message = _header(split.header)
    if message is None:
        return None
    if isinstance(split, Leaf):
        return _leaf(message, split.body)

    # The email package must split this part as the server did: as a
    # multipart, not a digest (whose parts are mails), at the same boundary.
    if (
        message.get_content_maintype() != "multipart"
        or message.get_content_type() == "multipart/digest"
        or message.get_boundary() != split.boundary
    ):
        return None
    parts = [_message(part) for part in split.parts]
    if any(part is None for part in parts):
        return None
    message.set_payload(parts)
    return message


def _header(header: bytes) -> Message | None:
    """The header block read as the email package reads it in a whole
    mail; None if it is not plainly a header: empty (Dovecot's answer for
    a part it made up) or with a line that is no header field."""
    if not header:
        return None
    message = _HEADERS.parsebytes(header)
    if message.defects:
        return None
    return message


def _leaf(message: Message, body: bytes) -> Message | None:
    if message.get_content_maintype() in ("multipart", "message"):
        return None
    message.set_payload(body.decode("ascii", "surrogateescape"))
    return message


_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)
