"""Files only an office suite writes: genuine .xls, .ods and .doc made by
LibreOffice from the fixtures of make_tables.py, WPS-named copies, and the
LibreOffice conversion's limits (timeout, absence, failure)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import make_tables
import pytest

from ingest.model import Table
from ingest.tables import convert as convert_module
from ingest.tables import read_tables
from ingest.tables.detect import sniff
from lifeline.errors import TableError

SHARED = Path(os.environ.get("LIFELINE_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DOC_TEMPLATE = SHARED / "samples" / "templates" / "template_libreoffice.doc"
SOURCES = {make()[0]: make for makers in make_tables.OFFICE_CONVERSIONS.values() for make in makers}


@pytest.fixture(scope="module")
def office_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The LibreOffice-made files, converted once for the module: each
    soffice start costs one to two seconds. Without LibreOffice the tests
    skip locally and fail in CI, which installs it."""
    if shutil.which("soffice") is None:
        if os.environ.get("CI"):
            pytest.fail("soffice is not installed (CI installs LibreOffice headless)")
        pytest.skip("LibreOffice is not installed")
    folder = tmp_path_factory.mktemp("office")
    make_tables.make_office_files(folder)
    yield folder


def _summary(table: Table) -> dict[str, object]:
    """What a converted file must keep: figures, rows, who, when, issues."""
    return {
        "values": table.values,
        "rows": [(row.label, row.is_total, row.values) for row in table.rows],
        "unit_name": table.unit_name,
        "reported_on": str(table.reported_on),
        "period": str(table.period),
        "title": table.title,
        "warnings": [warning.code for warning in table.warnings],
        "problems": [problem.code for problem in table.problems],
    }


@pytest.mark.soffice
@pytest.mark.parametrize(("converted", "source"), make_tables.office_file_names().items())
def test_libreoffice_file_reads_like_its_source(office_files: Path, converted: str, source: str) -> None:
    expected = read_tables(*SOURCES[source]())

    tables = read_tables(converted, (office_files / converted).read_bytes())

    assert len(tables) == len(expected) == 1
    assert _summary(tables[0]) == _summary(expected[0])
    if not converted.endswith((".doc", ".wps")):
        assert tables[0].cells == expected[0].cells


@pytest.mark.soffice
def test_wps_names_are_told_by_content(office_files: Path) -> None:
    assert sniff((office_files / "offset.et").read_bytes()) == "xls"
    assert sniff((office_files / "word.wps").read_bytes()) == "doc"
    assert sniff((office_files / "offset.ods").read_bytes()) == "ods"


def _fake_soffice(folder: Path, script: str) -> None:
    """A shell script named soffice, first on PATH."""
    folder.mkdir(exist_ok=True)
    fake = folder / "soffice"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(0o755)


def test_hanging_conversion_is_killed_with_its_children(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake starts a child (as soffice starts soffice.bin) and both hang."""
    pid_file = tmp_path / "child.pid"
    _fake_soffice(tmp_path / "bin", f"sleep 60 &\necho $! > {pid_file}\nsleep 60\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(convert_module, "TIMEOUT_SECONDS", 0.5)
    started = time.monotonic()

    with pytest.raises(TableError) as raised:
        read_tables("月报.doc", DOC_TEMPLATE.read_bytes())

    assert time.monotonic() - started < 5
    assert raised.value.code == "unreadable-file"
    assert "月报.doc" in str(raised.value) and ".xlsx" in str(raised.value)
    assert _ends_soon(int(pid_file.read_text()))
    assert not list(tmp_path.glob("lifeline-soffice-*"))


def _ends_soon(pid: int) -> bool:
    """Whether ``pid`` is gone (or a zombie waiting for init) within 2 s;
    SIGKILL takes effect asynchronously."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            return True
        if "\nState:\tZ" in status:
            return True
        time.sleep(0.01)
    return False


def test_conversion_that_writes_nothing_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_soffice(tmp_path / "bin", "echo 'Error: source file could not be loaded' >&2\nexit 1\n")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")

    with pytest.raises(TableError) as raised:
        read_tables("月报.wps", DOC_TEMPLATE.read_bytes())

    assert raised.value.code == "unreadable-file"
    assert str(raised.value).startswith("月报.wps: ") and ".docx" in str(raised.value)


def test_without_libreoffice_the_sender_is_told_what_to_send(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(TableError) as raised:
        read_tables("月报.doc", DOC_TEMPLATE.read_bytes())

    assert raised.value.code == "unsupported-format"
    message = str(raised.value)
    assert message.startswith("月报.doc: ")
    assert all(suffix in message for suffix in (".xlsx", ".xls", ".docx"))
