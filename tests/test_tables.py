"""The table reader on fixtures built by make_tables.py, in odd shapes."""

from __future__ import annotations

import io
import time
import tracemalloc

import make_tables
import openpyxl
import pytest

from ingest.model import FIGURES
from ingest.tables import read_tables
from lifeline.errors import NotATable, TableError

SUM = dict(zip(FIGURES, [30, 10, 9, 3, 2, 7.5, 3, 10, 9, 5, 9], strict=True))
ROW_A = dict(zip(FIGURES, make_tables.ROW_A, strict=True))


def _read(make: object) -> tuple[str, object]:
    name, content = make()  # type: ignore[operator]
    tables = read_tables(name, content)
    assert len(tables) == 1
    return name, tables[0]


def test_header_at_an_offset_on_a_second_sheet() -> None:
    _, table = _read(make_tables.make_offset_second_sheet)

    assert table.sheet == "5月"
    assert table.cells == "5月!D6:P10"
    assert table.values == SUM
    assert [row.label for row in table.rows] == ["一社区", "二社区", "合计"]
    assert [row.is_total for row in table.rows] == [False, False, True]
    assert table.warnings == [] and table.problems == []
    assert table.unit_name == "城关街道"
    assert str(table.reported_on) == "2025-05-18"
    assert (table.period.month, table.period.year, table.period.source) == (5, None, "title")


def test_total_row_that_does_not_add_up_gives_the_sum_and_a_warning() -> None:
    _, table = _read(make_tables.make_total_mismatch)

    assert table.values == SUM
    assert [warning.code for warning in table.warnings] == ["total-row-mismatch"]
    assert "31" in table.warnings[0].message and "Sheet!B7:L7" in table.warnings[0].message


def test_text_figures() -> None:
    _, table = _read(make_tables.make_text_figures)

    assert list(table.values.values()) == [1200, 12, 5, 0, 0, 0, 3, 7, 0, 0, 2000]
    assert table.problems == []


def test_formulas_without_saved_results_are_computed() -> None:
    _, table = _read(make_tables.make_formulas)

    assert table.rows[-1].is_total
    assert table.rows[-1].values == SUM
    assert table.values == SUM and table.warnings == []


def test_formula_that_cannot_be_computed_is_a_problem_naming_the_cell() -> None:
    _, table = _read(make_tables.make_unsupported_formula)

    assert [problem.code for problem in table.problems] == ["not-a-number"]
    assert table.problems[0].message.startswith("Sheet!D4: the formula =VLOOKUP")


def test_huge_used_range_is_read_quickly_and_small() -> None:
    name, content = make_tables.make_huge_range()
    tracemalloc.start()
    started = time.perf_counter()

    tables = read_tables(name, content)

    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert tables[0].values == ROW_A
    assert elapsed < 1.0
    assert peak < 50_000_000


def test_not_a_number_and_fraction_in_a_count() -> None:
    _, table = _read(make_tables.make_not_a_number)

    assert [problem.message for problem in table.problems] == [
        'Sheet!D5: "见附件" is not a number',
        'Sheet!B6: "2.5" is not a whole number',
    ]
    assert {problem.code for problem in table.problems} == {"not-a-number"}


def test_every_unreadable_cell_is_one_not_a_number_problem_naming_its_cell() -> None:
    row = ["42,5", 10**15, "2 2", "186.7", 1e15, "12345678901", "1,20", "6（处）", 1.0e7, "1E+15", "12 （家）"]
    workbook = openpyxl.Workbook()
    workbook.active.title = "报表"
    make_tables.write_table(workbook.active, 1, 1, [row], (), (make_tables.TITLE,))
    buffer = io.BytesIO()
    workbook.save(buffer)

    table = read_tables("odd.xlsx", buffer.getvalue())[0]

    assert [problem.message for problem in table.problems] == [
        '报表!A4: "42,5" is not a number',
        f'报表!B4: "{10**15}" is not a plausible count',
        '报表!C4: "2 2" is not a number',
        '报表!D4: "186.7" is not a whole number',
        '报表!E4: "1000000000000000" is not a plausible count',
        '报表!F4: "12345678901" is not a plausible area',
        '报表!G4: "1,20" is not a number',
        '报表!J4: "1E+15" is not a plausible count',
    ]
    assert {problem.code for problem in table.problems} == {"not-a-number"}
    assert (table.values["drill_premises"], table.values["training_premises"]) == (0, 12)
    assert (table.values["obstruction_found"], table.values["obstruction_cleared"]) == (6, 10_000_000)


def test_negative_figure_is_kept_with_a_problem() -> None:
    _, table = _read(make_tables.make_negative)

    assert table.values["evacuation_fixed"] == -3
    assert [(problem.code, problem.message.split(":")[0]) for problem in table.problems] == [("negative-value", "Sheet!C5")]


def test_plausibility_warnings() -> None:
    _, table = _read(make_tables.make_implausible)

    assert [warning.code for warning in table.warnings] == [
        "fixed-exceeds-found", "removed-exceeds-found", "cleared-exceeds-found", "removed-without-area",
    ]


