"""The SMTP server down for a while, then back: every pending notice goes
out exactly once. Real `lifeline` processes, a real aiosmtpd server with
AUTH, a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from smtp_server import SMTP_PASSWORD as PASSWORD
from smtp_server import RecordingHandler, free_port
from sqlalchemy import create_engine, select

from store.models import Notice


def lifeline(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, LIFELINE_TEST_SMTP_PASSWORD=PASSWORD)
    return subprocess.run(
        [sys.executable, "-m", "lifeline", *args, "--config", str(config)],
        capture_output=True, text=True, timeout=300, env=env,
    )


def authenticator(
    server: object, session: object, envelope: object, mechanism: str, data: object
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def statuses(database: Path) -> list[tuple[str, int]]:
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        rows = connection.execute(select(Notice.status, Notice.attempts)).all()
    engine.dispose()
    return [(status, attempts) for status, attempts in rows]


def test_notices_wait_for_the_server_and_go_out_once(
    tmp_path: Path, shared_dir: Path
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[store]\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[roster]\nfile = "{shared_dir / "samples" / "roster.csv"}"\n\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {port}\ntls = "none"\n'
        f'user = "campaign@example.cn"\npassword_env = "LIFELINE_TEST_SMTP_PASSWORD"\n'
        f'from = "campaign@example.cn"\nmax_per_minute = 0\n\n'
        f'[notify]\ncoordinator = "coordinator@example.cn"\n',
        encoding="utf-8",
    )
    mails = sorted((shared_dir / "samples" / "mails").glob("p0[1-4]*.eml"))
    logs = [lifeline(config, "import", *map(str, mails))]  # queues; SMTP is down

    for _ in range(6):  # more runs than a notice's own attempt limit
        logs.append(lifeline(config, "deliver"))
    waiting = statuses(tmp_path / "data" / "lifeline.db")

    handler = RecordingHandler()
    server = Controller(
        handler, hostname="127.0.0.1", port=port,
        authenticator=authenticator, auth_require_tls=False,
    )
    server.start()
    try:
        logs.append(lifeline(config, "deliver"))
        logs.append(lifeline(config, "deliver"))
    finally:
        server.stop()

    assert waiting and all(w == ("pending", 0) for w in waiting)
    sent = statuses(tmp_path / "data" / "lifeline.db")
    assert sent == [("sent", 1)] * len(waiting)
    ids = [r.message["Message-ID"] for r in handler.received]
    assert len(ids) == len(waiting) == len(set(ids))
    assert "城关街道" in "".join(r.message["Subject"] for r in handler.received)
    output = "".join(done.stdout + done.stderr for done in logs)
    assert "stay pending" in output
    assert PASSWORD not in output
