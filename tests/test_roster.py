"""The roster: `lifeline units ...` in real processes, on a real database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy.orm import Session

from lifeline.errors import ConfigError, LifelineError
from store import db, roster

HEADER = "name,aliases,emails,kind\n"


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


def _roster_file(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "units.csv"
    path.write_text(HEADER + rows, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("rows", "value", "rows_named"),
    [
        ("城关街道,,a@x.cn,\n东城街道,,b@x.cn,\n城关街道,,c@x.cn,\n", "城关街道", (2, 4)),
        ("城关街道,城关办,a@x.cn,\n东城街道,城关办,b@x.cn,\n", "城关办", (2, 3)),
        ("城关街道,,a@x.cn,\n东城街道,城关街道办事处,b@x.cn,\n", "城关街道办事处", (2, 3)),
        ("城关街道,,a@x.cn,\n东城街道,,b@x.cn|A@X.cn,\n", "a@x.cn", (2, 3)),
    ],
    ids=["name twice", "alias on two units", "alias is another unit's name", "address on two units"],
)
def test_roster_file_claiming_a_name_or_address_twice_is_refused(
    tmp_path: Path, rows: str, value: str, rows_named: tuple[int, int]
) -> None:
    path = _roster_file(tmp_path, rows)

    with pytest.raises(ConfigError) as caught:
        roster.read_file(path)

    message = str(caught.value)
    assert value in message and "one unit only" in message
    for row in rows_named:
        assert f"{path}, row {row}" in message


def test_roster_file_with_a_word_for_an_address_is_refused(tmp_path: Path) -> None:
    path = _roster_file(tmp_path, "城关街道,,a@x.cn|小王,\n")

    with pytest.raises(ConfigError, match=r"row 2: '小王' \(城关街道\) is not a mail address"):
        roster.read_file(path)


def test_aliases_of_one_unit_that_fold_alike_are_fine(tmp_path: Path) -> None:
    path = _roster_file(tmp_path, "城关街道,城关街道办事处|城关办,a@x.cn|a@x.cn,\n")

    assert [entry.name for entry in roster.read_file(path)] == ["城关街道"]


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session on a fresh database holding 城关街道 (alias 城关办, a@x.cn)."""
    engine = db.open_engine(database_url)
    sessions = db.session_factory(engine)
    with sessions() as opened:
        roster.sync(opened, [roster.RosterEntry("城关街道", ("城关办",), ("a@x.cn",), "乡镇街道")])
        opened.commit()
        yield opened
    # The schema is dropped after the test: no connection may outlive it.
    engine.dispose()


@pytest.mark.parametrize(
    ("entry", "value"),
    [
        (roster.RosterEntry("东城街道", ("城关办",), ("b@x.cn",), ""), "城关办"),
        (roster.RosterEntry("城关街道办事处", (), ("b@x.cn",), ""), "城关街道办事处"),
        (roster.RosterEntry("东城街道", (), ("b@x.cn", "a@x.cn"), ""), "a@x.cn"),
    ],
    ids=["alias", "name", "address"],
)
def test_sync_refuses_what_another_unit_in_the_database_has(
    session: Session, entry: roster.RosterEntry, value: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        roster.sync(session, [entry])

    assert value in str(caught.value) and "城关街道's in the database" in str(caught.value)
    assert [unit.name for unit in roster.all_units(session)] == ["城关街道"]
    assert len(roster.changes_for(session, entry.name)) == 0


def test_sync_of_the_same_unit_adds_what_is_new(session: Session) -> None:
    changes = roster.sync(session, [roster.RosterEntry("城关街道", ("城关办", "城关"), ("a@x.cn", "c@x.cn"), "")])

    assert changes == ["城关街道: alias added 城关", "城关街道: email added c@x.cn"]


def test_add_email_refuses_what_is_not_an_address(session: Session) -> None:
    unit = roster.find(session, "城关街道")
    assert unit is not None

    for text in ("not-an-address", "a b@x.cn", "wang@localhost", "@x.cn"):
        with pytest.raises(LifelineError, match=f"'{text}' is not a mail address"):
            roster.add_email(session, unit, text)


def test_add_email_refuses_another_units_address(session: Session) -> None:
    roster.sync(session, [roster.RosterEntry("东城街道", (), ("b@x.cn",), "")])
    unit = roster.find(session, "东城街道")
    assert unit is not None

    with pytest.raises(LifelineError, match="A@x.cn is already an address of 城关街道".lower()):
        roster.add_email(session, unit, " A@x.cn ")
    assert [email.address for email in unit.emails] == ["b@x.cn"]
    assert roster.add_email(session, unit, "b@x.cn") is None


def test_duplicate_in_the_configured_roster_is_a_clear_error_not_a_traceback(
    tmp_path: Path,
) -> None:
    path = _roster_file(tmp_path, "城关街道,,a@x.cn,\n城关街道,,b@x.cn,\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n[roster]\nfile = "{path}"\n',
        encoding="utf-8",
    )

    printed = units(config, "list", ok=False)

    assert "Traceback" not in printed
    assert f"{path}, row 2" in printed and f"{path}, row 3" in printed and "城关街道" in printed


def test_add_email_of_another_unit_on_the_command_line(config: Path) -> None:
    printed = units(config, "add-email", "北山镇", "CGJD_2019@example.com", ok=False)

    assert "cgjd_2019@example.com is already an address of 城关街道" in printed
    assert "Traceback" not in printed


def test_remove_email_frees_the_address_for_another_unit(config: Path) -> None:
    units(config, "remove-email", "城关街道", "chengguan@example.cn")

    emails = next(
        line for line in units(config, "show", "城关街道").splitlines()
        if line.startswith("emails:")
    )
    assert emails == "emails:   cgjd_2019@example.com"
    units(config, "add-email", "东城街道", "chengguan@example.cn")
    assert "email removed chengguan@example.cn" in units(config, "show", "城关街道")
    assert "chengguan@example.cn" in units(config, "show", "东城街道")
