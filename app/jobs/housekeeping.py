"""Housekeeping: remove what is kept only for a while: idempotency records, whose stored
responses (sealed, but still copies of case data) must not outlive the window in which a
client may retry; sign-in throttle counters whose window has passed (their keys hold the
names people typed), addresses accounts have not signed in from lately, the ids of
client assertions that have expired, and the log of webhook deliveries past its days (it
holds partners' endpoints and their errors, kept to find out why one fails).

`habeas worker` runs it on its schedule (app/jobs/, HABEAS_PURGE_SCHEDULE). Every API
process runs it too, every `housekeeping_interval_seconds`, so that a deployment without a
worker (a development server) still purges; where a worker runs, that loop can be set to 0
(docker-compose.yml does). The deletes are idempotent, so several processes running it at
once only repeat each other. `habeas purge` runs it once.
"""

import asyncio
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.config import Settings
from app.idempotency import service as idempotency_service
from app.identity import throttling
from app.sync import webhooks

log = structlog.get_logger(__name__)


async def purge_expired(
    factory: async_sessionmaker[AsyncSession], settings: Settings
) -> dict[str, int]:
    """Delete every expired record; how many of each kind went."""
    async with factory() as session:
        purged = await idempotency_service.purge_expired(
            session, timedelta(hours=settings.idempotency_retention_hours)
        )
        identity = await throttling.purge_expired(session, settings)
        deliveries = await webhooks.purge_expired(session, settings)
        await session.commit()
    return {"idempotency_records": purged, **identity, "webhook_deliveries": deliveries}


async def run_periodically(factory: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """Purge now and then every interval, until cancelled. A database that is down is
    tried again at the next interval."""
    while True:
        try:
            purged = await purge_expired(factory, settings)
            if any(purged.values()):
                log.info("purged_expired", **purged)
        except (SQLAlchemyError, OSError) as error:
            log.warning("purge_failed", error=type(error).__name__)
        await asyncio.sleep(settings.housekeeping_interval_seconds)
