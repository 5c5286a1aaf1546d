"""The path basis of status reports (docs/reports.md, "The path basis"): every case file's
path as known at one moment, kept so that a report as known at that moment or later
builds anew only the paths of the case files changed since. A cache, never a record: a
report with no usable basis builds every path, and gives the same figures.

Built by `habeas report basis` and by the worker's `report_basis` job (daily by default),
in one transaction: a report reads either the whole new basis or the one before. Only the
newest basis is kept."""

import time
from datetime import datetime

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection
from app.reports import asof, repository
from app.reports.knowledge import REPORT_SETTINGS, knowledge_time
from app.reports.models import ReportBasis

log = structlog.get_logger(__name__)

# One build at a time (a transaction-level advisory lock; a second build skips).
_BUILD_LOCK = 0x6861626561735F62  # "habeas_b"


async def usable(session: AsyncSession, known_at: datetime) -> asof.Basis | None:
    """The newest basis a report as known at `known_at` may read, if any."""
    found = await repository.latest_basis(
        session, engine_version=asof.BASIS_FORMAT, known_by=known_at
    )
    return asof.Basis(found.id, found.known_at) if found is not None else None


async def build(session: AsyncSession, *, settle_seconds: float) -> ReportBasis | None:
    """Build a basis as known at now less `settle_seconds` (once the writes under way then
    have finished), in the session's transaction, and drop the older ones; None when
    another build holds the lock."""
    started = time.perf_counter()
    driver = await driver_connection(session)
    if not await driver.fetchval("SELECT pg_try_advisory_xact_lock($1)", _BUILD_LOCK):
        log.info("report_basis_skipped", reason="another build is under way")
        return None
    moment = await knowledge_time(session, None, settle_seconds)
    for setting in REPORT_SETTINGS:
        await driver.execute(setting)
    basis = ReportBasis(known_at=moment, engine_version=asof.BASIS_FORMAT, seconds=0, events=0)
    session.add(basis)
    await session.flush()
    basis.events = await asof.build_basis(driver, asof.Basis(basis.id, moment))
    dropped = await repository.drop_bases_except(session, basis.id)
    basis.seconds = round(time.perf_counter() - started, 3)
    await session.flush()
    log.info(
        "report_basis_built",
        basis_id=str(basis.id),
        known_at=moment.isoformat(),
        events=basis.events,
        seconds=basis.seconds,
        dropped=dropped,
    )
    return basis
