"""No password or 授权码 in any log line the test suite produced."""

from __future__ import annotations

from pathlib import Path

from dovecot import Dovecot
from smtp_server import SMTP_PASSWORD


def test_no_password_in_any_log_line(suite_log: Path) -> None:
    """Runs last (conftest orders it): every `lifeline` process of the run
    and this process wrote their log lines to ``suite_log``."""
    lines = suite_log.read_text(encoding="utf-8", errors="replace").splitlines()

    leaks = [
        line for line in lines
        if Dovecot.password in line or SMTP_PASSWORD in line
    ]

    assert len(lines) > 100  # the suite did log, through this file
    assert leaks == []
