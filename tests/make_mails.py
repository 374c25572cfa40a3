"""Build the fixture mails of tests/test_mail.py, one per way a mailer
encodes a file name or packages a table.

Each builder returns the raw bytes of a mail (or of a header parameter) so a
reader can see exactly what the test feeds decode_mail. Run as a script to
write every fixture mail into a folder for a look with a mail reader:

    python tests/make_mails.py /tmp/fixture-mails
"""

from __future__ import annotations

import base64
import io
import struct
import sys
import urllib.parse
import zipfile
from pathlib import Path

import openpyxl
import py7zr

BOUNDARY = "----=_Part_fixture_0001"
INNER_BOUNDARY = "----=_Part_fixture_0002"
SENDER = "城关街道安监办"
SUBJECT = "城关街道5月份打通消防“生命通道”行动推进统计表"
TABLE_NAME = "城关街道5月份统计表.xlsx"

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


# --- files ------------------------------------------------------------------


def tiny_xlsx() -> bytes:
    """A real, small workbook: a title and one row of figures."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["全区打通消防“生命通道”行动推进统计表"])
    sheet.append([97, 10, 8, 2, 2, 6, 7, 12, 11, 14, 17])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def zip_with_names(members: dict[str, bytes], name_encoding: str = "gbk") -> bytes:
    """A zip whose member names are written in ``name_encoding`` without
    the UTF-8 flag, as Windows' built-in packer does on Chinese systems.

    zipfile always flags non-ASCII names as UTF-8, so members are written
    under ASCII placeholders of the same byte length and the name bytes are
    patched in afterwards (no checksum covers them)."""
    buffer = io.BytesIO()
    placeholders: dict[bytes, bytes] = {}
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index, (name, content) in enumerate(members.items()):
            encoded = name.encode(name_encoding)
            placeholder = f"{index:04d}".encode().ljust(len(encoded), b"_")
            placeholders[placeholder] = encoded
            archive.writestr(placeholder.decode(), content)
    data = buffer.getvalue()
    for placeholder, encoded in placeholders.items():
        data = data.replace(placeholder, encoded)
    return data


def zip_bomb(size: int) -> bytes:
    """One member of ``size`` zero bytes: compresses about 1000:1."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("bomb.xlsx", bytes(size))
    return buffer.getvalue()


