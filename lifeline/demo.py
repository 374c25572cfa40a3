"""The quick start's embedded default: a sample Maildir, SQLite, an
outbox folder instead of SMTP."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from lifeline import config as config_module
from lifeline.app import App
from lifeline.config import Config
from store.models import Report

DATA = Path(__file__).parent / "demo_data"

_CONFIG = """\
# Written by `lifeline demo`: the sample mailbox bundled with lifeline.
[store]
data_dir = "data"

[roster]
file = "{roster}"

[reporting]
timezone = "Asia/Shanghai"
deadline_day = 20

[notify]
outbox_dir = "outbox"
coordinator = "coordinator@example.cn"

[smtp]
from = "lifeline@example.cn"
"""


def mailbox_path() -> Path:
    return DATA / "mailbox"


def prepare(folder: Path) -> Config:
    """The demo's configuration in ``folder``, written on first use."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.toml"
    if not path.exists():
        path.write_text(
            _CONFIG.format(roster=DATA / "roster.csv"), encoding="utf-8"
        )
    return config_module.load(path)


def busiest_period(app: App) -> str:
    """The month with the most reports, to show a full report."""
    with app.sessions() as session:
        row = session.execute(
            select(Report.period, func.count())
            .group_by(Report.period)
            .order_by(func.count().desc(), Report.period.desc())
        ).first()
    return row[0] if row else "2025-05"
