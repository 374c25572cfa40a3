"""`lifeline run` as a real process against a real Dovecot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from dovecot import Dovecot
from store.models import Report
from test_end_to_end import received

pytestmark = pytest.mark.dovecot


@pytest.fixture
def config(tmp_path: Path, shared_dir: Path, dovecot: Dovecot) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[mailbox]\nhost = "{dovecot.host}"\nport = {dovecot.port}\ntls = "none"\n'
        f'user = "{dovecot.user}"\npassword_env = "LIFELINE_TEST_IMAP_PASSWORD"\n'
        f"poll_interval_seconds = 1\n\n"
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[roster]\nfile = "{shared_dir / "samples" / "roster.csv"}"\n\n'
        f'[notify]\noutbox_dir = "{tmp_path / "outbox"}"\n\n'
        f'[smtp]\nfrom = "lifeline@example.cn"\n',
        encoding="utf-8",
    )
    return path


def reports(tmp_path: Path) -> int:
    engine = create_engine(f"sqlite:///{tmp_path / 'data' / 'lifeline.db'}")
    try:
        with engine.connect() as connection:
            return connection.scalar(select(func.count()).select_from(Report)) or 0
    except Exception:
        return 0  # the daemon has not created the database yet
    finally:
        engine.dispose()


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_daemon_takes_new_mail_and_stops_cleanly_on_sigterm(
    config: Path, dovecot: Dovecot, shared_dir: Path, tmp_path: Path
) -> None:
    env = dict(os.environ, LIFELINE_TEST_IMAP_PASSWORD=dovecot.password)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "lifeline", "run", "--config", str(config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        mail = (shared_dir / "samples" / "mails" / "p01-xlsx-utf8-filename.eml").read_bytes()
        dovecot.append(mail, received(mail))

        assert wait_for(lambda: reports(tmp_path) == 1, 20)
        assert wait_for(lambda: any((tmp_path / "outbox").glob("*.eml")), 30)

        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(timeout=10)
    finally:
        daemon.kill()
        output = daemon.communicate()[0]

    assert code == 0, output
    assert "城关街道" in output and "2025-04" in output
    assert dovecot.password not in output
