"""Build the odd-shaped statistics tables the table reader is tested on.

Each ``make_*`` function returns ``(filename, bytes)`` built with openpyxl,
python-docx, csv or plain text, so anyone can see how a fixture was made.
``write_all(folder)`` writes them all to a folder for a look by hand.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import struct
import subprocess
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

import docx
import openpyxl
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from openpyxl.styles import Font
from openpyxl.worksheet.worksheet import Worksheet

TITLE = "全区打通消防“生命通道”行动推进统计表"
# (group heading, sub-headings); a group without sub-headings spans two rows.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("排查单位场所\n(家)", ()),
    ("安全疏散\n条件不足", ("发现\n(处)", "整改\n(处)")),
    ("人员密集场所违规设置铁栅栏、防盗网、广告牌", ("发现（处）", "拆除（处）", "合计（平方米）")),
    ("消防车通道禁停标线", ("划线(处)",)),
    ("占用、堵塞消防车\n通道障碍物", ("发 现", "清 理")),
    ("开展消防演练情况（家）", ()),
    ("开展消防培训情况（家）", ()),
)
Row = Sequence[object]


def header_rows(leading: Sequence[str] = ()) -> tuple[list[str], list[str], list[tuple[int, int, int, int]]]:
    """The two header rows and their merges as (row, col, last_row, last_col)
    relative to the header's top-left cell."""
    top = list(leading)
    sub = [""] * len(leading)
    merges = [(0, col, 1, col) for col in range(len(leading))]
    for heading, subs in GROUPS:
        col = len(top)
        if subs:
            top.extend([heading] + [""] * (len(subs) - 1))
            sub.extend(subs)
            if len(subs) > 1:
                merges.append((0, col, 0, col + len(subs) - 1))
        else:
            top.append(heading)
            sub.append("")
            merges.append((0, col, 1, col))
    return top, sub, merges


def write_table(sheet: Worksheet, top: int, left: int, rows: Sequence[Row], leading: Sequence[str] = (), lines: Sequence[str] = ()) -> None:
    """Title lines, the merged two-row header and ``rows`` at 1-based
    (top, left)."""
    row = top
    for line in lines:
        sheet.cell(row=row, column=left, value=line)
        row += 1
    heading, sub, merges = header_rows(leading)
    for col, text in enumerate(heading):
        sheet.cell(row=row, column=left + col, value=text or None)
    for col, text in enumerate(sub):
        sheet.cell(row=row + 1, column=left + col, value=text or None)
    for first_row, first_col, last_row, last_col in merges:
        sheet.merge_cells(start_row=row + first_row, start_column=left + first_col, end_row=row + last_row, end_column=left + last_col)
    for offset, values in enumerate(rows):
        for col, value in enumerate(values):
            sheet.cell(row=row + 2 + offset, column=left + col, value=value)


