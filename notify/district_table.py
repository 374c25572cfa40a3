"""The district's own statistics table, filled with every unit's figures.

It keeps the template's layout (title, 报送单位/报送时间 line, the merged
two-row header, the notes) so it can be forwarded upwards as it is; a
单位 column is added on the left, a 备注 column on the right, one row per
unit and a 合计 row.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from ingest.model import FIGURES
from notify.wording import period_label

if TYPE_CHECKING:
    from notify.summary import SummaryData, UnitLine

TITLE = "打通消防“生命通道”行动推进统计表"
NOTES = (
    "备注：人员密集场所包括公众聚集场所，医院门诊楼、病房楼、学校教学楼、图书馆、"
    "食堂和集体宿舍，养老院、福利院，托儿所，幼儿园，公共图书馆的阅览室，公共展览馆、"
    "博物馆、劳动密集型企业的生产加工车间和员工集体宿舍、旅游、宗教活动场所等。",
    "公众聚集场所包括宾馆、饭店、商场、集贸市场、客运车站侯车室、客运码头候船厅、"
    "民用机场航站楼、体育场所、会堂以及公共娱乐场所等。",
)

# The header as (cell range, text): the template's, one column to the right.
HEADER = (
    ("A3:A4", "单位"),
    ("B3:B4", "排查单位场所\n(家)"),
    ("C3:D3", "安全疏散\n条件不足"),
    ("E3:G3", "人员密集场所违规设置铁栅栏、防盗网、广告牌"),
    ("H3", "消防车通道禁停标线"),
    ("I3:J3", "占用、堵塞消防车通道障碍物"),
    ("K3:K4", "开展消\n防演练\n情况\n(家)"),
    ("L3:L4", "开展消\n防培训\n情况\n(家)"),
    ("M3:M4", "备注"),
    ("C4", "发现\n(处)"),
    ("D4", "整改\n(处)"),
    ("E4", "发现\n(处)"),
    ("F4", "拆除\n(处)"),
    ("G4", "合计(平\n方米)"),
    ("H4", "划线\n(处)"),
    ("I4", "发现\n(处)"),
    ("J4", "清理\n(处)"),
)
LAST_COLUMN = "M"
FIRST_DATA_ROW = 5

THIN = Side(style="thin")
BOX = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)
CENTRE = Alignment(horizontal="center", vertical="center", wrap_text=True)


def write_district_table(summary: SummaryData, path: Path | str) -> None:
    """Write the table for ``summary`` to ``path`` (atomically)."""
    path = Path(path)
    workbook = Workbook()
    sheet = workbook.worksheets[0]
    sheet.title = period_label(summary.period)

    _title(sheet, summary)
    _header(sheet)
    row = FIRST_DATA_ROW
    for unit in summary.units:
        _unit_row(sheet, row, unit)
        row += 1
    _total_row(sheet, row, summary)
    _notes(sheet, row + 1)
    _layout(sheet)

    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".xlsx")
    os.close(handle)
    try:
        workbook.save(temporary)
        # mkstemp makes the file private; the table is for sharing.
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _title(sheet: Worksheet, summary: SummaryData) -> None:
    sheet.merge_cells(f"A1:{LAST_COLUMN}1")
    sheet["A1"] = f"{summary.district}{TITLE}（{period_label(summary.period)}）"
    sheet["A1"].font = Font(bold=True, size=16)
    sheet["A1"].alignment = Alignment(horizontal="center", vertical="center")

    made = dt.date.fromisoformat(summary.generated[:10])
    sheet.merge_cells(f"A2:{LAST_COLUMN}2")
    sheet["A2"] = (
        f"报送单位：{summary.district}"
        f"                                  "
        f"报送时间：{made.year}年{made.month}月{made.day}日"
    )
    sheet["A2"].alignment = Alignment(horizontal="left", vertical="center")


def _header(sheet: Worksheet) -> None:
    for cells, text in HEADER:
        if ":" in cells:
            sheet.merge_cells(cells)
        first = sheet[cells.split(":")[0]]
        first.value = text
        first.font = Font(bold=True, size=11)
        first.alignment = CENTRE
    for row in sheet.iter_rows(min_row=3, max_row=4, max_col=len(FIGURES) + 2):
        for cell in row:
            cell.border = BOX


def _unit_row(sheet: Worksheet, row: int, unit: UnitLine) -> None:
    values = unit.values or {}
    cells = [unit.name, *(values.get(key) for key in FIGURES), _note(unit)]
    _write_row(sheet, row, cells)


def _note(unit: UnitLine) -> str:
    notes = []
    if unit.status == "missing":
        notes.append("未报送")
    elif unit.status == "late":
        notes.append(f"逾期报送（{unit.received}）")
    if unit.versions > 1:
        notes.append(f"更正{unit.versions - 1}次")
    return "；".join(notes)


def _total_row(sheet: Worksheet, row: int, summary: SummaryData) -> None:
    cells = ["合计", *(summary.totals[key] for key in FIGURES), ""]
    _write_row(sheet, row, cells)
    for cell in sheet[row]:
        cell.font = Font(bold=True)


def _write_row(sheet: Worksheet, row: int, cells: Sequence[object]) -> None:
    for column, value in enumerate(cells, start=1):
        cell = sheet.cell(row=row, column=column, value=value)
        cell.border = BOX
        cell.alignment = CENTRE


def _notes(sheet: Worksheet, row: int) -> None:
    for offset, text in enumerate(NOTES):
        sheet.merge_cells(f"A{row + offset}:{LAST_COLUMN}{row + offset}")
        cell = sheet.cell(row=row + offset, column=1, value=text)
        cell.font = Font(size=10)
        cell.alignment = Alignment(horizontal="left", vertical="center", wrap_text=True)
        sheet.row_dimensions[row + offset].height = 45


def _layout(sheet: Worksheet) -> None:
    sheet.row_dimensions[1].height = 36
    sheet.row_dimensions[2].height = 24
    sheet.row_dimensions[3].height = 42
    sheet.row_dimensions[4].height = 66
    for column in range(1, len(FIGURES) + 3):
        sheet.column_dimensions[get_column_letter(column)].width = 10
    sheet.column_dimensions["A"].width = 16
    sheet.column_dimensions[LAST_COLUMN].width = 24
    sheet.freeze_panes = f"B{FIRST_DATA_ROW}"
    sheet.print_title_rows = "3:4"
    # Printed on one landscape page wide, as the district table is filed.
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = sheet.PAPERSIZE_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
