"""What app/core/db.py relies on in SQLAlchemy's asyncpg adapter and pool, beyond their
public API (the documented exception, docs/performance.md): the hot statements run on the
session's own asyncpg connection (`driver_connection`), and the pool is measured by
overriding its checkout (`MeasuredPool`). An upgrade of SQLAlchemy or asyncpg that changes
any of it fails here, saying what changed, before it silently runs those statements
outside the request's transaction or stops counting waits."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.db import MeasuredPool, create_engine, driver_connection, session_factory
from tests.conftest import settings_for

# The adapter's private members driver_connection uses to open the transaction itself.
ADAPTER_MEMBERS = ("_transaction", "_execute_mutex", "_start_transaction")

# A table with no foreign keys and no triggers: a row in it is all a test needs.
INSERT_ROW = "INSERT INTO sign_in_throttle (key, failures, window_started_at) VALUES ($1, 1, $2)"
COUNT_ROWS = "SELECT count(*) FROM sign_in_throttle WHERE key = :key"
COUNT_COMMITTED = "SELECT count(*) FROM sign_in_throttle WHERE key = $1"


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The application's engine, with one connection so that every session shares it."""
    engine = create_engine(
        database_url, settings_for(database_url, pool_size=1, pool_max_overflow=0)
    )
    yield engine
    await engine.dispose()


async def _seen_by_session(session: AsyncSession, key: str) -> int:
    """Counted through SQLAlchemy, on the session's connection."""
    counted = await (await session.connection()).execute(text(COUNT_ROWS), {"key": key})
    return int(counted.scalar_one())


async def test_the_adapter_still_has_what_driver_connection_uses(engine: AsyncEngine) -> None:
    async with session_factory(engine)() as session:
        connection = await session.connection()
        pooled = await connection.get_raw_connection()
        adapted: Any = pooled.dbapi_connection
        for member in ADAPTER_MEMBERS:
            assert hasattr(adapted, member), (
                f"SQLAlchemy's asyncpg adapter ({type(adapted).__qualname__}) no longer has "
                f"`{member}`: app/core/db.py driver_connection opens the session's "
                "transaction through it"
            )
        assert isinstance(pooled.driver_connection, asyncpg.Connection), (
            "a pooled connection's `driver_connection` is no longer the asyncpg connection "
            f"(it is {type(pooled.driver_connection).__qualname__}): driver_connection and "
            "the pool's closed-connection check (_discard_closed) use it"
        )
        assert isinstance(adapted.driver_connection, asyncpg.Connection), (
            "the adapter's `driver_connection` is no longer the asyncpg connection: the "
            "pool's closed-connection check (app/core/db.py _discard_closed) uses it"
        )


async def test_a_row_written_on_the_driver_is_in_the_sessions_transaction(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    key = f"driver-{uuid.uuid4()}"
    async with session_factory(engine)() as session:
        # First on the driver, before the adapter has sent its own BEGIN.
        driver = await driver_connection(session)
        await driver.execute(INSERT_ROW, key, utcnow())
        assert await db.fetchval(COUNT_COMMITTED, key) == 0, (
            "a row written on the driver connection was committed at once: "
            "driver_connection no longer opens the session's transaction (SQLAlchemy's "
            "asyncpg adapter begins differently)"
        )
        assert await _seen_by_session(session, key) == 1, (
            "the session does not see a row written on its driver connection: "
            "driver_connection is no longer the session's own connection"
        )
        await session.rollback()
    assert await db.fetchval(COUNT_COMMITTED, key) == 0, (
        "a row written on the driver connection outlived the session's rollback: it "
        "was not in the session's transaction"
    )


async def test_the_driver_joins_a_transaction_the_session_began(
    engine: AsyncEngine, db: asyncpg.Connection
) -> None:
    key = f"session-{uuid.uuid4()}"
    async with session_factory(engine)() as session:
        assert await _seen_by_session(session, key) == 0
        driver = await driver_connection(session)
        await driver.execute(INSERT_ROW, key, utcnow())
        assert await _seen_by_session(session, key) == 1, (
            "the session does not see a row written on its driver connection after "
            "its own first statement"
        )
        await session.commit()
    try:
        assert await db.fetchval(COUNT_COMMITTED, key) == 1, (
            "the session's commit did not commit what its driver connection wrote"
        )
    finally:
        await db.execute("DELETE FROM sign_in_throttle WHERE key = $1", key)


async def test_every_checkout_goes_through_the_measured_pools_do_get(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = engine.pool
    assert isinstance(pool, MeasuredPool)
    checkouts: list[object] = []
    measured_do_get = pool._do_get

    def counted_do_get() -> Any:
        checkouts.append(None)
        return measured_do_get()

    monkeypatch.setattr(pool, "_do_get", counted_do_get)
    async with engine.connect():
        assert pool.exhausted(), (
            "MeasuredPool.exhausted() no longer sees the pool of one connection as "
            "exhausted while that connection is out (checkedin() or overflow() changed)"
        )
    assert checkouts, (
        "SQLAlchemy's pool no longer checks connections out through `_do_get`: "
        "MeasuredPool (app/core/db.py) overrides it to time the waits of an exhausted "
        "pool, which would now go unmeasured"
    )
    assert not pool.exhausted()
