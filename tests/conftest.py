"""Fixtures: a real PostgreSQL (embedded, or TEST_DATABASE_URL), the real migrations and the
real ASGI app. Each test starts from empty tables."""

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from app.access.principal import Role
from app.core import embedded
from app.core.config import Environment, Settings
from app.core.db import metadata
from app.core.migrations import upgrade_async
from app.main import create_app
from tests import factories
from tests.auth import SignedIn, api_client, create_account, log_in

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


TEST_KEYS_DIR = Path(tempfile.mkdtemp(prefix="habeas-test-keys-"))
# Keys, even throwaway ones, do not outlive the run.
atexit.register(shutil.rmtree, TEST_KEYS_DIR, ignore_errors=True)


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "env": Environment.test,
        "pool_size": 25,
        "pool_max_overflow": 5,
        "log_level": "WARNING",
        # Test keys live in a throwaway directory, never beside a development server's.
        "data_dir": TEST_KEYS_DIR,
        # Cheap hashing keeps sign-in fast in tests; production parameters are the defaults.
        "password_time_cost": 1,
        "password_memory_kib": 64,
        # Reports count what the test recorded a moment ago (no other writer runs here).
        "report_settle_seconds": 0,
        "report_basis_margin_seconds": 0,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def embedded_settings(role: str, **values: object) -> Settings:
    """What `habeas serve` reads when no DATABASE_URL is given."""
    return Settings(_env_file=None, database_url=None, app_database_role=role, **values)  # type: ignore[arg-type]


@asynccontextmanager
async def separate_app(database_url: str, **overrides: object) -> AsyncIterator[FastAPI]:
    """A second app on the same test database, for settings the shared app does not have."""
    application = create_app(settings_for(database_url, **overrides))
    async with application.router.lifespan_context(application):
        yield application


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


@pytest.fixture(autouse=True)
def first_default_person_is_labanovich() -> None:
    """Each test's first default person is Міхась Лабановіч (tests/factories.py)."""
    factories.reset_default_names()


@pytest.fixture
async def clean_tables(db: asyncpg.Connection) -> AsyncIterator[None]:
    await empty_all_tables(db)
    return


AUDIT_TABLES = frozenset({"audit_event", "audit_head", "audit_checkpoint"})


async def empty_all_tables(db: asyncpg.Connection) -> None:
    """Empty every table, the append-only audit trail too: as the superuser the tests run
    as, with triggers off for this statement (what an attacker with that power could do,
    and what checkpoints are there to catch)."""
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with db.transaction():
        await db.execute("SET LOCAL session_replication_role = replica")
        await db.execute(f"TRUNCATE {tables} CASCADE")
        # Runs of the webhooks job queued by the writes of a test (pgqueuer's own tables
        # are not the application's; tests/jobs empties them where it counts them).
        await db.execute("DELETE FROM pgqueuer WHERE entrypoint LIKE 'sync_webhooks%'")
        await db.execute(
            "INSERT INTO audit_head (singleton, seq, hash) VALUES (true, 0, $1)", bytes(32)
        )


@pytest.fixture
async def sign_in_as(
    app: FastAPI, clean_tables: None
) -> AsyncIterator[Callable[..., Awaitable[SignedIn]]]:
    """Create an account of a role and sign it in through the real endpoint: the client
    it returns carries a real access token."""
    opened: list[httpx.AsyncClient] = []

    async def sign_in(role: Role, username: str | None = None) -> SignedIn:
        account = await create_account(app, role, username)
        client = api_client(app)
        opened.append(client)
        tokens = await log_in(client, account)
        client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
        return SignedIn(client, account, tokens)

    yield sign_in
    for client in opened:
        await client.aclose()


@pytest.fixture
async def client(sign_in_as: Callable[..., Awaitable[SignedIn]]) -> httpx.AsyncClient:
    """A coordinator's client: may read and write every case file and person."""
    return (await sign_in_as(Role.coordinator, "coordinator")).client


@pytest.fixture
async def anonymous(app: FastAPI, clean_tables: None) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


async def row_counts(db: asyncpg.Connection) -> dict[str, int]:
    """Rows per table: compared before and after a refused request, nothing may change."""
    counts = {}
    for table in metadata.sorted_tables:
        # The audit trail has its own tests (tests/audit): a refused request may record
        # its denial there.
        if table.name not in AUDIT_TABLES:
            counts[table.name] = await db.fetchval(f'SELECT count(*) FROM "{table.name}"')
    return counts
