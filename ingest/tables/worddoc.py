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
import posixpath
import zipfile

from lxml import etree

from lifeline.errors import TableError

from .grid import CellValue, Formula, Grid
from .limits import check_archive, read_part

logger = logging.getLogger(__name__)

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_TC_PR, _GRID_SPAN, _V_MERGE, _VAL = (_W + "tcPr", _W + "gridSpan", _W + "vMerge", _W + "val")
_RELATIONSHIPS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_OFFICE_DOCUMENT = "/officeDocument"
# Entities are never expanded, so an entity bomb stays a few bytes.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
# Paragraphs kept above a table: the title and 报送单位 line are the last few.
MAX_PREAMBLE = 8


def read_docx(name: str, content: bytes) -> list[Grid]:
    """The document's tables. The main part is parsed straight from the
    zip: python-docx would load every part of the package first, which
    took twenty times longer than reading the tables."""
    try:
        body = _body(name, content)
    except (zipfile.BadZipFile, KeyError, ValueError, etree.LxmlError, OSError, EOFError) as exc:
        raise TableError(f"{name}: the Word document cannot be opened ({exc}); please send it again", "unreadable-file") from exc
    grids: list[Grid] = []
    _walk(body, grids, [])
    return grids


def _body(name: str, content: bytes) -> etree._Element:
    archive = zipfile.ZipFile(io.BytesIO(content))
    check_archive(name, archive)
    part = archive.getinfo(_main_part(archive))
    root = etree.fromstring(read_part(archive, part), _PARSER)
    body = root.find(_W + "body")
    if body is None:
        raise ValueError(f"{part.filename} has no body")
    return body


def _main_part(archive: zipfile.ZipFile) -> str:
    """The main document's path, as the package relationships name it;
    word/document.xml when they do not."""
    try:
        relations = etree.fromstring(read_part(archive, archive.getinfo("_rels/.rels")), _PARSER)
    except KeyError:
        return "word/document.xml"
    for relation in relations.iter(_RELATIONSHIPS + "Relationship"):
        if relation.get("Type", "").endswith(_OFFICE_DOCUMENT):
            return posixpath.normpath(relation.get("Target", "").lstrip("/"))
    return "word/document.xml"


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
            span, continued = _merge_of(cell)
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


def _merge_of(cell: etree._Element) -> tuple[int, bool]:
    """(columns the cell spans, whether it continues a vertical merge)."""
    span, continued = 1, False
    properties = cell.find(_TC_PR)
    if properties is None:
        return span, continued
    for child in properties:
        if child.tag == _GRID_SPAN:
            span = max(1, _int_value(child, 1))
        elif child.tag == _V_MERGE:
            continued = child.get(_VAL, "continue") == "continue"
    return span, continued


def _int_value(element: etree._Element | None, default: int) -> int:
    if element is None:
        return default
    try:
        return min(int(element.get(_W + "val", default)), 64)
    except ValueError:
        return default


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