def _save(workbook: openpyxl.Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _single(rows: Sequence[Row], leading: Sequence[str] = (), lines: Sequence[str] = (TITLE, "报送单位：测试街道    报送时间：2025年5月18日")) -> bytes:
    workbook = openpyxl.Workbook()
    write_table(workbook.active, 1, 1, rows, leading, lines)
    return _save(workbook)


ROW_A = [10, 4, 3, 2, 1, 5.5, 3, 6, 5, 2, 4]
ROW_B = [20, 6, 6, 1, 1, 2, 0, 4, 4, 3, 5]
ROW_SUM = [30, 10, 9, 3, 2, 7.5, 3, 10, 9, 5, 9]


def make_offset_second_sheet() -> tuple[str, bytes]:
    """An instruction sheet first and active; the table on the second sheet
    at D6 with leading 序号 and 单位 columns, two rows and a matching 合计."""
    workbook = openpyxl.Workbook()
    workbook.active.title = "填表说明"
    workbook.active["A1"] = "填表说明：请于每月20日前报送。安全疏散条件不足、铁栅栏、障碍物按处统计。"
    sheet = workbook.create_sheet("5月")
    rows = [[1, "一社区", *ROW_A], [2, "二社区", *ROW_B], ["", "合计", *ROW_SUM]]
    write_table(sheet, 3, 4, rows, ("序号", "单位"), ("城关街道5月份打通消防“生命通道”行动推进统计表", "报送单位：城关街道", "报送时间：2025/5/18"))
    workbook.active = 0
    return "offset.xlsx", _save(workbook)


def make_total_mismatch() -> tuple[str, bytes]:
    """Two rows and a 合计 row that does not add up."""
    wrong = list(ROW_SUM)
    wrong[0] = 31
    rows = [["甲", *ROW_A], ["乙", *ROW_B], ["总 计", *wrong]]
    return "mismatch.xlsx", _single(rows, ("单位",))


def make_text_figures() -> tuple[str, bytes]:
    """Figures as text: thousands separators, suffixes, full-width digits, dashes."""
    row = ["1,200", "１２处", " 5 ", "—", "-", "", "3 处", "７家", "无", "0", "2,000"]
    return "text.xlsx", _single([row])


def make_formulas() -> tuple[str, bytes]:
    """A 合计 row of =SUM formulas and a reference, saved without results
    (openpyxl does not compute), and one formula nobody can compute here."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    rows: list[Row] = [["甲", *ROW_A], ["乙", *ROW_B]]
    total: list[object] = ["合计"]
    for col in range(11):
        letter = openpyxl.utils.get_column_letter(2 + col)
        total.append(f"=SUM({letter}5:{letter}6)")
    total[1] = "=B5+B6"
    rows.append(total)
    write_table(sheet, 1, 1, rows, ("单位",), (TITLE, "报送单位：测试局"))
    return "formulas.xlsx", _save(workbook)


def make_unsupported_formula() -> tuple[str, bytes]:
    workbook = openpyxl.Workbook()
    row: list[object] = list(ROW_A)
    row[3] = '=VLOOKUP("x",Z1:Z9,1,FALSE)'
    write_table(workbook.active, 1, 1, [row], (), (TITLE,))
    return "vlookup.xlsx", _save(workbook)


def make_huge_range() -> tuple[str, bytes]:
    """One data row; formatting and a stray space down at row 1,048,576."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    write_table(sheet, 1, 1, [ROW_A], (), (TITLE,))
    sheet.cell(row=1_048_576, column=11).font = Font(bold=True)
    sheet.cell(row=1_048_576, column=12, value=" ")
    return "huge.xlsx", _save(workbook)


def make_not_a_number() -> tuple[str, bytes]:
    """Row 4 (the first data row under a title and a two-row header) holds
    见附件 in D; row 5 holds a fraction in a count."""
    first = list(ROW_A)
    first[3] = "见附件"
    second = list(ROW_B)
    second[1] = 2.5
    workbook = openpyxl.Workbook()
    write_table(workbook.active, 2, 1, [first, second], (), (TITLE,))
    return "nan.xlsx", _save(workbook)


def make_negative() -> tuple[str, bytes]:
    row = list(ROW_A)
    row[2] = -3
    return "negative.xlsx", _single([row])


def make_implausible() -> tuple[str, bytes]:
    """整改 > 发现, 拆除 > 发现 with no area, 清理 > 发现."""
    row = [10, 2, 5, 1, 3, 0, 0, 1, 4, 0, 0]
    return "implausible.xlsx", _single([row])


def make_docx() -> tuple[str, bytes]:
    """A Word table with a leading 单位 column, merged header, the title with
    the month and the 报送单位/报送时间 paragraph above, a note below."""
    document = docx.Document()
    document.add_paragraph("南湖镇5月份打通消防“生命通道”行动推进统计表")
    document.add_paragraph("报送单位：南湖镇人民政府          报送时间：2025.5.16")
    heading, sub, merges = header_rows(("单位",))
    rows = [["甲村", *ROW_A], ["乙村", *ROW_B], ["合计", *ROW_SUM]]
    table = document.add_table(rows=2 + len(rows), cols=len(heading))
    for col, text in enumerate(heading):
        table.cell(0, col).text = text
    for col, text in enumerate(sub):
        table.cell(1, col).text = text
    for first_row, first_col, last_row, last_col in merges:
        table.cell(first_row, first_col).merge(table.cell(last_row, last_col))
    for offset, values in enumerate(rows):
        for col, value in enumerate(values):
            table.cell(2 + offset, col).text = str(value)
    _wrap_in_content_control(table._tbl)
    document.add_paragraph("备注：人员密集场所包括公众聚集场所。")
    buffer = io.BytesIO()
    document.save(buffer)
    return "word.docx", buffer.getvalue()


def _wrap_in_content_control(table_element: object) -> None:
    """Put the table inside a block-level content control (w:sdt)."""
    sdt = OxmlElement("w:sdt")
    content = OxmlElement("w:sdtContent")
    table_element.addprevious(sdt)  # type: ignore[attr-defined]
    sdt.append(content)
    content.append(table_element)  # type: ignore[arg-type]
    assert sdt.find(qn("w:sdtContent")) is not None


def make_prose_docx() -> tuple[str, bytes]:
    document = docx.Document()
    document.add_paragraph("城关街道四月份消防安全工作总结")
    document.add_paragraph("本月共排查单位场所186家，整改隐患19处。")
    buffer = io.BytesIO()
    document.save(buffer)
    return "summary.docx", buffer.getvalue()


def _csv_text(rows: Sequence[Row]) -> str:
    heading, sub, _ = header_rows(("单位",))
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([TITLE])
    writer.writerow(["报送单位：东城街道", "", "报送时间：2025-05-18"])
    writer.writerow(heading)
    writer.writerow(sub)
    writer.writerows(rows)
    return buffer.getvalue()


def make_csv_gbk() -> tuple[str, bytes]:
    return "gbk.csv", _csv_text([["东城", *ROW_A]]).encode("gbk")


def make_csv_utf8_bom() -> tuple[str, bytes]:
    return "bom.csv", b"\xef\xbb\xbf" + _csv_text([["东城", *ROW_A]]).encode("utf-8")


def make_html() -> tuple[str, bytes]:
    """A web system's export: an HTML table named .xls, merged with
    colspan/rowspan, title in an <h2>."""
    heading, sub, merges = header_rows(("单位",))
    spans = {(row, col): (last_row - row + 1, last_col - col + 1) for row, col, last_row, last_col in merges}
    covered = {(r, c) for (row, col), (down, across) in spans.items() for r in range(row, row + down) for c in range(col, col + across)} - set(spans)
    lines = ["<html><head><meta charset='utf-8'></head><body>", f"<h2>{TITLE}</h2>", "<p>报送单位：东城街道　报送时间：2025年5月18日</p>", "<table border=1>"]
    for row_index, row in enumerate((heading, sub)):
        cells = []
        for col, text in enumerate(row):
            if (row_index, col) in covered:
                continue
            down, across = spans.get((row_index, col), (1, 1))
            cells.append(f"<td rowspan={down} colspan={across}>{text.replace(chr(10), '<br>')}</td>")
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("<tr>" + "".join(f"<td>{value}</td>" for value in ["东城", *ROW_A]) + "</tr>")
    lines.append("</table></body></html>")
    return "export.xls", "\n".join(lines).encode("utf-8")


def make_xml2003() -> tuple[str, bytes]:
    """XML Spreadsheet 2003 as web systems export it, one-row-per-header
    row, MergeAcross on the group headings."""
    heading, sub, _ = header_rows(("单位",))
    ns = 'xmlns="urn:schemas-microsoft-com:office:spreadsheet" xmlns:ss="urn:schemas-microsoft-com:office:spreadsheet"'

    def row(values: Sequence[object]) -> str:
        cells = []
        for value in values:
            kind = "Number" if isinstance(value, int | float) else "String"
            cells.append(f'<Cell><Data ss:Type="{kind}">{value}</Data></Cell>')
        return "<Row>" + "".join(cells) + "</Row>"

    body = row([TITLE]) + row(heading) + row(sub) + row(["东城", *ROW_A])
    text = f'<?xml version="1.0"?>\n<Workbook {ns}><Worksheet ss:Name="统计"><Table>{body}</Table></Worksheet></Workbook>'
    return "web.xls", text.encode("utf-8")


MAKERS: tuple[Callable[[], tuple[str, bytes]], ...] = (
    make_offset_second_sheet, make_total_mismatch, make_text_figures, make_formulas,
    make_unsupported_formula, make_huge_range, make_not_a_number, make_negative,
    make_implausible, make_docx, make_prose_docx, make_csv_gbk, make_csv_utf8_bom,
    make_html, make_xml2003,
)


def _rebuilt(content: bytes, part: str, change: Callable[[bytes], bytes]) -> bytes:
    """The zip ``content`` with ``part`` passed through ``change``."""
    source = zipfile.ZipFile(io.BytesIO(content))
    output = io.BytesIO()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            data = source.read(info)
            archive.writestr(info.filename, change(data) if info.filename == part else data)
    return output.getvalue()


# "Billion laughs": ten levels of ten references, a 2 GB string when expanded.
LAUGHS = b'<!DOCTYPE worksheet [<!ENTITY l0 "haha">' + b"".join(
    b'<!ENTITY l%d "%s">' % (level + 1, b"&l%d;" % level * 10) for level in range(9)
) + b"]>"


def make_entity_bomb(huge: bool = False) -> tuple[str, bytes]:
    """An XML entity bomb in the sheet, expanded in the title cell A1. With
    ``huge`` the sheet also declares a huge range, which sends it through
    openpyxl (streaming) instead of calamine."""
    name, content = make_huge_range() if huge else make_negative()

    def bomb(sheet: bytes) -> bytes:
        return LAUGHS + sheet.replace(b"<is><t>", b"<is><t>&l9;", 1)

    return name, _rebuilt(content, "xl/worksheets/sheet1.xml", bomb)


def make_docx_entity_bomb() -> tuple[str, bytes]:
    """The Word table with an entity bomb declared and used in the title."""
    name, content = make_docx()

    def bomb(document: bytes) -> bytes:
        declaration = LAUGHS.replace(b"DOCTYPE worksheet", b"DOCTYPE document")
        head, _, rest = document.partition(b"?>")
        return head + b"?>" + declaration + rest.replace("南湖镇".encode(), b"&l9;", 1)

    return name, _rebuilt(content, "word/document.xml", bomb)


def make_zip_bomb(lying: bool = False) -> tuple[str, bytes]:
    """A real table whose sheet XML carries 60 MB of spaces (60 KB
    compressed, over the 50 MB limit). With ``lying`` the zip directory and local header claim
    the sheet is 5,000 bytes, as a crafted bomb would."""
    name, content = make_negative()
    padding = b" " * 60_000_000
    bomb = _rebuilt(content, "xl/worksheets/sheet1.xml", lambda sheet: sheet.replace(b"<sheetData>", b"<sheetData>" + padding, 1))
    if not lying:
        return name, bomb
    patched = bytearray(bomb)
    info = zipfile.ZipFile(io.BytesIO(bomb)).getinfo("xl/worksheets/sheet1.xml")
    struct.pack_into("<I", patched, info.header_offset + 22, 5000)
    central = bomb.rfind(b"PK\x01\x02", 0, bomb.rfind(b"xl/worksheets/sheet1.xml") + 1)
    struct.pack_into("<I", patched, central + 24, 5000)
    return name, bytes(patched)


def make_huge_range_without_dimension() -> tuple[str, bytes]:
    """The huge range written by a tool that leaves out <dimension>."""
    name, content = make_huge_range()
    return name, _rebuilt(content, "xl/worksheets/sheet1.xml", lambda sheet: re.sub(rb"<dimension [^>]*/>", b"", sheet))


# What LibreOffice makes of the fixtures above: target format → sources.
OFFICE_CONVERSIONS: dict[str, tuple[Callable[[], tuple[str, bytes]], ...]] = {
    "xls": (make_offset_second_sheet, make_total_mismatch, make_text_figures, make_formulas),
    "ods": (make_offset_second_sheet, make_formulas),
    "doc": (make_docx,),
}
# WPS Office saves .et (spreadsheet) and .wps (writer) files in the Excel 97
# and Word 97 binary formats. LibreOffice cannot write them: asked for "et"
# or "wps" it uses its MS Excel 97 / MS Word 97 filters and only changes the
# extension. A renamed .xls or .doc is therefore what such a file looks like.
WPS_NAMES = {"xls": "et", "doc": "wps"}


def make_office_files(folder: Path, timeout: float = 120) -> dict[str, str]:
    """Genuine .xls, .ods and .doc files converted by LibreOffice headless,
    and their WPS-named copies, in ``folder``; returns converted file name →
    source file name. One soffice run per target format converts all its
    sources at once; the runs share one profile and go one after another,
    which is faster than starting them side by side with a profile each
    (start-up and the first profile are most of the cost)."""
    soffice = shutil.which("soffice")
    if soffice is None:
        raise FileNotFoundError("soffice (LibreOffice) is not installed")
    sources = folder / "sources"
    sources.mkdir(parents=True, exist_ok=True)
    profile = (folder / "profile").as_uri()
    for target, makers in OFFICE_CONVERSIONS.items():
        paths = []
        for make in makers:
            name, content = make()
            (sources / name).write_bytes(content)
            paths.append(str(sources / name))
        command = [soffice, "--headless", "--norestore", f"-env:UserInstallation={profile}",
                   "--convert-to", target, "--outdir", str(folder), *paths]
        subprocess.run(command, capture_output=True, timeout=timeout, check=True)

    made = office_file_names()
    for converted in made:
        stem, suffix = converted.rsplit(".", 1)
        original = {wps: ms for ms, wps in WPS_NAMES.items()}.get(suffix)
        if original is not None:
            shutil.copyfile(folder / f"{stem}.{original}", folder / converted)
    return made


def office_file_names() -> dict[str, str]:
    """The files make_office_files writes: converted name → source name."""
    names = {}
    for target, makers in OFFICE_CONVERSIONS.items():
        for make in makers:
            source = make()[0]
            stem = Path(source).stem
            names[f"{stem}.{target}"] = source
            if target in WPS_NAMES:
                names[f"{stem}.{WPS_NAMES[target]}"] = source
    return names


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for make in MAKERS:
        name, content = make()
        path = folder / name
        path.write_bytes(content)
        paths.append(path)
    return paths


if __name__ == "__main__":
    import sys

    for written in write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "table-fixtures")):
        print(written)
