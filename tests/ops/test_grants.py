"""The role `habeas serve` runs the API as (issue 10): in development too, never the owner
of the tables, so the application cannot switch the audit trail's triggers off."""

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from app.core import embedded
from app.core.config import Environment, Settings
from app.jobs.queue import QUEUE_TABLES
from app.main import create_app
from app.ops.grants import UnsafeDatabaseRole, application_database_url
from tests.auth import api_client
from tests.conftest import TEST_KEYS_DIR, embedded_settings, settings_for

REFUSED_TO_THE_API = [
    "ALTER TABLE audit_event DISABLE TRIGGER ALL",
    "ALTER TABLE audit_event DISABLE TRIGGER USER",
    "UPDATE audit_event SET action = action",
    "DELETE FROM audit_event",
    "TRUNCATE audit_event",
    "SET session_replication_role = replica",
    "ALTER ROLE CURRENT_USER SUPERUSER",
    "CREATE ROLE habeas_intruder SUPERUSER LOGIN",
]


@pytest.fixture
async def role(db: asyncpg.Connection) -> AsyncIterator[str]:
    name = f"habeas_app_test_{secrets.token_hex(4)}"
    yield name
    if await db.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name):
        await db.execute(f'DROP OWNED BY "{name}"')
        await db.execute(f'DROP ROLE "{name}"')


async def test_the_api_role_on_the_embedded_server_cannot_touch_the_audit_trail(
    database_url: str, db: asyncpg.Connection, role: str
) -> None:
    url = await application_database_url(embedded_settings(role), database_url)
    assert make_url(url).username == role
    assert make_url(url).database == make_url(database_url).database

    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    try:
        assert await connection.fetchval("SELECT current_user") == role
        attributes = await connection.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls"
            " FROM pg_roles WHERE rolname = current_user"
        )
        assert not any(attributes.values()), dict(attributes)
        owners = await connection.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        )
        assert role not in {row["tableowner"] for row in owners}
        for statement in REFUSED_TO_THE_API:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await connection.execute(statement)
        # What the API needs, it has; and what `habeas worker` needs: pgqueuer's tables
        # (migration 0008) and the record of integrity checks (tests/jobs run a worker so).
        assert await connection.fetchval("SELECT count(*) FROM person") is not None
        assert await connection.fetchval("SELECT count(*) FROM audit_event") is not None
        for table in sorted(QUEUE_TABLES | {"integrity_check"}):
            for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
                assert await connection.fetchval(
                    "SELECT has_table_privilege($1, $2)", table, privilege
                ), (table, privilege)
    finally:
        await connection.close()

    # The API itself runs on that URL.
    application = create_app(settings_for(url))
    async with application.router.lifespan_context(application), api_client(application) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200, ready.text


async def test_each_start_takes_back_any_power_the_role_was_given(
    database_url: str, db: asyncpg.Connection, role: str
) -> None:
    settings = embedded_settings(role)
    await application_database_url(settings, database_url)
    await db.execute(f'ALTER ROLE "{role}" SUPERUSER BYPASSRLS')
    await db.execute(f'GRANT UPDATE, DELETE, TRUNCATE ON audit_event TO "{role}"')

    await application_database_url(settings, database_url)
    attributes = await db.fetchrow(
        "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1", role
    )
    assert not any(attributes.values())
    for privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER"):
        assert not await db.fetchval(
            "SELECT has_table_privilege($1, 'audit_event', $2)", role, privilege
        ), privilege


async def test_with_database_url_the_api_uses_it_as_given(database_url: str, role: str) -> None:
    settings = Settings(_env_file=None, database_url=database_url, app_database_role=role)  # type: ignore[arg-type]
    assert await application_database_url(settings, database_url) == database_url


async def test_an_application_url_beside_database_url_is_granted_and_used(
    database_url: str, db: asyncpg.Connection, role: str
) -> None:
    app_url = embedded.with_user(database_url, role)
    settings = Settings(_env_file=None, database_url=database_url, app_database_url=app_url)  # type: ignore[arg-type]
    with pytest.raises(LookupError):
        await application_database_url(settings, database_url)  # the operator creates it

    await db.execute(f'CREATE ROLE "{role}" LOGIN')
    assert await application_database_url(settings, database_url) == app_url
    assert await db.fetchval("SELECT has_table_privilege($1, 'person', 'UPDATE')", role)
    assert not await db.fetchval("SELECT has_table_privilege($1, 'audit_event', 'UPDATE')", role)


async def test_production_refuses_to_serve_as_a_role_that_can_rewrite_the_trail(
    database_url: str, role: str
) -> None:
    keys = TEST_KEYS_DIR / "keys"
    production = {
        "env": Environment.production,
        "jwt_key_file": keys / "jwt.json",
        "data_key_file": keys / "data.json",
        "audit_key_file": keys / "audit.json",
    }
    # The tests' own connection is a superuser's.
    as_superuser = create_app(settings_for(database_url, **production))
    with pytest.raises(UnsafeDatabaseRole, match="Refusing to start"):
        async with as_superuser.router.lifespan_context(as_superuser):
            pass
    # The application's role, granted as `habeas db grant` does, starts.
    app_url = await application_database_url(embedded_settings(role), database_url)
    as_application = create_app(settings_for(app_url, **production))
    async with (
        as_application.router.lifespan_context(as_application),
        api_client(as_application) as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
