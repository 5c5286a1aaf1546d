"""The schema is made only by migrations, and the migrations match the models."""

import asyncio

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

import app.tables  # noqa: F401
from app.core import embedded
from app.core.db import async_url, metadata
from app.core.migrations import downgrade, head_revision, upgrade
from app.jobs.queue import QUEUE_TABLES


@pytest.fixture
async def scratch_url(admin_url: str) -> object:
    name = "habeas_test_migrations"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    yield embedded.with_database(admin_url, name)
    await embedded.drop_database(admin_url, name)


async def test_upgrade_downgrade_and_upgrade_again(scratch_url: str) -> None:
    await asyncio.to_thread(upgrade, scratch_url)
    await asyncio.to_thread(downgrade, scratch_url, "base")
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(scratch_url))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        assert tables == []
    finally:
        await connection.close()
    await asyncio.to_thread(upgrade, scratch_url)


def _modelled(name: str | None, type_: str, parent_names: object) -> bool:
    """pgqueuer's tables have no models; tests/jobs/test_queue_schema.py checks them
    against pgqueuer's own declaration (as migrations/env.py leaves them out)."""
    return not (type_ == "table" and name in QUEUE_TABLES)


async def test_models_and_migrations_agree(database_url: str) -> None:
    engine = create_async_engine(async_url(database_url))
    options = {"include_name": _modelled}
    try:
        async with engine.connect() as connection:
            differences = await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts=options), metadata
                )
            )
            revision = await connection.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()
    assert differences == []
    assert revision == head_revision()
