"""Read tables written as text: CSV, HTML and XML Spreadsheet 2003.

CSV comes as UTF-8 (with or without BOM), UTF-16 (Excel's "Unicode text")
or GBK; web systems export HTML tables or XML Spreadsheet 2003 and name
them ``.xls``.
"""

from __future__ import annotations

import csv
import io
import logging

import lxml.html
from lxml import etree

from lifeline.errors import TableError

from .grid import CellValue, Formula, Grid

logger = logging.getLogger(__name__)

_SS = "{urn:schemas-microsoft-com:office:spreadsheet}"
MAX_SPAN = 64


def decode_text(content: bytes) -> str:
    """UTF-8 or UTF-16 by BOM, else UTF-8, else GB18030 (a superset of GBK)."""
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8", errors="replace")
    if content.startswith((b"\xff\xfe", b"\xfe\xff")):
        return content.decode("utf-16", errors="replace")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return content.decode("gb18030", errors="replace")


def read_csv(name: str, content: bytes) -> list[Grid]:
    text = decode_text(content)
    head = text[:4096]
    delimiter = max(",\t;", key=head.count)
    try:
        rows: list[list[CellValue | Formula]] = [list(row) for row in csv.reader(io.StringIO(text), delimiter=delimiter)]
    except csv.Error as exc:
        raise TableError(f"{name}: the CSV file cannot be read ({exc}); please send the table as .xlsx", "unreadable-file") from exc
    return [Grid(None, rows)]


def read_html(name: str, content: bytes) -> list[Grid]:
    try:
        document = lxml.html.document_fromstring(decode_text(content))
    except (etree.LxmlError, ValueError) as exc:
        raise TableError(f"{name}: the HTML table cannot be read ({exc}); please send the table as .xlsx", "unreadable-file") from exc
    grids: list[Grid] = []
    preamble: list[str] = []
    for element in document.iter():
        if element.tag == "table":
            grids.append(Grid(f"表格{len(grids) + 1}", _html_rows(element), list(preamble)))
            preamble.clear()
        elif element.tag in ("p", "h1", "h2", "h3", "h4", "div", "span", "caption") and not _inside_table(element):
            text = (element.text or "").strip()
            if text:
                preamble.append(text)
    return grids


def _inside_table(element: etree._Element) -> bool:
    return any(ancestor.tag == "table" for ancestor in element.iterancestors())


def _html_rows(table: etree._Element) -> list[list[CellValue | Formula]]:
    """Cells placed by colspan/rowspan; a spanned position stays empty."""
    rows: list[list[CellValue | Formula]] = []
    taken: set[tuple[int, int]] = set()
    for row in table.iter("tr"):
        if next(row.iterancestors("table"), None) is not table:
            continue
        row_index = len(rows)
        cells: list[CellValue | Formula] = []
        col = 0
        for cell in row:
            if cell.tag not in ("td", "th"):
                continue
            while (row_index, col) in taken:
                cells.append("")
                col += 1
            cells.append(_cell_text(cell))
            colspan, rowspan = _span(cell, "colspan"), _span(cell, "rowspan")
            for down in range(rowspan):
                for across in range(colspan):
                    taken.add((row_index + down, col + across))
            cells.extend([""] * (colspan - 1))
            col += colspan
        rows.append(cells)
    return rows


def _cell_text(cell: etree._Element) -> str:
    parts = []
    for node in cell.iter():
        if node.tag == "br":
            parts.append("\n")
        if node.text and node.tag not in ("script", "style"):
            parts.append(node.text)
        if node is not cell and node.tail:
            parts.append(node.tail)
    return "".join(parts).strip()


def _span(cell: etree._Element, attribute: str) -> int:
    try:
        return max(1, min(int(cell.get(attribute, "1")), MAX_SPAN))
    except ValueError:
        return 1


def read_xml2003(name: str, content: bytes) -> list[Grid]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.LxmlError as exc:
        raise TableError(f"{name}: the XML spreadsheet cannot be read ({exc}); please save it as .xlsx and send it again", "unreadable-file") from exc
    grids: list[Grid] = []
    for sheet in root.iter(_SS + "Worksheet"):
        rows: list[list[CellValue | Formula]] = []
        for table in sheet.iter(_SS + "Table"):
            _xml2003_rows(table, rows)
        grids.append(Grid(sheet.get(_SS + "Name") or f"Sheet{len(grids) + 1}", rows))
    return grids


def _xml2003_rows(table: etree._Element, rows: list[list[CellValue | Formula]]) -> None:
    for row in table.iter(_SS + "Row"):
        index = _index(row, len(rows) + 1)
        while len(rows) < index - 1:
            rows.append([])
        cells: list[CellValue | Formula] = []
        for cell in row.iter(_SS + "Cell"):
            position = _index(cell, len(cells) + 1)
            cells.extend([""] * (position - 1 - len(cells)))
            cells.append(_xml2003_value(cell))
            cells.extend([""] * _span_value(cell.get(_SS + "MergeAcross")))
        rows.append(cells)


def _index(element: etree._Element, default: int) -> int:
    try:
        return max(default, min(int(element.get(_SS + "Index", default)), default + 10_000))
    except ValueError:
        return default


def _span_value(text: str | None) -> int:
    try:
        return max(0, min(int(text or 0), MAX_SPAN))
    except ValueError:
        return 0


def _xml2003_value(cell: etree._Element) -> CellValue:
    data = cell.find(_SS + "Data")
    if data is None:
        return ""
    text = "".join(data.itertext())
    if data.get(_SS + "Type") == "Number":
        try:
            return float(text)
        except ValueError:
            return text
    return text
