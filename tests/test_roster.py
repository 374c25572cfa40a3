"""The roster: `lifeline units ...` in real processes, on a real database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest


@pytest.fixture
def config(tmp_path: Path, shared_dir: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[roster]\nfile = "{shared_dir / "samples" / "roster.csv"}"\n',
        encoding="utf-8",
    )
    return path


def units(config: Path, *args: str, ok: bool = True) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "lifeline", "units", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=120,
    )
    assert (done.returncode == 0) is ok, done.stderr
    return done.stdout if ok else done.stderr


def test_list_shows_the_roster_file(config: Path) -> None:
    listed = units(config, "list").splitlines()

    assert len(listed) == 16
    assert listed[0].startswith("城关街道\t乡镇街道\tcgjd_2019@example.com")


def test_show_finds_a_unit_by_alias(config: Path) -> None:
    shown = units(config, "show", "区教体局")

    assert "name:     教育和体育局" in shown
    assert "jtj_aq@example.cn" in shown


def test_add_email_is_kept_and_logged(config: Path) -> None:
    units(config, "add-email", "北山镇", "XiaoLiu_BS@example.com")

    shown = units(config, "show", "北山镇")

    assert "xiaoliu_bs@example.com" in shown
    assert "email added xiaoliu_bs@example.com" in shown


def test_import_xlsx_adds_and_retires_without_losing_history(
    config: Path, tmp_path: Path
) -> None:
    roster = tmp_path / "roster.xlsx"
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["name", "aliases", "emails", "kind"])
    sheet.append(["城关街道", "城关办", "cgjd_2019@example.com", "乡镇街道"])
    sheet.append(["新区街道", "新区办|新区街道办事处", "xq@example.cn", "乡镇街道"])
    workbook.save(roster)

    units(config, "list")  # the configured roster is loaded at start
    printed = units(config, "import", str(roster), "--retire-missing-from", "2025-06")

    assert "新区街道: added 乡镇街道" in printed
    assert "东城街道: retired from 2025-06" in printed
    assert "retired from 2025-06" in units(config, "show", "东城街道")
    assert "新区街道" in units(config, "list")


def test_unknown_unit_is_a_clear_error(config: Path) -> None:
    printed = units(config, "show", "不存在的单位", ok=False)

    assert "no unit named '不存在的单位'" in printed
