"""Size limits that keep a hostile or broken file from exhausting memory.

A statistics table is a few kilobytes. A zip-based file (.xlsx, .docx,
.ods) whose directory declares a part far larger is a zip bomb or not a
table, and is refused before anything is decompressed. A directory that
lies about a size is caught by reading parts with a bound.
"""

from __future__ import annotations

import zipfile

from lifeline.errors import TableError

MAX_FILE_BYTES = 20_000_000
MAX_PART_BYTES = 50_000_000
MAX_TOTAL_BYTES = 100_000_000


def check_file_size(name: str, content: bytes) -> None:
    if len(content) > MAX_FILE_BYTES:
        raise TableError(
            f"{name}: the file is {len(content) / 1e6:.0f} MB, more than the "
            f"{MAX_FILE_BYTES / 1e6:.0f} MB a statistics table may have; "
            "please send only the table, as .xlsx, .xls or .docx"
        )


def check_archive(name: str, archive: zipfile.ZipFile) -> None:
    """TableError when a part, or all parts together, would unpack too large."""
    total = 0
    for info in archive.infolist():
        total += info.file_size
        if info.file_size > MAX_PART_BYTES or total > MAX_TOTAL_BYTES:
            raise TableError(
                f"{name}: the file unpacks to more than "
                f"{MAX_PART_BYTES / 1e6:.0f} MB ({info.filename}); it is damaged "
                "or not a statistics table; please send the table again"
            )


def read_part(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    """The part's bytes, never more than its declared size: ``read()``
    without a size would inflate the whole stream at once."""
    with archive.open(info) as stream:
        return stream.read(min(info.file_size, MAX_PART_BYTES))
