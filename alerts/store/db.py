"""Engine, migrations and sessions of the store (SQLite by default, PostgreSQL by URL)."""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StoreError(RuntimeError):
    """The database cannot be reached or prepared; the message is one line."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets `alerts export` read while the worker writes; the timeout waits out a writer.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# libpq waits for ever by default: a server that stopped answering would hold the worker (which
# writes its ledger on the event loop) until the kernel gave up. Bounded instead: a connection
# attempt fails after 10 s and a dead peer is noticed within about a minute, as an
# OperationalError that the stream waits out and retries. A URL's query (`?connect_timeout=3`)
# overrides each.
PG_CONNECT_DEFAULTS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                       "keepalives_interval": 10, "keepalives_count": 3}


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(f"database URL {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
    else:
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args = {}
        if parsed.drivername == "postgresql+psycopg":  # the URL's own parameters win
            connect_args = {k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in parsed.query}
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        shown = parsed.render_as_string(hide_password=True)
        cause = str(exc.orig if getattr(exc, "orig", None) else exc).strip().splitlines()[0]
        raise StoreError(f"cannot reach the database {shown}: {cause}") from None
    return engine


def migrate(engine: Engine, attempts: int = 3) -> None:
    """Bring the schema to the newest Alembic revision (idempotent).

    Two commands started together on a new database (``run`` and ``enterprises import``) may
    race to create it; the loser's transaction rolls back and it tries again, finding the
    schema made.
    """
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    for attempt in range(1, attempts + 1):
        try:
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return
        except SQLAlchemyError as exc:
            if attempt == attempts:
                cause = str(getattr(exc, "orig", exc)).splitlines()[0]
                raise StoreError(f"cannot migrate the database schema: {cause}") from None
            time.sleep(0.2 * attempt)


class Database:
    def __init__(self, url: str, *, run_migrations: bool = True):
        self.engine = make_engine(url)
        if run_migrations:
            migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            with session.begin():
                yield session

    def dispose(self) -> None:
        self.engine.dispose()
