"""pgqueuer, bound to the objects migration 0008 created.

pgqueuer reads its table, channel and function names from `PGQUEUER_*` environment
variables (and a few bare legacy ones, such as `CHANNEL`); here every name is given, so
that nothing in a worker's environment can point it at tables the migrations did not make.
The tables are created by Alembic (migration 0008, pgqueuer's install SQL as of the
pinned release), never by `pgq install`; a pgqueuer upgrade that changes them comes with a
migration of its own (tests/jobs/test_queue_schema.py notices).
"""

from datetime import UTC, datetime, timedelta

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.adapters.persistence.qb import (
    QueryBuilderEnvironment,
    QueryQueueBuilder,
    QuerySchedulerBuilder,
)
from pgqueuer.db import AsyncpgDriver
from pgqueuer.domain.settings import DBSettings, Durability
from pgqueuer.domain.types import Channel
from pgqueuer.queries import Queries

QUEUE_NAMES = DBSettings(
    prefix="",
    db_schema=None,
    channel=Channel("ch_pgqueuer"),
    function="fn_pgqueuer_changed",
    statistics_table="pgqueuer_statistics",
    queue_status_type="pgqueuer_status",
    queue_table="pgqueuer",
    queue_table_log="pgqueuer_log",
    trigger="tg_pgqueuer_changed",
    schedules_table="pgqueuer_schedules",
    durability=Durability.durable,
)
QUEUE_TABLE = QUEUE_NAMES.queue_table
# Every table pgqueuer owns: not in the application's metadata (Alembic's comparison
# leaves them alone), granted to the application's role like the others.
QUEUE_TABLES = frozenset(
    {
        QUEUE_NAMES.queue_table,
        QUEUE_NAMES.queue_table_log,
        QUEUE_NAMES.statistics_table,
        QUEUE_NAMES.schedules_table,
    }
)


def queries(connection: asyncpg.Connection) -> Queries:
    return Queries(
        AsyncpgDriver(connection),
        qbe=QueryBuilderEnvironment(QUEUE_NAMES),
        qbq=QueryQueueBuilder(QUEUE_NAMES),
        qbs=QuerySchedulerBuilder(QUEUE_NAMES),
    )


def queuer(connection: asyncpg.Connection) -> PgQueuer:
    """A queue manager and scheduler on one dedicated connection (it LISTENs on it)."""
    bound = queries(connection)
    return PgQueuer(connection=bound.driver, channel=Channel(QUEUE_NAMES.channel), queries=bound)


async def enqueue(connection: asyncpg.Connection, entrypoint: str) -> bool:
    """Queue a run of `entrypoint` unless one is already waiting or running (the
    entrypoint's name is its dedupe key): a schedule firing on several workers, or an
    operator asking while a run is under way, adds no second run. True if queued."""
    added = await queries(connection).enqueue(
        entrypoint, None, dedupe_key=entrypoint, on_conflict="skip"
    )
    return added[0] is not None


async def enqueue_by(connection: asyncpg.Connection, entrypoint: str, due: datetime) -> bool:
    """Queue a run of `entrypoint` due at `due`, unless one is queued for then or before
    (pgqueuer's dedupe cannot say this: it also counts a run under way, which may be the
    very one asking). True if queued."""
    waiting = await connection.fetchval(
        f"SELECT 1 FROM {QUEUE_TABLE} WHERE entrypoint = $1 AND status = 'queued'"  # noqa: S608 (our table name)
        " AND execute_after <= $2",
        entrypoint,
        due,
    )
    if waiting is not None:
        return False
    delay = max(due - datetime.now(UTC), timedelta(seconds=1))
    await queries(connection).enqueue(entrypoint, None, execute_after=delay)
    return True