def zip_many(count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for index in range(count):
            archive.writestr(f"{index}.csv", b"1\n")
    return buffer.getvalue()


def zip_traversal(content: bytes) -> bytes:
    """A member named to escape the extraction folder."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../etc/统计表.xlsx", content)
    return buffer.getvalue()


def seven_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(content, name)
    return buffer.getvalue()


def _tnef_object(level: int, name: int, kind: int, data: bytes) -> bytes:
    checksum = sum(data) & 0xFFFF
    header = struct.pack("<BHHI", level, name, kind, len(data))
    return header + data + struct.pack("<H", checksum)


def winmail(name: bytes, content: bytes) -> bytes:
    """A minimal Outlook winmail.dat (TNEF) holding one file whose title is
    ``name`` in the sender's ANSI code page."""
    signature = struct.pack("<IH", 0x223E9F78, 0x0001)
    version = _tnef_object(0x01, 0x9006, 0x0008, struct.pack("<I", 0x10000))
    rendering = _tnef_object(0x02, 0x9002, 0x0006, bytes(14))
    title = _tnef_object(0x02, 0x8010, 0x0001, name + b"\x00")
    data = _tnef_object(0x02, 0x800F, 0x0006, content)
    return signature + version + rendering + title + data


# --- header encodings -------------------------------------------------------


def rfc2047(text: str, charset: str, encoding: str = "B", chunk: int = 0) -> str:
    """``text`` as RFC 2047 encoded words. ``chunk`` splits the bytes every
    so many bytes, in the middle of a character if it falls there."""
    data = text.encode(charset)
    size = chunk or len(data) or 1
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    return "\r\n ".join(_word(piece, charset, encoding) for piece in pieces)


def _word(data: bytes, charset: str, encoding: str) -> str:
    if encoding == "B":
        return f"=?{charset}?B?{base64.b64encode(data).decode()}?="
    text = "".join(
        chr(b) if chr(b).isalnum() and b < 128 else "_" if b == 32 else f"={b:02X}"
        for b in data
    )
    return f"=?{charset}?Q?{text}?="


def rfc2231(name: str, text: str, charset: str = "utf-8", section: int = 0) -> str:
    """``name*=`` (or ``name*0*=``, ``name*1*=``... every ``section``
    percent-encoded bytes, splitting characters) parameters."""
    quoted = urllib.parse.quote(text.encode(charset), safe="")
    if not section:
        return f"{name}*={charset}''{quoted}"
    tokens = _percent_tokens(quoted)
    chunks = [tokens[i : i + section] for i in range(0, len(tokens), section)]
    params = [
        f"{name}*{index}*={charset}''{''.join(chunk)}"
        if index == 0
        else f"{name}*{index}*={''.join(chunk)}"
        for index, chunk in enumerate(chunks)
    ]
    return ";\r\n ".join(params)


def _percent_tokens(quoted: str) -> list[str]:
    tokens: list[str] = []
    index = 0
    while index < len(quoted):
        step = 3 if quoted[index] == "%" else 1
        tokens.append(quoted[index : index + step])
        index += step
    return tokens


# --- mails ------------------------------------------------------------------


def part(headers: list[str], body: bytes) -> bytes:
    """A MIME part from header lines (already encoded) and a body."""
    head = "".join(f"{line}\r\n" for line in headers).encode("utf-8")
    return head + b"\r\n" + body


def base64_body(content: bytes) -> bytes:
    return base64.encodebytes(content).replace(b"\n", b"\r\n")


def text_part(text: str, subtype: str = "plain", charset: str = "utf-8") -> bytes:
    return part(
        [
            f'Content-Type: text/{subtype}; charset="{charset}"',
            "Content-Transfer-Encoding: base64",
        ],
        base64_body(text.encode(charset)),
    )


def file_part(
    name_params: str,
    content: bytes,
    content_type: str = XLSX_TYPE,
    disposition: str = "attachment",
    in_content_type: bool = False,
) -> bytes:
    """An attached file; ``name_params`` is the encoded parameter text,
    e.g. ``filename="=?utf-8?B?...?="``."""
    type_line = f"Content-Type: {content_type}"
    disposition_line = f"Content-Disposition: {disposition}"
    if in_content_type:
        type_line += f";\r\n\t{name_params}"
    else:
        disposition_line += f";\r\n\t{name_params}"
    return part(
        [type_line, "Content-Transfer-Encoding: base64", disposition_line],
        base64_body(content),
    )


def multipart(
    parts: list[bytes], subtype: str = "mixed", boundary: str = BOUNDARY
) -> tuple[str, bytes]:
    """(Content-Type value, body) of a multipart holding ``parts``."""
    body = b"This is a multi-part message in MIME format.\r\n"
    for item in parts:
        body += f"\r\n--{boundary}\r\n".encode() + item
    body += f"\r\n--{boundary}--\r\n".encode()
    return f'multipart/{subtype};\r\n\tboundary="{boundary}"', body


def mail(
    parts: list[bytes],
    *,
    subject: str | None = None,
    sender: str | None = None,
    extra: list[str] | None = None,
    boundary: str = BOUNDARY,
) -> bytes:
    """A multipart/mixed mail with the usual Coremail-style headers."""
    content_type, body = multipart(parts, boundary=boundary)
    head = headers_block(
        subject=subject, sender=sender, extra=extra, content_type=content_type
    )
    return head + body


def headers_block(
    *,
    subject: str | None = None,
    sender: str | None = None,
    extra: list[str] | None = None,
    content_type: str = "text/plain; charset=utf-8",
) -> bytes:
    lines = [
        "Received: from mail.example.com (unknown [198.51.100.7])\r\n"
        "\tby mx1.example.cn (Coremail) with SMTP id fixture;\r\n"
        "\tMon, 19 May 2025 17:40:09 +0800 (CST)",
        "Date: Mon, 19 May 2025 17:40:02 +0800",
        f"From: {sender or rfc2047(SENDER, 'utf-8')} <CGJD@Example.cn>",
        "To: report-inbox@example.cn",
        f"Subject: {subject or rfc2047(SUBJECT, 'utf-8')}",
        "Message-ID: <fixture@example.cn>",
        "Mime-Version: 1.0",
        *(extra or []),
        f"Content-Type: {content_type}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def mail_with_name(
    name_params: str,
    content: bytes,
    *,
    content_type: str = XLSX_TYPE,
    disposition: str = "attachment",
    in_content_type: bool = False,
) -> bytes:
    """The commonest shape: a text body and one attachment named by
    ``name_params``."""
    attached = file_part(
        name_params, content, content_type, disposition, in_content_type
    )
    return mail([text_part("附件是统计表，请查收。"), attached])


def whole_body_mail(name: str, content: bytes) -> bytes:
    """A mail that is nothing but the file (no multipart)."""
    content_type = f'{XLSX_TYPE};\r\n\tname="{rfc2047(name, "gbk")}"'
    head = headers_block(content_type=content_type)
    head = head[:-2] + (
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment\r\n\r\n"
    )
    return head + base64_body(content)


def forwarded(inner: bytes, *, encode: bool = False, boundary: str = BOUNDARY) -> bytes:
    """``inner`` attached as message/rfc822, base64-encoded if asked (some
    mailers do, against RFC 2046)."""
    lines = ["Content-Type: message/rfc822", "Content-Disposition: attachment"]
    body = inner
    if encode:
        lines.append("Content-Transfer-Encoding: base64")
        body = base64_body(inner)
    return mail(
        [text_part("转发一下"), part(lines, body)],
        subject=rfc2047("Fw: 转发统计表", "utf-8"),
        boundary=boundary,
    )


def inner_mail(subject: str, name: str, content: bytes) -> bytes:
    """A mail to be forwarded, with its own subject and attachment."""
    content_type, body = multipart(
        [text_part("原邮件"), file_part(f'filename="{rfc2047(name, "utf-8")}"', content)],
        boundary=INNER_BOUNDARY,
    )
    head = headers_block(subject=rfc2047(subject, "gbk"), content_type=content_type)
    return head + body


def fixtures() -> dict[str, bytes]:
    """Every fixture mail by name, for the script below."""
    table = tiny_xlsx()
    utf8 = f'filename="{rfc2047(TABLE_NAME, "utf-8")}"'
    gbk_split = f'filename="{rfc2047(TABLE_NAME, "gbk", chunk=5)}"'
    split_2231 = rfc2231("filename", TABLE_NAME, section=4)
    archive = zip_with_names({TABLE_NAME: table})
    outlook = winmail(TABLE_NAME.encode("gbk"), table)
    return {
        "utf8-b": mail_with_name(utf8, table),
        "gbk-split": mail_with_name(gbk_split, table),
        "rfc2231-split": mail_with_name(split_2231, table),
        "zip-gbk": mail_with_name('filename="a.zip"', archive),
        "forward-b64": forwarded(inner_mail("原主题", TABLE_NAME, table), encode=True),
        "winmail": mail_with_name('filename="winmail.dat"', outlook),
    }


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "fixture-mails")
    target.mkdir(parents=True, exist_ok=True)
    for name, raw in fixtures().items():
        (target / f"{name}.eml").write_bytes(raw)
