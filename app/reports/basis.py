"""The path basis of status reports (docs/reports.md, "The path basis"): every case file's
path as known at one moment, kept so that a report as known at that moment or later
builds anew only the paths of the case files changed since. A cache, never a record: a
report with no usable basis builds every path, and gives the same figures.

Built by `habeas report basis` and by the worker's `report_basis` job (daily by default),
in one transaction, which also drops the older bases. A report holds the basis it reads
(a key-share lock on its row), so a build dropping it waits for the report to finish."""

import time
from datetime import datetime, timedelta

import structlog
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection
from app.core.ids import new_id
from app.reports import asof, repository
from app.reports.knowledge import BASIS_BUILDER, REPORT_SETTINGS, knowledge_time
from app.reports.models import ReportBasis

log = structlog.get_logger(__name__)

# One build at a time (a transaction-level advisory lock; a second build skips).
BUILD_LOCK = 0x6861626561735F62  # "habeas_b"


async def usable(session: AsyncSession, known_at: datetime) -> asof.Basis | None:
    """The newest basis a report as known at `known_at` may read, if any, held until the
    session's transaction ends."""
    found = await repository.latest_basis(
        session, engine_version=asof.BASIS_FORMAT, known_by=known_at, hold=True
    )
    return asof.Basis(found.id, found.changed_after) if found is not None else None


async def build(
    session: AsyncSession, *, settle_seconds: float, margin_seconds: float
) -> ReportBasis | None:
    """Build a basis as known at now less `settle_seconds`, in the session's transaction,
    and drop the older ones; None when another build holds the lock.

    What a report must build anew is what was recorded after the basis's `changed_after`:
    the earlier of its moment and the start of the oldest transaction still open when the
    build begins (its writes may commit after the build's snapshot, stamped before its
    moment), less `margin_seconds`, because a recording time is the application's clock,
    which may lag the database's. Building a few more case files anew costs little;
    missing one would leave it as the basis has it."""
    started = time.perf_counter()
    driver = await driver_connection(session)
    if not await driver.fetchval("SELECT pg_try_advisory_xact_lock($1)", BUILD_LOCK):
        log.info("report_basis_skipped", reason="another build is under way")
        return None
    # Reports do not wait for this transaction: it writes nothing they count.
    await driver.execute(f"SET LOCAL application_name = '{BASIS_BUILDER}'")
    moment = await knowledge_time(session, None, settle_seconds)
    oldest_open = await repository.oldest_open_write(driver)
    for setting in REPORT_SETTINGS:
        await driver.execute(setting)
    basis = ReportBasis(
        id=new_id(),
        known_at=moment,
        changed_after=min(moment, oldest_open) - timedelta(seconds=margin_seconds),
        engine_version=asof.BASIS_FORMAT,
        seconds=0,
        events=0,
    )
    session.add(basis)
    await session.flush()
    basis.events = await asof.build_basis(driver, basis.id, moment, basis.changed_after)
    dropped = await repository.drop_bases_except(session, basis.id)
    basis.seconds = round(time.perf_counter() - started, 3)
    await session.flush()
    log.info(
        "report_basis_built",
        basis_id=str(basis.id),
        known_at=moment.isoformat(),
        changed_after=basis.changed_after.isoformat(),
        events=basis.events,
        seconds=basis.seconds,
        dropped=dropped,
    )
    return basis
