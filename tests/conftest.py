"""Fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), the real migrations and the
real ASGI app. Each test starts from empty tables."""

import os
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from app.core import embedded
from app.core.config import Environment, Settings
from app.core.db import metadata
from app.core.migrations import upgrade_async
from app.main import create_app

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _admin_url() -> str:
    """A server to create the test database on: TEST_DATABASE_URL, else the embedded one."""
    return os.environ.get("TEST_DATABASE_URL") or embedded.start(PROJECT_ROOT / ".data" / "test-pg")


@pytest.fixture(scope="session")
def admin_url() -> str:
    return _admin_url()


@pytest.fixture(scope="session")
async def database_url(admin_url: str) -> AsyncIterator[str]:
    name = f"habeas_test_{os.getpid()}"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    await upgrade_async(url)
    yield url
    await embedded.drop_database(admin_url, name)


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "env": Environment.test,
        "pool_size": 25,
        "pool_max_overflow": 5,
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[object]:
    application = create_app(settings_for(database_url))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection, to check what the API did (and did not) write."""
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(database_url))
    yield connection
    await connection.close()


@pytest.fixture
async def clean_tables(db: asyncpg.Connection) -> AsyncIterator[None]:
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    await db.execute(f"TRUNCATE {tables} CASCADE")
    return


@pytest.fixture
async def client(app: object, clean_tables: None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://habeas.test") as c:
        yield c


async def row_counts(db: asyncpg.Connection) -> dict[str, int]:
    """Rows per table: compared before and after a refused request, nothing may change."""
    counts = {}
    for table in metadata.sorted_tables:
        counts[table.name] = await db.fetchval(f'SELECT count(*) FROM "{table.name}"')
    return counts
