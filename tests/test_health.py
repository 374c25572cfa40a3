"""`lifeline check` and `lifeline status` against a real Dovecot and a real
store."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dovecot import Dovecot
from test_daemon import PASSWORD_ENV, write_config

from lifeline import config as config_module
from lifeline import health
from lifeline.app import App
from store.models import Mail, MailboxState, Notice, to_db

NOW = dt.datetime(2025, 5, 10, 12, 0, tzinfo=dt.UTC)


def lifeline(config: Path, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **{PASSWORD_ENV: password})
    return subprocess.run(
        [sys.executable, "-m", "lifeline", *args, "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.dovecot
def test_check_passes_when_everything_works(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path
) -> None:
    config = write_config(tmp_path / "config.toml", dovecot, shared_dir)
    done = lifeline(config, "check", password=dovecot.password)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok    imap: logged in to report-inbox@127.0.0.1" in done.stdout
    assert "IDLE offered" in done.stdout and "folders: INBOX" in done.stdout
    assert "everything works" in done.stdout
    assert dovecot.password not in done.stdout + done.stderr
    assert "ID (" in dovecot.protocol_log()  # identified itself after login


@pytest.mark.dovecot
def test_check_names_what_to_fix(
    tmp_path: Path, dovecot: Dovecot, shared_dir: Path
) -> None:
    """A wrong password and a missing folder each get their own advice;
    the exit code is 1."""
    config = write_config(tmp_path / "config.toml", dovecot, shared_dir)
    done = lifeline(config, "check", password="wrong-password")
    assert done.returncode == 1
    assert "FAIL  imap:" in done.stdout and "授权码" in done.stdout
    assert "wrong-password" not in done.stdout + done.stderr

    text = config.read_text(encoding="utf-8").replace('password_env', 'folder = "报表"\npassword_env')
    config.write_text(text, encoding="utf-8")
    done = lifeline(config, "check", password=dovecot.password)
    assert done.returncode == 1
    assert "does not exist; the server has: INBOX" in done.stdout


def test_check_reports_a_bad_configuration(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[mailbox]\nhots = "x"\n', encoding="utf-8")
    parts = health.check(config)
    assert parts == [health.Part("config", False, parts[0].detail)]
    assert "unknown key mailbox.hots" in parts[0].detail


def test_check_refuses_a_setup_without_smtp_or_coordinator(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8"
    )
    parts = {part.name: part for part in health.check(config)}
    assert parts["database"].ok
    assert not parts["imap"].ok and "mailbox.host" in parts["imap"].detail
    assert not parts["notices"].ok and "outbox_dir" in parts["notices"].detail
    assert not parts["coordinator"].ok


def test_status_counts_the_store(tmp_path: Path) -> None:
    """Mails today and this month, held mails, pending and failed notices,
    and a stale mailbox."""
    path = tmp_path / "config.toml"
    path.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n'
        '[reporting]\ntimezone = "Asia/Shanghai"\n',
        encoding="utf-8",
    )
    app = App(config_module.load(path))
    with app.sessions() as session:
        for number, (days_ago, outcome) in enumerate(
            [(0, "stored"), (0, "held"), (3, "stored"), (40, "held")]
        ):
            session.add(_mail(number, NOW - dt.timedelta(days=days_ago), outcome))
        session.add(Notice(key="a", kind="receipt", recipients=["x@example.cn"]))
        session.add(
            Notice(key="b", kind="receipt", recipients=["x@example.cn"],
                   status="failed", created_at=to_db(NOW))
        )
        session.add(
            MailboxState(account="box@host", folder="INBOX",
                         last_success_at=to_db(NOW - dt.timedelta(hours=7)))
        )
        session.commit()

        data = health.status(session, app.config, NOW)

    assert (data.mails_today, data.mails_this_month) == (2, 3)
    assert (data.held, data.notices_pending, data.notices_failed) == (2, 1, 1)
    assert data.mailboxes[0].stale and not data.healthy
    text = health.format_status(data, app.config)
    assert "STALE: no successful poll for over 6 h" in text
    assert "last successful poll 2025-05-10 13:00" in text  # Shanghai time


def _mail(number: int, taken: dt.datetime, outcome: str) -> Mail:
    return Mail(
        sha256=f"{number:064d}", source="test", raw_path="x", size=1,
        received_at=to_db(taken), taken_at=to_db(taken), outcome=outcome,
    )
