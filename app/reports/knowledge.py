"""A report's knowledge time: the moment it counts what had been recorded by."""

import asyncio
from datetime import datetime, timedelta

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.db import driver_connection

log = structlog.get_logger(__name__)

# A report over a large data set may take a while; no other statement waits for it. Its
# sorts of the case files in custody on its day (1.7M at 1M persons, about 400 MB) stay in
# memory: spilled to disk they cost 10 s of a 1M report. One report uses it at a time per
# connection, and only as its sorts need it.
REPORT_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '1GB'")
# How long a default-time report waits for writes that were under way at its knowledge time.
SETTLE_WAIT_LIMIT = timedelta(seconds=30)
# The application name of a path basis build (app/reports/basis.py): a long transaction
# that writes nothing a report counts, which reports therefore do not wait for.
BASIS_BUILDER = "habeas-report-basis"


async def knowledge_time(session: AsyncSession, asked: datetime | None, settle: float) -> datetime:
    """The moment the report counts what had been recorded by: the one asked for (past: the
    request's schema refuses one to come), or now less `settle` seconds; returned once the
    transactions that were under way then have finished — a write recorded before that
    moment but committed after would otherwise be missing from this report and present in
    its reproduction."""
    now = utcnow()
    moment = now - timedelta(seconds=settle) if asked is None else asked.astimezone(now.tzinfo)
    # Wait for every transaction running at that moment, whichever way it was chosen (a
    # moment asked for may be a second ago).
    driver = await driver_connection(session)
    deadline = now + SETTLE_WAIT_LIMIT
    # PostgreSQL keeps what a transaction first read of pg_stat_activity until it ends:
    # each look drops that copy, or it would see the same writers running until the limit.
    while True:
        await driver.execute("SELECT pg_stat_clear_snapshot()")
        if not await driver.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
            "AND datname = current_database() AND xact_start <= $1 "
            "AND backend_xid IS NOT NULL AND application_name IS DISTINCT FROM $2)",
            moment,
            BASIS_BUILDER,
        ):
            break
        if utcnow() > deadline:
            log.warning("report_settle_gave_up", as_known_at=moment.isoformat())
            break
        await asyncio.sleep(0.05)
    return moment
