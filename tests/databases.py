"""The database fixture: SQLite always, PostgreSQL too when
LIFELINE_TEST_DATABASE_URL names one (CI sets it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ENV = "LIFELINE_TEST_DATABASE_URL"


def _postgresql_schema(base: str) -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards, so
    tests on one PostgreSQL database never see each other's rows."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: SQLite in tmp_path, or a fresh schema on
    the PostgreSQL server named by $LIFELINE_TEST_DATABASE_URL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lifeline.db'}"
        return

    base = os.environ.get(ENV)
    if not base:
        if os.environ.get("CI"):
            pytest.fail(f"{ENV} is not set; CI must run the store tests on PostgreSQL")
        pytest.skip(f"{ENV} not set")
    yield from _postgresql_schema(base)
