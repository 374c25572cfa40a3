"""Decode mail header text and MIME parameters the way Chinese mailers
actually write them.

The standard library follows the RFCs; the mails we get do not always.
Every function here takes raw bytes (or ASCII text with encoded words) and
returns the best text it can: it never raises on bad input.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import logging
import re
import urllib.parse

logger = logging.getLogger(__name__)

# GB2312 and GBK are subsets of GB18030; mailers label GBK text "gb2312"
# all the time, so decoding with the superset loses nothing and fixes
# every character outside GB2312.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "big5": "big5hkscs",
    "utf8": "utf-8",
}

# Undeclared 8-bit text: UTF-8 is strict enough that a GBK name almost
# never passes as UTF-8, so it goes first.
_FALLBACK_CHARSETS = ("utf-8", "gb18030")

_ENCODED_WORD = re.compile(
    r"=\?(?P<charset>[^?\s]+)\?(?P<encoding>[BbQq])\?(?P<text>[^?]*)\?="
)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_EXTENDED_NAME = re.compile(r"^(?P<base>[^*]+)(?:\*(?P<section>\d+))?(?P<star>\*)?$")
_ADDRESS = re.compile(r"[\w.+\-=]+@[\w\-]+(?:\.[\w\-]+)+")


def normalize_charset(charset: str | None) -> str | None:
    """A codec name for a MIME charset label, with the Chinese supersets."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()

    # RFC 2231 lets a language ride on the charset: "utf-8*zh-cn".
    label = label.split("*", 1)[0]
    return _CHARSET_ALIASES.get(label, label)


def decode_text(raw: bytes, charset: str | None = None) -> str:
    """Bytes to text: the declared charset if it fits, else UTF-8, else
    GB18030, else the declared charset (or UTF-8) with replacement marks."""
    codec = normalize_charset(charset)
    candidates = [codec] if codec else []
    candidates += [c for c in _FALLBACK_CHARSETS if c != codec]
    for candidate in candidates:
        try:
            return raw.decode(candidate)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return raw.decode(codec or "utf-8", errors="replace")
    except LookupError:
        return raw.decode("utf-8", errors="replace")


def _word_bytes(encoding: str, text: str) -> bytes:
    """The bytes of one encoded word's text, forgiving bad padding and
    stray characters."""
    if encoding in "Bb":
        cleaned = re.sub(r"[^A-Za-z0-9+/]", "", text)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        cleaned += "=" * (-len(cleaned) % 4)
        try:
            return base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            return b""
    return _q_bytes(text)


def _q_bytes(text: str) -> bytes:
    """RFC 2047 Q: underscores are spaces, =XX are bytes; a stray "="
    stays literal."""
    data = text.replace("_", " ").encode("utf-8", "surrogateescape")
    return re.sub(
        rb"=([0-9A-Fa-f]{2})", lambda m: bytes([int(m.group(1), 16)]), data
    )


def decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words anywhere in ``text``.

    Adjacent words in one charset are joined as bytes before decoding, as
    mailers split long names in the middle of a multibyte character.
    Whitespace between encoded words is dropped (RFC 2047 section 6.2).
    """
    pieces: list[str] = []
    pending: bytearray = bytearray()
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            pieces.append(decode_text(bytes(pending), pending_charset))
        pending, pending_charset = bytearray(), None

    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        if between.strip() or pending_charset is None:
            flush()
            pieces.append(between)
        charset = normalize_charset(match["charset"]) or "utf-8"
        if charset != pending_charset:
            flush()
            pending_charset = charset
        pending += _word_bytes(match["encoding"], match["text"])
        position = match.end()
    flush()
    pieces.append(text[position:])
    return "".join(pieces)


def unfold(text: str) -> str:
    """Join folded header lines."""
    return _FOLD.sub("", text).replace("\r", "").replace("\n", "")


def header_text(raw: bytes) -> str:
    """A header value as text: raw 8-bit bytes guessed, encoded words
    decoded, folding removed."""
    return decode_words(unfold(decode_text(raw))).strip()


def parse_address(raw: bytes) -> tuple[str, str]:
    """(display name, lower-cased address) of a From-like header."""
    text = unfold(decode_text(raw)).strip()
    name, address = email.utils.parseaddr(text)
    if "@" not in address:
        found = _ADDRESS.search(text)
        address = found.group(0) if found else ""
        name = text[: found.start()].strip(' "<') if found else text
    return decode_words(name).strip().strip('"').strip(), address.lower()


def _split_params(text: str) -> list[str]:
    """Split a structured header at semicolons outside quotes and outside
    encoded words (a Q word may hold a ";")."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    index = 0
    while index < len(text):
        char = text[index]
        word = None if quoted else _ENCODED_WORD.match(text, index)
        if word is not None:
            current.append(word.group(0))
            index = word.end()
            continue
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    """Strip quotes; a backslash escapes only a quote or a backslash, so a
    Windows path written unescaped by Outlook keeps its separators."""
    value = value.strip()
    if not value.startswith('"'):
        return value
    value = value[1:-1] if value.endswith('"') and len(value) > 1 else value[1:]
    return re.sub(r'\\(["\\])', r"\1", value)


def _join_extended(sections: list[tuple[int, bool, str]]) -> str:
    """An RFC 2231 value from its sections: bytes are joined before
    decoding, as a character may be split across two sections."""
    charset: str | None = None
    data = bytearray()
    for number, encoded, value in sorted(sections):
        if encoded and number == 0 and value.count("'") >= 2:
            charset, _language, value = value.split("'", 2)
        if encoded:
            data += urllib.parse.unquote_to_bytes(value)
        else:
            data += value.encode("utf-8", "surrogateescape")
    return decode_text(bytes(data), charset)


def parse_params(raw: bytes) -> tuple[str, dict[str, str]]:
    """(lower-cased main value, decoded parameters) of a structured header
    such as Content-Type or Content-Disposition.

    Parameter names are lower-cased; RFC 2231 values (``name*``,
    ``name*0*``...) win over plain ones of the same name, and plain values
    have their encoded words decoded (mailers quote them, against the RFC).
    """
    main, *items = _split_params(unfold(decode_text(raw)))
    plain: dict[str, str] = {}
    extended: dict[str, list[tuple[int, bool, str]]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        parsed = _EXTENDED_NAME.match(key.strip().lower())
        if not sep or parsed is None:
            continue
        base, section, star = parsed["base"], parsed["section"], parsed["star"]
        if section is None and star is None:
            plain[base] = decode_words(_unquote(value)).strip()
            continue
        number = int(section) if section is not None else 0
        extended.setdefault(base, []).append((number, bool(star), _unquote(value)))
    params = dict(plain)
    for base, sections in extended.items():
        params[base] = decode_words(_join_extended(sections)).strip()
    return main.strip().lower(), params
