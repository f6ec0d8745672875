from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests.support import SHARED

POSTGRES_URL = os.environ.get("LABORWATCH_TEST_DATABASE_URL")


def _fresh_postgres_database() -> tuple[str, callable]:
    """A new, empty database on the test server, and how to drop it."""
    import psycopg

    url = make_url(POSTGRES_URL)
    name = f"lw_test_{uuid.uuid4().hex[:10]}"
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return url.set(database=name).render_as_string(hide_password=False), drop


def _database_url(kind: str, folder) -> tuple[str, callable]:
    if kind == "sqlite":
        return f"sqlite:///{folder / 'laborwatch.db'}", lambda: None
    if not POSTGRES_URL:
        pytest.skip("LABORWATCH_TEST_DATABASE_URL is not set")
    return _fresh_postgres_database()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path):
    url, drop = _database_url(request.param, tmp_path)
    yield url
    drop()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def module_database_url(request, tmp_path_factory):
    url, drop = _database_url(request.param, tmp_path_factory.mktemp("db"))
    yield url
    drop()


@pytest.fixture(scope="session")
def shared_dir():
    if not SHARED.exists():
        pytest.skip("../shared is not beside the project")
    return SHARED
