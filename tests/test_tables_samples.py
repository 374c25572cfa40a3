"""The sample mails' attachments and the blank templates, read for real."""

from __future__ import annotations

import email
import io
import json
import os
import zipfile
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest.model import FIGURES
from ingest.tables import read_tables

SHARED = Path(os.environ.get("LIFELINE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SAMPLES = SHARED / "samples"
TABLE_SUFFIXES = (".xlsx", ".xls", ".docx", ".ods", ".doc")


def _attachments(message: EmailMessage) -> list[tuple[str, bytes]]:
    """(name, bytes) of every table file, opening zips and forwarded mails."""
    found = []
    for part in message.walk():
        name = part.get_filename()
        if not name or part.is_multipart():
            continue
        content = part.get_payload(decode=True)
        if name.lower().endswith(".zip"):
            archive = zipfile.ZipFile(io.BytesIO(content))
            for info in archive.infolist():
                member = info.filename.encode("cp437").decode("gbk") if not info.flag_bits & 0x800 else info.filename
                found.append((member, archive.read(info)))
        elif name.lower().endswith(TABLE_SUFFIXES):
            found.append((name, content))
    return found


def _cases() -> list[tuple[str, str, dict[str, object]]]:
    cases = []
    for path in sorted((SAMPLES / "expected").glob("*.json")):
        expected = json.loads(path.read_text(encoding="utf-8"))
        for report in expected["reports"]:
            cases.append((expected["mail"], report["attachment"], report))
    return cases


@pytest.mark.parametrize(("mail", "attachment", "report"), _cases(), ids=lambda value: value if isinstance(value, str) else "")
def test_sample_attachment_reads_to_expected_values(mail: str, attachment: str, report: dict[str, object]) -> None:
    message = email.message_from_bytes((SAMPLES / "mails" / mail).read_bytes(), policy=policy.default)
    files = dict(_attachments(message))  # type: ignore[arg-type]

    tables = read_tables(attachment, files[attachment])

    assert len(tables) == 1
    table = tables[0]
    assert table.values == report["values"]
    assert [issue.code for issue in table.warnings] == [w["code"] if isinstance(w, dict) else w for w in report["warnings"]]  # type: ignore[union-attr]
    assert table.problems == []
    assert set(table.values) == set(FIGURES)


def test_p02_total_row_and_label_column() -> None:
    message = email.message_from_bytes((SAMPLES / "mails" / "p02-xls-gbk-filename-total-row.eml").read_bytes(), policy=policy.default)
    name, content = _attachments(message)[0]  # type: ignore[arg-type]

    table = read_tables(name, content)[0]

    assert table.sheet == "4月"
    assert table.cells == "4月!A3:L9"
    assert [row.label for row in table.rows] == ["城区中小学", "农村中小学", "幼儿园", "校外培训机构", "合计"]
    assert [row.is_total for row in table.rows] == [False, False, False, False, True]
    assert table.rows[0].cells == "4月!B5:L5"
    assert table.unit_name == "区教育和体育局"
    assert str(table.reported_on) == "2025-04-18"


def test_p01_metadata() -> None:
    message = email.message_from_bytes((SAMPLES / "mails" / "p01-xlsx-utf8-filename.eml").read_bytes(), policy=policy.default)
    name, content = _attachments(message)[0]  # type: ignore[arg-type]

    table = read_tables(name, content)[0]

    assert table.title == "全区打通消防“生命通道”行动推进统计表"
    assert table.unit_name == "城关街道办事处"
    assert str(table.reported_on) == "2025-04-15"
    assert table.period is None
    assert len(table.rows) == 1


def test_p04_date_without_year() -> None:
    message = email.message_from_bytes((SAMPLES / "mails" / "p04-text-figures.eml").read_bytes(), policy=policy.default)
    name, content = _attachments(message)[0]  # type: ignore[arg-type]

    table = read_tables(name, content)[0]

    assert table.reported_on is not None
    assert (table.reported_on.year, table.reported_on.month, table.reported_on.day) == (None, 5, 12)


def _templates() -> list[Path]:
    return sorted(path for path in (SAMPLES / "templates").iterdir() if path.suffix != ".doc")


@pytest.mark.parametrize("path", _templates(), ids=lambda path: path.name)
def test_blank_template_is_an_empty_table(path: Path) -> None:
    tables = read_tables(path.name, path.read_bytes())

    assert len(tables) == 1
    table = tables[0]
    assert table.rows == []
    assert all(value == 0 for value in table.values.values())
    assert [problem.code for problem in table.problems] == ["empty-table"]
    assert table.title == "全区打通消防“生命通道”行动推进统计表"
    assert table.unit_name is None and table.reported_on is None


@pytest.mark.soffice
@pytest.mark.skipif(not __import__("shutil").which("soffice"), reason="LibreOffice not installed")
def test_doc_template_through_libreoffice() -> None:
    path = SAMPLES / "templates" / "template_libreoffice.doc"

    tables = read_tables(path.name, path.read_bytes())

    assert [problem.code for problem in tables[0].problems] == ["empty-table"]

