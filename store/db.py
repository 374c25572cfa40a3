"""Opening the database: engine, SQLite pragmas, schema migrations."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from lifeline.errors import StoreError

logger = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"


def open_engine(url: str, *, migrate: bool = True) -> Engine:
    """An engine for ``url`` with the schema brought up to date."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(
            f"store.url: {url!r} is not a SQLAlchemy URL "
            f"(e.g. sqlite:////var/lib/lifeline/lifeline.db or "
            f"postgresql+psycopg://user@host/db)"
        ) from exc

    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)

    engine = create_engine(parsed, pool_pre_ping=True)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)

    if migrate and not _up_to_date(engine):
        upgrade(engine)
    return engine


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    # pysqlite opens transactions itself, late and without savepoints in
    # mind: a SAVEPOINT outside its transaction commits on RELEASE, which
    # would make each mail's savepoint a commit. Turning its handling off
    # and sending BEGIN ourselves (_sqlite_begin) gives real nesting.
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]

    # WAL lets the report command read while the daemon writes; the busy
    # timeout makes a second process wait for a lock instead of failing.
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    # IMMEDIATE takes the write lock at the start. A deferred transaction
    # that read first and writes later fails at once ("database is locked",
    # whatever the busy timeout) when another process committed between
    # its read and its write; an immediate one waits its turn instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _head() -> str:
    """The newest migration's revision: files are named <revision>_<slug>."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("*.py"))


def _up_to_date(engine: Engine) -> bool:
    """Whether the schema is at the newest revision, asked without
    loading Alembic (half a second of start-up the daemon rarely needs)."""
    try:
        with engine.connect() as connection:
            current = connection.exec_driver_sql(
                "SELECT version_num FROM alembic_version"
            ).scalar()
    except SQLAlchemyError:
        return False
    return current == _head()


def upgrade(engine: Engine) -> None:
    """Run the Alembic migrations up to the newest."""
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except SQLAlchemyError as exc:
        raise StoreError(
            f"cannot open or migrate the database "
            f"{engine.url.render_as_string(hide_password=True)}: {exc}"
        ) from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def upsert_insert(session: Session) -> Any:
    """The INSERT construct of the session's dialect, which offers
    ON CONFLICT DO NOTHING on both SQLite and PostgreSQL. Only the dialect
    in use is imported: loading PostgreSQL's too would cost a daemon on
    SQLite a twentieth of its start-up (asyncpg, asyncio)."""
    name = session.get_bind().dialect.name
    if name not in ("sqlite", "postgresql"):
        raise StoreError(f"lifeline needs SQLite or PostgreSQL, not {name}")
    return importlib.import_module(f"sqlalchemy.dialects.{name}").insert
