"""The second instance, on a database of its own, for the mirror's tests."""

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest

from app.core import embedded
from app.core.db import create_engine
from app.core.migrations import upgrade_async
from tests.conftest import empty_all_tables, separate_app, settings_for
from tests.mirrors.mirror import Second


@pytest.fixture(scope="session")
async def second_instance(admin_url: str) -> AsyncIterator[Second]:
    name = f"habeas_test_{os.getpid()}_second"
    await embedded.drop_database(admin_url, name)
    await embedded.ensure_database(admin_url, name)
    url = embedded.with_database(admin_url, name)
    await upgrade_async(url)
    engine = create_engine(url, settings_for(url))
    connection = await asyncpg.connect(**embedded.asyncpg_connect_kwargs(url))
    try:
        async with separate_app(url) as app:
            yield Second(url, app, engine, connection)
    finally:
        await connection.close()
        await engine.dispose()
        await embedded.drop_database(admin_url, name)


@pytest.fixture
async def second(second_instance: Second) -> Second:
    await empty_all_tables(second_instance.db)
    return second_instance
