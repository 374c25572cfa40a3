"""Tell a file's format from its content, not its name.

Units rename files freely and web systems export HTML or XML Spreadsheet
2003 as ``.xls``, so the bytes decide. The name is only a hint where the
content cannot tell (an OLE2 file that is neither Excel nor Word).
"""

from __future__ import annotations

import io
import zipfile

import olefile

OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_IMAGE_MAGICS = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")
_OTHER_MAGICS = (b"%PDF", b"Rar!", b"7z\xbc\xaf", b"\x1f\x8b", b"{\\rtf", b"ID3", b"\x00\x00\x00")


def sniff(content: bytes) -> str:
    """One of: xlsx, docx, ods, odt, zip, xls, doc, ole-encrypted, ole,
    ole-damaged, html, xml2003, text, binary."""
    if content.startswith(b"PK"):
        return _sniff_zip(content)
    if content.startswith(OLE2_MAGIC):
        return _sniff_ole(content)
    if is_other_format(content):
        return "binary"
    return _sniff_text(content[:4096])


def is_other_format(content: bytes) -> bool:
    """Whether ``content`` is recognisably something else than a table
    (a photo, a PDF, an archive of another kind)."""
    return content.startswith(_IMAGE_MAGICS + _OTHER_MAGICS)


def _sniff_zip(content: bytes) -> str:
    # The central directory at the end lists the names; reading it as bytes
    # is much cheaper than opening the archive.
    tail = content[-65536:]
    if b"xl/workbook" in tail:
        return "xlsx"
    if b"word/document" in tail:
        return "docx"
    if content[30:38] == b"mimetype" and b"opendocument.spreadsheet" in content[38:100]:
        return "ods"
    try:
        names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        # A truncated workbook still starts like one.
        head = content[:2048]
        if b"xl/" in head:
            return "xlsx"
        if b"word/" in head:
            return "docx"
        return "zip"
    if any(name.startswith("xl/") for name in names):
        return "xlsx"
    if any(name.startswith("word/") for name in names):
        return "docx"
    if "mimetype" in names:
        mimetype = zipfile.ZipFile(io.BytesIO(content)).read("mimetype")
        if b"opendocument.spreadsheet" in mimetype:
            return "ods"
        if b"opendocument.text" in mimetype:
            return "odt"
    return "zip"


def _sniff_ole(content: bytes) -> str:
    try:
        ole = olefile.OleFileIO(io.BytesIO(content))
        streams = {"/".join(path).lower() for path in ole.listdir()}
        ole.close()
    except (OSError, ValueError, IndexError, TypeError, EOFError):
        # A broken compound file; LibreOffice would spend seconds on it for
        # nothing, so it is not handed on for conversion.
        return "ole-damaged"
    if "encryptedpackage" in streams:
        return "ole-encrypted"
    if "workbook" in streams or "book" in streams:
        return "xls"
    if "worddocument" in streams:
        return "doc"
    return "ole"


def _sniff_text(head: bytes) -> str:
    if b"\x00" in head and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary"
    lowered = head.lower()
    if b"urn:schemas-microsoft-com:office:spreadsheet" in lowered and b"<workbook" in lowered:
        return "xml2003"
    if b"<table" in lowered or b"<html" in lowered:
        return "html"
    return "text"
