"""Read .xlsx/.xlsm, .xls and .ods workbooks into grids.

python-calamine reads values fast. openpyxl is used only for what calamine
cannot see: formulas saved without a result (calamine drops those cells)
and sheets that declare a huge used range, which openpyxl can stream and
stop reading once the data has ended. xlrd is the fallback for .xls files
calamine refuses.
"""

from __future__ import annotations

import io
import logging
import re
import zipfile
from types import ModuleType
from typing import cast

import xlrd
from python_calamine import CalamineWorkbook

from lifeline.errors import TableError

from .grid import CellValue, Formula, Grid
from .layout import MAX_EMPTY_RUN
from .limits import check_archive, read_part

logger = logging.getLogger(__name__)

# Above this many rows (from <dimension>) or bytes of sheet XML the sheet is
# streamed instead of loaded whole.
HUGE_ROWS = 20_000
HUGE_SHEET_BYTES = 8_000_000
_DIMENSION = re.compile(rb'<dimension ref="[A-Z]+\d+(?::[A-Z]+(\d+))?"')
_LAST_ROW = re.compile(rb'<row r="(\d+)"')
# A formula cell whose <v> is missing or empty.
_FORMULA_WITHOUT_VALUE = re.compile(
    rb"(?:</f>|<f[^>]*/>)\s*(?:<v\s*/>|<v>\s*</v>)?\s*</c>"
)


def read_xlsx(name: str, content: bytes) -> list[Grid]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
        check_archive(name, archive)
        huge, formulas = _inspect_sheets(archive)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError) as exc:
        raise _unreadable(name, exc) from exc

    if huge:
        logger.info("%s: huge used range, streaming with openpyxl", name)
        return _read_openpyxl(name, content, data_only=True)
    grids = _read_calamine(name, content)
    if formulas:
        _add_formulas(name, content, grids)
    return grids


def read_xls(name: str, content: bytes) -> list[Grid]:
    try:
        return _read_calamine(name, content)
    except TableError:
        logger.info("%s: calamine failed, trying xlrd", name)
    try:
        book = xlrd.open_workbook(file_contents=content, on_demand=True)
        return [_xlrd_grid(book, sheet) for sheet in book.sheets()]
    except Exception as exc:  # xlrd raises bare Exception subclasses of many kinds
        raise _unreadable(name, exc) from exc


def read_ods(name: str, content: bytes) -> list[Grid]:
    try:
        check_archive(name, zipfile.ZipFile(io.BytesIO(content)))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise _unreadable(name, exc) from exc
    return _read_calamine(name, content)


def _inspect_sheets(archive: zipfile.ZipFile) -> tuple[bool, bool]:
    """(some sheet is huge, some sheet has formulas without a result)."""
    huge = formulas = False
    for info in archive.infolist():
        path = info.filename
        if not (path.startswith("xl/worksheets/") and path.endswith(".xml")):
            continue
        if info.file_size > HUGE_SHEET_BYTES:
            return True, formulas
        data = read_part(archive, info)
        if _declared_rows(data) > HUGE_ROWS:
            huge = True
        if b"<f" in data and _FORMULA_WITHOUT_VALUE.search(data):
            formulas = True
    return huge, formulas


def _declared_rows(data: bytes) -> int:
    """The sheet's last row, from <dimension> or, where a writer left that
    out, from the last <row> element."""
    match = _DIMENSION.search(data, 0, 4096)
    if match and match.group(1):
        return int(match.group(1))
    match = _LAST_ROW.match(data, max(0, data.rfind(b"<row ")))
    return int(match.group(1)) if match else 0


def _read_calamine(name: str, content: bytes) -> list[Grid]:
    try:
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(content))
        grids = []
        for sheet_name in workbook.sheet_names:
            sheet = workbook.get_sheet_by_name(sheet_name)
            rows = sheet.to_python(skip_empty_area=False)
            grids.append(Grid(sheet_name, cast(list[list[CellValue | Formula]], rows)))
        return grids
    except Exception as exc:  # calamine raises its own, ValueError and pyo3 panics
        raise _unreadable(name, exc) from exc


def _add_formulas(name: str, content: bytes, grids: list[Grid]) -> None:
    """Put the formulas calamine dropped (no saved result) into the grids."""
    by_name = {grid.sheet: grid for grid in grids}
    try:
        workbook = _openpyxl().load_workbook(
            io.BytesIO(content), read_only=True, data_only=False
        )
        for sheet in workbook.worksheets:
            grid = by_name.get(sheet.title)
            if grid is not None:
                _overlay(grid, sheet)
        workbook.close()
    except Exception as exc:  # openpyxl raises many kinds on odd files
        raise _unreadable(name, exc) from exc


def _overlay(grid: Grid, sheet: object) -> None:
    for cells in sheet.iter_rows():  # type: ignore[attr-defined]
        for cell in cells:
            value = getattr(cell, "value", None)
            if not (isinstance(value, str) and value.startswith("=")):
                continue
            row, col = cell.row - 1, cell.column - 1
            while len(grid.rows) <= row:
                grid.rows.append([])
            cells_of_row = grid.rows[row]
            while len(cells_of_row) <= col:
                cells_of_row.append("")
            if cells_of_row[col] in ("", None):
                cells_of_row[col] = Formula(value)


def _openpyxl() -> ModuleType:
    # Imported when first needed: it pulls in numpy, a fifth of a second
    # of start-up that most polls never use (calamine reads most files).
    import openpyxl

    return openpyxl


def _read_openpyxl(name: str, content: bytes, data_only: bool) -> list[Grid]:
    try:
        workbook = _openpyxl().load_workbook(
            io.BytesIO(content), read_only=True, data_only=data_only
        )
        grids = [Grid(ws.title, _stream_rows(ws)) for ws in workbook.worksheets]
        workbook.close()
        return grids
    except Exception as exc:  # openpyxl raises many kinds on odd files
        raise _unreadable(name, exc) from exc


def _stream_rows(sheet: object) -> list[list[CellValue | Formula]]:
    """Rows until the data has ended: a long run of empty rows after the
    last row with anything in it."""
    rows: list[list[CellValue | Formula]] = []
    empty_run = 0
    for values in sheet.iter_rows(values_only=True):  # type: ignore[attr-defined]
        row = ["" if value is None else value for value in values]
        if any(value != "" for value in row):
            empty_run = 0
        else:
            empty_run += 1
            if rows and empty_run > MAX_EMPTY_RUN * 2:
                break
        rows.append(row)
    while rows and not any(value != "" for value in rows[-1]):
        rows.pop()
    return rows


def _xlrd_grid(book: xlrd.book.Book, sheet: xlrd.sheet.Sheet) -> Grid:
    rows: list[list[CellValue | Formula]] = []
    for row in range(sheet.nrows):
        values: list[CellValue | Formula] = []
        for cell in sheet.row(row):
            if cell.ctype == xlrd.XL_CELL_DATE:
                values.append(xlrd.xldate.xldate_as_datetime(cell.value, book.datemode))
            elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                values.append("")
            else:
                values.append(cell.value)
        rows.append(values)
    return Grid(sheet.name, rows)


def _unreadable(name: str, exc: Exception) -> TableError:
    return TableError(
        f"{name}: the workbook cannot be opened ({exc}); please save it again "
        "as .xlsx and send it",
        "unreadable-file",
    )
