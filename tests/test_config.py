"""The configuration file: defaults, checks, passwords."""

from __future__ import annotations

from pathlib import Path

import pytest

from lifeline import config
from lifeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_example_file_documents_every_default() -> None:
    """config.example.toml shows each key with the default the code uses."""
    example = config.load(ROOT / "config.example.toml")

    assert config.Config(source=example.source) == example


def test_example_file_names_every_key() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section in ("mailbox", "store", "roster", "reporting", "smtp", "notify"):
        fields = config.dataclasses.fields(getattr(config.Config(), section))
        for field in fields:
            name = "from" if field.name == "sender" else field.name
            shown = f"\n{name} =" in text or f"[[{section}.{name}]]" in text
            assert shown, (section, name)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"mailbox": {"hots": "x"}}, "mailbox.hots"),
        ({"mailbox": {"port": "993"}}, "mailbox.port"),
        ({"mailbox": {"tls": "tls"}}, "mailbox.tls"),
        ({"reporting": {"timezone": "Asia/Beijing"}}, "reporting.timezone"),
        ({"reporting": {"deadline_day": 31}}, "reporting.deadline_day"),
        ({"notify": {"reminders": [{"step": "x", "day": 15, "time": "9"}]}}, "notify.reminders[0].time"),
        ({"notify": {"reminders": [{"day": 15}]}}, "notify.reminders[0]"),
        ({"smtp": {"from": 1}}, "smtp.from"),
        ({"mailbox": {"idle": 1}}, "mailbox.idle"),
        ({"extra": {}}, "extra"),
    ],
)
def test_bad_values_name_their_key(data: dict, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.from_dict(data)

    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("data", "named", "value"),
    [
        ({"notify": {"holidays": ["2025-10-01", "10月1日"]}}, "notify.holidays[1]", "10月1日"),
        ({"notify": {"holidays": ["2025-13-01"]}}, "notify.holidays[0]", "2025-13-01"),
        ({"notify": {"holidays": ["20251001"]}}, "notify.holidays[0]", "20251001"),
        ({"notify": {"coordinator": "张科长"}}, "notify.coordinator", "张科长"),
        ({"notify": {"coordinator": "zhang@example"}}, "notify.coordinator", "zhang@example"),
        ({"smtp": {"from": "campaign mailbox"}}, "smtp.from", "campaign mailbox"),
        ({"smtp": {"from": "消防办 <xf at example.cn>"}}, "smtp.from", "xf at example.cn"),
    ],
)
def test_bad_dates_and_addresses_are_named_with_their_value(data: dict, named: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config.from_dict(data)

    assert named in str(caught.value) and value in str(caught.value)


def test_good_dates_and_addresses_are_taken() -> None:
    loaded = config.from_dict(
        {
            "notify": {"holidays": ["2025-10-01", "2026-02-17"], "coordinator": "zhang@example.cn"},
            "smtp": {"from": "消防办 <xf@example.cn>"},
            "mailbox": {"user": "report-inbox"},
        }
    )

    assert loaded.notify.holidays == ("2025-10-01", "2026-02-17")
    assert loaded.smtp.sender == "消防办 <xf@example.cn>"


def test_missing_step_name_is_refused_with_the_key() -> None:
    with pytest.raises(ConfigError, match=r"notify\.reminders\[0\]"):
        config.from_dict({"notify": {"reminders": [{"day": 15}]}})


def test_integers_are_taken_for_floats() -> None:
    loaded = config.from_dict({"mailbox": {"timeout_seconds": 5}})

    assert loaded.mailbox.timeout_seconds == 5.0


def test_missing_file_says_where_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config.example.toml"):
        config.load(tmp_path / "nope.toml")


def test_password_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LL_TEST_PW", "s3cret")

    assert config.read_password("mailbox", "LL_TEST_PW", "") == "s3cret"


def test_password_variable_unset_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LL_TEST_PW", raising=False)

    with pytest.raises(ConfigError, match="LL_TEST_PW"):
        config.read_password("mailbox", "LL_TEST_PW", "")


def test_password_from_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("abc123\n")

    assert config.read_password("smtp", "", str(secret)) == "abc123"


def test_no_password_at_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="password_env"):
        config.read_password("smtp", "", "")


def test_relative_paths_follow_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[store]\ndata_dir = "state"\n')

    loaded = config.load(path)

    assert loaded.data_dir == tmp_path / "state"
    assert loaded.database_url == f"sqlite:///{tmp_path / 'state' / 'lifeline.db'}"
