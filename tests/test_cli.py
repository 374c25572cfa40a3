"""The command line as a shell runs it: exit statuses and pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def config(tmp_path: Path, shared_dir: Path) -> Path:
    """A fresh data folder with the sample roster, so `report` has rows."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[roster]\nfile = "{shared_dir / "samples" / "roster.csv"}"\n',
        encoding="utf-8",
    )
    return path


def _into_closed_pipe(*args: str) -> tuple[int, str]:
    """Run lifeline with its stdout a pipe whose reader is gone before the
    first line is written, as `lifeline ... | head -1` leaves it; the
    status and stderr."""
    process = subprocess.Popen(
        [sys.executable, "-m", "lifeline", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    process.stderr.close()
    return process.wait(timeout=60), stderr


def test_report_into_a_closed_pipe_ends_quietly(config: Path) -> None:
    status, stderr = _into_closed_pipe("report", "--period", "2025-05", "--config", str(config))

    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
    assert status == 141


def test_parse_into_a_closed_pipe_ends_quietly(shared_dir: Path) -> None:
    template = shared_dir / "samples" / "templates" / "template_openpyxl.xlsx"

    status, stderr = _into_closed_pipe("parse", str(template))

    assert stderr == "" and status == 141


def test_report_into_head_prints_its_first_line(config: Path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m lifeline report --period 2025-05 --config {config} | head -1",
        shell=True, capture_output=True, text=True, timeout=60, check=True,
    )

    assert len(done.stdout.splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_parse_reads_a_table_inside_a_zip_as_a_mail_would(tmp_path: Path) -> None:
    """Units zip their table; `parse` shows what import would read."""
    from make_mails import zip_with_names
    from make_tables import make_total_mismatch

    name, content = make_total_mismatch()
    archive = tmp_path / "统计表.zip"
    archive.write_bytes(zip_with_names({"南湖镇5月份统计表.xlsx": content}))

    done = subprocess.run(
        [sys.executable, "-m", "lifeline", "parse", str(archive)],
        capture_output=True, text=True, timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("南湖镇5月份统计表.xlsx: sheet")
    assert "warning total-row-mismatch" in done.stdout