def test_docx_with_label_column_total_and_content_control() -> None:
    _, table = _read(make_tables.make_docx)

    assert table.values == SUM and table.warnings == []
    assert [row.label for row in table.rows] == ["甲村", "乙村", "合计"]
    assert table.unit_name == "南湖镇人民政府"
    assert str(table.reported_on) == "2025-05-16"
    assert str(table.period) == "--05"


def test_prose_docx_is_not_a_table() -> None:
    name, content = make_tables.make_prose_docx()

    with pytest.raises(NotATable):
        read_tables(name, content)


@pytest.mark.parametrize("make", [make_tables.make_csv_gbk, make_tables.make_csv_utf8_bom, make_tables.make_html, make_tables.make_xml2003])
def test_text_formats(make: object) -> None:
    _, table = _read(make)

    assert table.values == ROW_A
    assert table.title == make_tables.TITLE


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(100), NotATable),
        (b"%PDF-1.4\n%...", NotATable),
        ("本月工作总结：共排查186家。".encode("gbk"), NotATable),
        (b"", NotATable),
        (b"PK\x03\x04xl/" + bytes(50), TableError),
    ],
)
def test_not_tables_and_broken_files(content: bytes, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        read_tables("附件.xlsx", content)

    if error is TableError:
        assert "附件.xlsx" in str(raised.value)


def test_encrypted_with_unknown_password_asks_for_unprotected_copy() -> None:
    import io

    import msoffcrypto.format.ooxml as ooxml

    name, content = make_tables.make_negative()
    encrypted = io.BytesIO()
    ooxml.OOXMLFile(io.BytesIO(content)).encrypt("secret", encrypted)

    with pytest.raises(TableError) as raised:
        read_tables(name, encrypted.getvalue())

    assert raised.value.code == "encrypted-file"


def test_encrypted_with_excel_default_password_is_opened() -> None:
    import io

    import msoffcrypto.format.ooxml as ooxml

    name, content = make_tables.make_negative()
    encrypted = io.BytesIO()
    ooxml.OOXMLFile(io.BytesIO(content)).encrypt("VelvetSweatshop", encrypted)

    table = read_tables(name, encrypted.getvalue())[0]

    assert table.values["evacuation_fixed"] == -3


def test_huge_range_without_a_dimension_element_is_streamed_too() -> None:
    name, content = make_tables.make_huge_range_without_dimension()
    started = time.perf_counter()

    tables = read_tables(name, content)

    assert tables[0].values == ROW_A
    assert time.perf_counter() - started < 1.0


def test_openpyxl_parses_xml_with_defusedxml() -> None:
    import openpyxl

    assert openpyxl.DEFUSEDXML is True


@pytest.mark.parametrize("huge", [False, True], ids=["calamine", "openpyxl"])
def test_xml_entity_bomb_is_refused_quickly(huge: bool) -> None:
    name, content = make_tables.make_entity_bomb(huge=huge)
    started = time.perf_counter()

    with pytest.raises(TableError) as raised:
        read_tables(name, content)

    assert time.perf_counter() - started < 1.0
    assert raised.value.code == "unreadable-file" and name in str(raised.value)


def test_entity_bomb_in_a_word_document_is_never_expanded() -> None:
    name, content = make_tables.make_docx_entity_bomb()
    started = time.perf_counter()

    try:
        tables = read_tables(name, content)
    except TableError as error:
        assert name in str(error)
    else:
        assert tables[0].values == SUM
        assert len(tables[0].title or "") < 100
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("lying", [False, True], ids=["honest-directory", "lying-directory"])
def test_zip_bomb_is_refused_before_it_is_inflated(lying: bool) -> None:
    """tracemalloc sees Python's zlib buffers, where an unbounded read of
    the 60 MB part would show."""
    name, content = make_tables.make_zip_bomb(lying=lying)
    tracemalloc.start()
    started = time.perf_counter()

    with pytest.raises(TableError) as raised:
        read_tables(name, content)

    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 10_000_000
    assert raised.value.code == "unreadable-file" and name in str(raised.value)


def test_file_over_the_size_limit_is_refused() -> None:
    from ingest.tables.limits import MAX_FILE_BYTES

    with pytest.raises(TableError) as raised:
        read_tables("大表.xlsx", b"PK\x03\x04" + bytes(MAX_FILE_BYTES))

    assert "大表.xlsx" in str(raised.value) and "MB" in str(raised.value)


def test_a_table_damaged_on_the_way_is_unreadable_not_missing() -> None:
    """One base64 character lost in transit shifts every byte after it:
    the .xlsx is no longer a workbook. The sender must hear that the file
    is damaged (unreadable-file), not that no table was attached."""
    import base64
    import binascii

    workbook = openpyxl.Workbook()
    make_tables.write_table(workbook.active, 1, 1, [make_tables.ROW_A])
    buffer = io.BytesIO()
    workbook.save(buffer)
    encoded = base64.encodebytes(buffer.getvalue())
    damaged = binascii.a2b_base64(encoded[:1] + encoded[5:])  # four characters lost

    with pytest.raises(TableError) as raised:
        read_tables("城关街道统计表.xlsx", damaged)
    assert raised.value.code == "unreadable-file"
    with pytest.raises(NotATable):  # the same bytes under a photo's name: not ours
        read_tables("现场照片.jpg", damaged)
