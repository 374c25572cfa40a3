"""A small district in a real database, for the notify tests.

``store_url`` gives a fresh SQLite file per test and, when
LIFELINE_TEST_DATABASE_URL is set, a fresh PostgreSQL schema per test too.
The builders add units, mails and reports exactly as the store keeps them.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from ingest.model import FIGURES
from lifeline.config import Config, from_dict
from store import reports
from store.db import open_engine, session_factory
from store.models import Mail, Report, Unit, UnitEmail, to_db

TZ = dt.timezone(dt.timedelta(hours=8))
PG_ENV = "LIFELINE_TEST_DATABASE_URL"

BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(PG_ENV) else [])


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with an empty schema: SQLite in tmp_path, or a schema
    of its own on the test PostgreSQL so tests never see each other's rows."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/t.db"
        return

    base = os.environ[PG_ENV]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as connection:
        connection.execute(sa.text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on a migrated, empty database."""
    engine = open_engine(store_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    """A configuration for tests: data in tmp_path, no pacing between
    mails, a coordinator; ``sections`` override or add keys."""
    data: dict[str, Any] = {
        "store": {"data_dir": str(tmp_path / "data")},
        "smtp": {"from": "lifeline@example.cn", "tls": "none", "max_per_minute": 0},
        "notify": {"coordinator": "coordinator@example.cn"},
        "reporting": {"district": "示例区"},
    }
    for name, keys in sections.items():
        data[name] = {**data.get(name, {}), **keys}
    return from_dict(data)


def figures(seed: int) -> dict[str, int | float]:
    """Eleven plausible figures that differ from seed to seed."""
    values: dict[str, int | float] = {
        key: seed * 10 + i for i, key in enumerate(FIGURES)
    }
    values["evacuation_fixed"] = values["evacuation_found"] - 1
    values["barrier_area_m2"] = seed + 0.5
    return values


def add_unit(session: Session, name: str, *emails: str, **fields: Any) -> Unit:
    unit = Unit(name=name, kind="乡镇街道", **fields)
    unit.emails = [UnitEmail(address=address) for address in emails]
    session.add(unit)
    session.flush()
    return unit


def add_mail(
    session: Session,
    sender: str,
    received_at: dt.datetime,
    subject: str = "生命通道统计表",
    message_id: str | None = None,
) -> Mail:
    mail = Mail(
        sha256=uuid.uuid4().hex,
        message_id=message_id or f"<{uuid.uuid4().hex}@example.cn>",
        source="test",
        raw_path=f"raw/{uuid.uuid4().hex}.eml",
        size=100,
        sender=sender,
        sender_name="",
        subject=subject,
        received_at=to_db(received_at),
    )
    session.add(mail)
    session.flush()
    return mail


def add_report(
    session: Session,
    unit: Unit,
    period: str,
    received_at: dt.datetime,
    values: dict[str, int | float],
    *,
    on_time: bool = True,
    warnings: list[dict[str, str]] | None = None,
) -> Report:
    """A report with its own mail from the unit's first address, stored
    the way ingest stores it (a later one supersedes)."""
    mail = add_mail(session, unit.emails[0].address, received_at)
    report = Report(
        mail_id=mail.id,
        unit_id=unit.id,
        period=period,
        received_at=to_db(received_at),
        on_time=on_time,
        attachment="统计表.xlsx",
        sheet="Sheet1",
        cells="A5:K5",
        values=values,
        warnings=warnings or [],
    )
    reports.add(session, report)
    session.flush()
    return report
