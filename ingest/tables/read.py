"""The entry point: every statistics table in one file.

Steps: tell the format from the bytes, open it (decrypting or converting
when needed) into grids, find the header in each grid, read the rows, and
read title, 报送单位 and 报送时间 from the lines around the table.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import PurePath

from ingest.model import Issue, Table
from lifeline.errors import NotATable, TableError

from . import metadata
from .convert import convert
from .detect import is_other_format, sniff
from .grid import Grid, cell_text
from .header import Header, find_header
from .layout import plausibility, read_rows, totals
from .limits import check_file_size
from .protection import decrypt, is_encrypted

logger = logging.getLogger(__name__)

# Lines below the table searched for a 报送单位/报送时间 written at the foot.
FOOT_LINES = 6
_SEND_INSTEAD = "please send the table as .xlsx, .xls or .docx"
# Readers are imported on first use: openpyxl, calamine and lxml take
# most of a second to import, which the daemon's start-up should not pay
# for formats it may never meet.
_READERS: dict[str, tuple[str, str]] = {
    "xlsx": ("spreadsheet", "read_xlsx"),
    "xls": ("spreadsheet", "read_xls"),
    "docx": ("worddoc", "read_docx"),
    "ods": ("spreadsheet", "read_ods"),
    "html": ("text", "read_html"),
    "xml2003": ("text", "read_xml2003"),
    "text": ("text", "read_csv"),
}
Reader = Callable[[str, bytes], list[Grid]]


def _reader(kind: str) -> Reader:
    module, function = _READERS[kind]
    reader: Reader = getattr(importlib.import_module(f"{__package__}.{module}"), function)
    return reader


def read_tables(filename: str, content: bytes) -> list[Table]:
    """Every statistics table in one file (usually one). Raises NotATable
    when the file is clearly not a statistics table, and TableError when it
    should be one but cannot be read; nothing else escapes."""
    try:
        check_file_size(filename, content)
        grids = open_grids(filename, content)
        found = [read_grid(filename, grid) for grid in grids]
    except NotATable:
        _refuse_if_damaged(filename, content)
        raise
    except TableError:
        raise
    except Exception as exc:  # the last guard: a library failing on odd bytes
        logger.warning("%s: unexpected failure reading the table", filename, exc_info=True)
        reason = type(exc).__name__
        message = f"{filename}: the file cannot be read ({reason}); {_SEND_INSTEAD}"
        raise TableError(message) from exc

    tables = [table for table in found if table is not None]
    if not tables:
        raise NotATable(f"{filename}: no statistics table found")
    # A blank copy of the template beside the filled-in sheet is not a table.
    filled = [table for table in tables if table.rows]
    logger.debug("%s: %d table(s), %d filled in", filename, len(tables), len(filled))
    return filled or tables[:1]


# Spreadsheets and documents, by name.
_OFFICE_NAMES = frozenset({".xlsx", ".xlsm", ".xls", ".et", ".ods", ".docx", ".doc", ".wps"})


def _refuse_if_damaged(filename: str, content: bytes) -> None:
    """A file named as a spreadsheet or document whose bytes are neither
    that nor recognisably anything else (a photo, a PDF) was damaged on the
    way: a broken base64 line shifts every byte after it. The sender must
    send it again, not another file."""
    if PurePath(filename).suffix.lower() not in _OFFICE_NAMES:
        return
    kind = sniff(content)
    if kind == "zip" or (kind in ("binary", "text") and not is_other_format(content)):
        raise TableError(
            f"{filename}: the file is named as a table but its content is not "
            f"one; it was probably damaged on the way: attach the filled-in "
            f"table again"
        )


def open_grids(filename: str, content: bytes, depth: int = 0) -> list[Grid]:
    """The file's sheets or tables as grids, whatever its format."""
    kind = sniff(content)
    if kind == "xls":
        return _read_xls(filename, content)
    if kind == "ole-damaged":
        return _read_damaged(filename, content)
    if kind in _READERS:
        return _reader(kind)(filename, content)
    if kind == "ole-encrypted" and depth == 0:
        return open_grids(filename, decrypt(filename, content), depth + 1)
    if kind in ("doc", "ole", "odt"):
        return _converted(filename, content, kind)
    raise NotATable(f"{filename}: not a spreadsheet or document ({kind})")


def _read_xls(filename: str, content: bytes) -> list[Grid]:
    # Checking for encryption first would cost more than reading the file.
    read_xls = _reader("xls")
    try:
        return read_xls(filename, content)
    except TableError:
        if not is_encrypted(content):
            raise
    return read_xls(filename, decrypt(filename, content))


def _read_damaged(filename: str, content: bytes) -> list[Grid]:
    """calamine and xlrd forgive some damage olefile does not."""
    try:
        return _reader("xls")(filename, content)
    except TableError as exc:
        message = f"{filename}: the file is damaged and cannot be opened; "
        raise TableError(message + _SEND_INSTEAD) from exc


def _converted(filename: str, content: bytes, kind: str) -> list[Grid]:
    suffix = PurePath(filename).suffix.lower().lstrip(".")
    if kind == "odt":
        return _reader("docx")(filename, convert(filename, content, "odt", "docx"))
    if kind == "doc" or suffix in ("doc", "wps"):
        converted = convert(filename, content, suffix or "doc", "docx")
        return _reader("docx")(filename, converted)
    if suffix in ("et", "xls"):
        return _reader("xlsx")(filename, convert(filename, content, suffix, "xlsx"))
    message = f"{filename}: this file format cannot be read; {_SEND_INSTEAD}"
    raise TableError(message, "unsupported-format")


def read_grid(filename: str, grid: Grid) -> Table | None:
    """The table in one grid, or None when the grid has no header."""
    header = find_header(grid)
    if header is None:
        return None
    found = read_rows(grid, header)
    above = grid.preamble + [_line(grid, row) for row in range(header.top)]
    end = found.last_row if found.last_row is not None else header.bottom
    foot = range(end + 1, min(end + 1 + FOOT_LINES, len(grid.rows)))
    below = [_line(grid, row) for row in foot]
    title = metadata.find_title(above)

    table = Table(
        file=filename,
        sheet=grid.sheet,
        cells=grid.range_name(header.top, _left(grid, header), end, header.right),
        title=title,
        unit_name=metadata.find_unit_name(above + below),
        reported_on=metadata.find_reported_on(above + below),
        period=metadata.find_period(title),
        rows=found.rows,
        problems=found.problems,
    )
    _add_values(table, header)
    return table


def _add_values(table: Table, header: Header) -> None:
    table.values, table.warnings = totals(table.rows)
    if not table.rows:
        message = f"{table.cells}: the table has no figures; please fill them in"
        table.problems.append(Issue("empty-table", message + " and send it again"))
        return
    table.warnings.extend(plausibility(table.values))
    missing = header.missing()
    if missing:
        message = f"{table.cells}: no column for {', '.join(missing)}; counted as 0"
        table.warnings.append(Issue("missing-column", message))


def _left(grid: Grid, header: Header) -> int:
    for col in range(header.left):
        if grid.text(header.top, col).strip() or grid.text(header.bottom, col).strip():
            return col
    return header.left


def _line(grid: Grid, row: int) -> str:
    texts = (cell_text(value).strip() for value in grid.rows[row])
    return "  ".join(text for text in texts if text)
