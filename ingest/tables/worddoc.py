"""Read the tables of a .docx into grids.

The template is a Word table whose header is merged with gridSpan (across)
and vMerge (down); the title and the 报送单位 line are paragraphs above it.
The body is walked in document order so that each table gets the
paragraphs that stood above it. Content controls (w:sdt) are looked
through, and a table nested in a cell becomes a grid of its own.
"""

from __future__ import annotations

import io
import logging
import zipfile

import docx
from docx.opc.exceptions import PackageNotFoundError
from lxml import etree

from lifeline.errors import TableError

from .grid import CellValue, Formula, Grid

logger = logging.getLogger(__name__)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
# Paragraphs kept above a table: the title and 报送单位 line are the last few.
MAX_PREAMBLE = 8


def read_docx(name: str, content: bytes) -> list[Grid]:
    try:
        body = docx.Document(io.BytesIO(content)).element.body
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, etree.LxmlError, OSError) as exc:
        raise TableError(f"{name}: the Word document cannot be opened ({exc}); please send it again", "unreadable-file") from exc
    grids: list[Grid] = []
    _walk(body, grids, [])
    return grids


def _walk(parent: etree._Element, grids: list[Grid], preamble: list[str]) -> None:
    for child in parent:
        if child.tag == _W + "p":
            text = _text(child)
            if text.strip():
                preamble.append(text)
                del preamble[:-MAX_PREAMBLE]
        elif child.tag == _W + "tbl":
            _add_table(child, grids, list(preamble))
            preamble.clear()
        elif child.tag in (_W + "sdt", _W + "sdtContent", _W + "customXml", _W + "smartTag"):
            _walk(child, grids, preamble)


def _add_table(table: etree._Element, grids: list[Grid], preamble: list[str]) -> None:
    rows = _table_rows(table, grids)
    grids.append(Grid(f"表格{len(grids) + 1}", rows, preamble))


def _table_rows(table: etree._Element, grids: list[Grid]) -> list[list[CellValue | Formula]]:
    rows: list[list[CellValue | Formula]] = []
    for row in _children(table, "tr"):
        cells: list[CellValue | Formula] = [""] * _grid_before(row)
        for cell in _children(row, "tc"):
            span = _int_property(cell, "gridSpan", 1)
            continued = _is_vmerge_continuation(cell)
            cells.append("" if continued else _cell_text(cell, grids))
            cells.extend([""] * (span - 1))
        rows.append(cells)
    return rows


def _children(parent: etree._Element, local: str) -> list[etree._Element]:
    """Direct children named ``local``, also those wrapped in content controls."""
    found = []
    for child in parent:
        if child.tag == _W + local:
            found.append(child)
        elif child.tag in (_W + "sdt", _W + "sdtContent", _W + "customXml"):
            found.extend(_children(child, local))
    return found


def _grid_before(row: etree._Element) -> int:
    properties = row.find(_W + "trPr")
    if properties is None:
        return 0
    before = properties.find(_W + "gridBefore")
    return _int_value(before, 0)


def _int_property(cell: etree._Element, local: str, default: int) -> int:
    properties = cell.find(_W + "tcPr")
    if properties is None:
        return default
    return max(1, _int_value(properties.find(_W + local), default))


def _int_value(element: etree._Element | None, default: int) -> int:
    if element is None:
        return default
    try:
        return min(int(element.get(_W + "val", default)), 64)
    except ValueError:
        return default


def _is_vmerge_continuation(cell: etree._Element) -> bool:
    properties = cell.find(_W + "tcPr")
    merge = None if properties is None else properties.find(_W + "vMerge")
    return merge is not None and merge.get(_W + "val", "continue") == "continue"


def _cell_text(cell: etree._Element, grids: list[Grid]) -> str:
    lines = []
    for child in cell:
        if child.tag == _W + "tbl":
            _add_table(child, grids, [])
        elif child.tag == _W + "p":
            lines.append(_text(child))
        elif child.tag in (_W + "sdt", _W + "sdtContent", _W + "customXml"):
            lines.append(_cell_text(child, grids))
    return "\n".join(line for line in lines if line)


def _text(element: etree._Element) -> str:
    parts = []
    for node in element.iter(_W + "t", _W + "br", _W + "tab", _W + "cr"):
        if node.tag == _W + "t":
            parts.append(node.text or "")
        elif node.tag == _W + "tab":
            parts.append(" ")
        else:
            parts.append("\n")
    return "".join(parts)
