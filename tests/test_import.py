"""`lifeline import --json` on the sample mails, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from expectations import differences, load_expected

from ingest.model import FIGURES


def lifeline(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the installed command in a real process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "lifeline", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_config(folder: Path, shared: Path, database_url: str) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f'[store]\ndata_dir = "{folder / "data"}"\nurl = "{database_url}"\n\n'
        f'[roster]\nfile = "{shared / "samples" / "roster.csv"}"\n\n'
        f'[notify]\noutbox_dir = "{folder / "outbox"}"\n'
        f'coordinator = "coordinator@example.cn"\n\n'
        f'[smtp]\nfrom = "lifeline@example.cn"\n',
        encoding="utf-8",
    )
    return path


@pytest.fixture
def imported(
    tmp_path: Path, shared_dir: Path, database_url: str
) -> tuple[Path, dict[str, dict]]:
    """Every sample mail imported in one call, in name order."""
    config = write_config(tmp_path, shared_dir, database_url)
    mails = sorted((shared_dir / "samples" / "mails").glob("*.eml"))

    done = lifeline(config, "import", "--json", *map(str, mails))

    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    return config, {Path(line["mail"]).name: line for line in lines}


def test_every_sample_mail_gives_its_expected_result(
    imported: tuple[Path, dict[str, dict]], shared_dir: Path
) -> None:
    _, results = imported
    expected = load_expected(shared_dir)

    assert sorted(results) == sorted(expected)
    failures = {
        name: differences(want, results[name])
        for name, want in expected.items()
        if differences(want, results[name])
    }
    assert failures == {}


def test_correction_supersedes_and_report_shows_current_values(
    imported: tuple[Path, dict[str, dict]], shared_dir: Path
) -> None:
    config, results = imported
    second = results["p10-correction-second.eml"]["reports"][0]
    expected = load_expected(shared_dir)["p10-correction-second.eml"]

    done = lifeline(config, "report", "--period", "2025-05", "--json")

    assert second["supersedes"] == expected["supersedes"]
    units = {u["unit"]: u for u in json.loads(done.stdout)["units"]}
    current = units["住房和城乡建设局"]
    assert current["versions"] == 2
    assert current["values"] == expected["reports"][0]["values"]


def test_report_totals_and_missing_units(imported: tuple[Path, dict[str, dict]]) -> None:
    config, results = imported
    may = [
        r for line in results.values() for r in line["reports"]
        if r["period"] == "2025-05" and r["attachment"] != "住建局5月份打通消防生命通道统计表.xlsx"
    ]

    report = json.loads(lifeline(config, "report", "--period", "2025-05", "--json").stdout)

    for key in FIGURES:
        assert report["totals"][key] == pytest.approx(sum(r["values"][key] for r in may))
    statuses = {u["unit"]: u["status"] for u in report["units"]}
    assert statuses["文化和旅游局"] == "late"
    assert statuses["商务局"] == "missing"  # p05 had no attachment
    assert report["counts"]["on-time"] + report["counts"]["late"] == len(may)


def test_history_shows_every_version_and_what_changed(
    imported: tuple[Path, dict[str, dict]]
) -> None:
    config, _ = imported

    done = lifeline(config, "report", "--period", "2025-05", "--unit", "住建局", "--history")

    assert done.returncode == 0, done.stderr
    assert "version 1:" in done.stdout and "version 2 (current):" in done.stdout
    assert "premises_inspected 120 -> 126" in done.stdout


def test_importing_again_stores_nothing_twice(
    imported: tuple[Path, dict[str, dict]], shared_dir: Path
) -> None:
    config, _ = imported
    mails = sorted((shared_dir / "samples" / "mails").glob("*.eml"))

    again = lifeline(config, "import", "--json", *map(str, mails))

    outcomes = {json.loads(line)["outcome"] for line in again.stdout.splitlines()}
    assert outcomes == {"duplicate"}


def test_receipts_are_written_to_the_outbox(imported: tuple[Path, dict[str, dict]]) -> None:
    config, _ = imported
    outbox = config.parent / "outbox"

    written = list(outbox.glob("*.eml"))

    # One answer per mail from a known sender (p11's sender is unknown),
    # plus the coordinator's notices about problems.
    assert len(written) >= 11


def test_a_backlog_read_by_the_reading_processes_gives_the_same_results(
    tmp_path: Path, shared_dir: Path
) -> None:
    """Sixty mails in one batch: decoding and table reading go to the
    reading processes; every copy gives its sample's expected result."""
    from test_faults import backlog

    folder = tmp_path / "mails"
    folder.mkdir()
    samples = sorted((shared_dir / "samples" / "mails").glob("*.eml"))
    for number, (raw, _) in enumerate(backlog(shared_dir, 60)):
        (folder / f"{number:03d}-{samples[number % len(samples)].name}").write_bytes(raw)
    config = write_config(tmp_path, shared_dir, f"sqlite:///{tmp_path / 'l.db'}")

    done = lifeline(config, "import", "--json", "--no-notices", str(folder))

    assert done.returncode == 0, done.stderr[-2000:]
    expected = load_expected(shared_dir)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(lines) == 60
    for line in lines:
        sample = line["mail"].split("-", 1)[1]
        assert differences(expected[sample], line) == [], line["mail"]


def test_an_older_version_arriving_late_is_not_called_a_correction(
    tmp_path: Path, shared_dir: Path
) -> None:
    """A version received before the one in force changes nothing, and its
    receipt says so instead of claiming to replace the data."""
    import datetime as dt
    import email
    import email.policy

    from make_tables import ROW_A, ROW_B
    from test_pipeline import SHANGHAI, mail, table

    newer = mail("xicheng_office@example.cn", {"a.xlsx": table("西城街道", ROW_B)},
                 received=dt.datetime(2025, 5, 10, 9, 0, tzinfo=SHANGHAI))
    older = mail("xicheng_office@example.cn", {"a.xlsx": table("西城街道", ROW_A)},
                 received=dt.datetime(2025, 5, 8, 9, 0, tzinfo=SHANGHAI))
    (tmp_path / "1-newer.eml").write_bytes(newer)
    (tmp_path / "2-older.eml").write_bytes(older)
    config = write_config(tmp_path, shared_dir, f"sqlite:///{tmp_path / 'l.db'}")

    done = lifeline(config, "import", "--json", str(tmp_path / "1-newer.eml"),
                    str(tmp_path / "2-older.eml"))

    second = json.loads(done.stdout.splitlines()[1])
    assert second["reports"][0]["supersedes"] is None
    bodies = [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        .get_body(("plain",)).get_content()
        for p in (tmp_path / "outbox").glob("*.eml")
    ]
    older_receipt = next(b for b in bodies if "2025-05-08 09:00" in b)
    assert "已替换" not in older_receipt
    assert "仍以更晚的报送为准" in older_receipt
