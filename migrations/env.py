"""Alembic environment (async). The URL comes from the caller (`habeas migrate`, the tests)
through `config.attributes["url"]`, or from the settings."""

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

import app.tables  # noqa: F401  (registers every table)
from app.core.db import async_url, metadata
from app.jobs.queue import QUEUE_TABLES

config = context.config


def _url() -> str:
    url = config.attributes.get("url")
    if url is None:
        from app.core.config import get_settings

        url = get_settings().database_url
    if url is None:
        raise RuntimeError("No database URL: set DATABASE_URL or run through `habeas migrate`.")
    return async_url(str(url))


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """pgqueuer's tables are made by migration 0008 from its own install SQL and have no
    models: comparing models with the database leaves them out."""
    return not (type_ == "table" and name in QUEUE_TABLES)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, compare_type=True, include_name=_ours
    )
    with context.begin_transaction():
        # Two processes starting at once must not both migrate.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7262001)")
        context.run_migrations()


async def _run_online() -> None:
    engine = create_async_engine(_url(), poolclass=NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_online())


if context.is_offline_mode():
    raise RuntimeError("Offline (SQL script) migrations are not supported.")
run_migrations_online()
