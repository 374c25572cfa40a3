"""Unpack the archives units wrap their tables in, within limits.

An archive from a mailbox is untrusted: it may be a bomb, hold thousands of
members or name them ``../../etc/passwd``. Sizes are enforced on what is
actually decompressed, not on what the archive declares, and member names
are kept for display only (their last path component).
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ingest.headers import decode_text
from lifeline.errors import TableError

if TYPE_CHECKING:
    import py7zr
    from py7zr.io import BytesIOFactory
    from tnefparse.tnef import TNEFAttachment

logger = logging.getLogger(__name__)

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
RAR_MAGIC = b"Rar!\x1a\x07"
# Outlook's winmail.dat (application/ms-tnef), little-endian 0x223E9F78.
TNEF_MAGIC = b"\x78\x9f\x3e\x22"

# Below this size a high ratio is harmless (a sheet of blanks compresses
# extremely well) and the ratio test would only cause false alarms.
_RATIO_FLOOR_BYTES = 1024 * 1024

# The zip "language encoding" flag: the member name is UTF-8.
_ZIP_UTF8_FLAG = 0x800
_ZIP_ENCRYPTED_FLAG = 0x1


@dataclass(frozen=True)
class ArchiveLimits:
    """What one archive may unpack to."""

    max_total_bytes: int = 50 * 1024 * 1024
    max_members: int = 200
    max_ratio: float = 100.0


@dataclass(frozen=True)
class ArchiveMember:
    """One file from an archive: its display name and content."""

    name: str
    content: bytes


def archive_kind(name: str, content: bytes) -> str | None:
    """"zip", "7z" or "rar" by content, else by extension, else None."""
    if content.startswith(ZIP_MAGIC):
        return "zip"
    if content.startswith(SEVEN_ZIP_MAGIC):
        return "7z"
    if content.startswith(RAR_MAGIC):
        return "rar"
    extension = name.lower().rsplit(".", 1)[-1] if "." in name else ""
    return extension if extension in ("zip", "7z", "rar") else None


def member_basename(name: str) -> str:
    """The last path component, whatever separator the packer used."""
    return name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def unpack_archive(
    name: str, content: bytes, limits: ArchiveLimits = ArchiveLimits()
) -> list[ArchiveMember]:
    """The files inside an archive, in archive order.

    Raises TableError with code ``unreadable-archive`` (corrupt, encrypted),
    ``archive-too-large`` (a limit exceeded) or ``unsupported-archive``
    (rar, which needs a non-free tool).
    """
    kind = archive_kind(name, content)
    if kind == "zip":
        return _unpack_zip(name, content, limits)
    if kind == "7z":
        return _unpack_7z(name, content, limits)
    if kind == "rar":
        raise TableError(
            f"{name} is a RAR archive, which cannot be opened here; attach "
            f"the table itself, or pack it as ZIP",
            code="unsupported-archive",
        )
    raise TableError(
        f"{name} is not an archive that can be opened; attach the table itself",
        code="unreadable-archive",
    )


def _unreadable(name: str, reason: str) -> TableError:
    return TableError(
        f"the archive {name} cannot be unpacked ({reason}); attach the table "
        f"itself, or pack it again",
        code="unreadable-archive",
    )


def _too_large(name: str, reason: str) -> TableError:
    return TableError(
        f"the archive {name} is too large to unpack ({reason}); attach only "
        f"the statistics table",
        code="archive-too-large",
    )


def _check_count(name: str, count: int, limits: ArchiveLimits) -> None:
    if count > limits.max_members:
        raise _too_large(name, f"{count} files, at most {limits.max_members}")


def _check_size(name: str, total: int, packed: int, limits: ArchiveLimits) -> None:
    """Refuse a total over the limit, or a bomb-like compression ratio."""
    if total > limits.max_total_bytes:
        raise _too_large(
            name, f"more than {limits.max_total_bytes:,} bytes unpacked"
        )
    if total > _RATIO_FLOOR_BYTES and total > packed * limits.max_ratio:
        raise _too_large(name, f"compression ratio above {limits.max_ratio:g}:1")


def _zip_member_name(info: zipfile.ZipInfo) -> str:
    """Decode a member name. Without the UTF-8 flag, zipfile reads names
    as cp437, but Chinese Windows packers write GBK (and some tools write
    UTF-8 without setting the flag): undo cp437 and guess again."""
    if info.flag_bits & _ZIP_UTF8_FLAG:
        return member_basename(info.filename)
    try:
        raw = info.filename.encode("cp437")
    except UnicodeEncodeError:
        return member_basename(info.filename)
    return member_basename(decode_text(raw))


def _unpack_zip(
    name: str, content: bytes, limits: ArchiveLimits
) -> list[ArchiveMember]:
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            infos = [info for info in archive.infolist() if not info.is_dir()]
            _check_count(name, len(infos), limits)
            declared = sum(info.file_size for info in infos)
            _check_size(name, declared, len(content), limits)
            return _read_zip_members(name, archive, infos, len(content), limits)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise _unreadable(name, "it is damaged") from error
    except NotImplementedError as error:
        raise _unreadable(name, "unsupported compression method") from error


def _read_zip_members(
    name: str,
    archive: zipfile.ZipFile,
    infos: list[zipfile.ZipInfo],
    packed: int,
    limits: ArchiveLimits,
) -> list[ArchiveMember]:
    """Read members, counting real bytes: a forged header cannot get more
    than one byte past the limit into memory."""
    members: list[ArchiveMember] = []
    total = 0
    for info in infos:
        if info.flag_bits & _ZIP_ENCRYPTED_FLAG:
            raise _unreadable(name, "it has a password")
        with archive.open(info) as stream:
            data = stream.read(limits.max_total_bytes - total + 1)
        total += len(data)
        _check_size(name, total, packed, limits)
        members.append(ArchiveMember(_zip_member_name(info), data))
    return members


def _unpack_7z(
    name: str, content: bytes, limits: ArchiveLimits
) -> list[ArchiveMember]:
    # Imported here: py7zr costs a tenth of a second of start-up, and
    # 7z archives are rare.
    import py7zr
    import py7zr.exceptions
    from py7zr.io import BytesIOFactory

    try:
        with py7zr.SevenZipFile(io.BytesIO(content)) as archive:
            if archive.needs_password():
                raise _unreadable(name, "it has a password")
            files = [item for item in archive.list() if not item.is_directory]
            _check_count(name, len(files), limits)
            declared = sum(item.uncompressed for item in files)
            _check_size(name, declared, len(content), limits)
            factory = BytesIOFactory(limits.max_total_bytes + 1)
            archive.extractall(factory=factory)
    except (
        py7zr.exceptions.ArchiveError,
        py7zr.exceptions.PasswordRequired,
        EOFError,
        OSError,
        ValueError,
        KeyError,
        TypeError,
    ) as error:
        raise _unreadable(name, "it is damaged") from error
    return _collect_7z(name, files, factory, len(content), limits)


def _collect_7z(
    name: str,
    files: list[py7zr.FileInfo],
    factory: BytesIOFactory,
    packed: int,
    limits: ArchiveLimits,
) -> list[ArchiveMember]:
    members: list[ArchiveMember] = []
    total = 0
    for item in files:
        product = factory.products.get(item.filename)
        if product is None:
            continue
        product.seek(0)
        data = product.read()
        total += len(data)
        _check_size(name, total, packed, limits)
        members.append(ArchiveMember(member_basename(item.filename), data))
    return members


def unpack_winmail(content: bytes) -> list[ArchiveMember]:
    """The files Outlook packed into a winmail.dat (TNEF) part.

    Raises TableError ``unreadable-archive`` when the TNEF stream is broken.
    """
    from tnefparse import TNEF  # rare; kept out of start-up

    try:
        tnef = TNEF(content, do_checksum=False)
    except (ValueError, IndexError, KeyError, UnicodeError, struct.error) as error:
        raise TableError(
            "Outlook's winmail.dat cannot be unpacked; send the mail in HTML "
            "or plain-text format (not Rich Text), or from webmail",
            code="unreadable-archive",
        ) from error
    return [
        ArchiveMember(member_basename(_winmail_name(item)), item.data)
        for item in tnef.attachments
        if item.data
    ]


def _winmail_name(item: TNEFAttachment) -> str:
    """The long file name if Outlook stored one, else the short title.
    tnefparse decodes the title as UTF-8 only; Chinese Outlook writes it in
    the ANSI code page (GBK), hence the second try on the raw bytes."""
    try:
        return str(item.long_filename())
    except UnicodeDecodeError:
        raw = item._name if isinstance(item._name, bytes) else b""
        return decode_text(raw.rstrip(b"\x00")) or "winmail-attachment"
