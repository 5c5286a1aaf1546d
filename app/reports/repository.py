"""The report snapshots' queries (the as-of statements themselves are in asof.py)."""

import uuid
from datetime import date, datetime

import asyncpg
from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.reports.models import ReportBasis, ReportKind, ReportSnapshot


async def snapshot(session: AsyncSession, report_id: uuid.UUID) -> ReportSnapshot | None:
    return await session.get(ReportSnapshot, report_id)


async def previous_in_series(
    session: AsyncSession, series: str, as_of: date
) -> ReportSnapshot | None:
    """The latest snapshot of the series generated with an `as_of` not after this one."""
    found = await session.exec(
        select(ReportSnapshot)
        .where(col(ReportSnapshot.series) == series, col(ReportSnapshot.as_of) <= as_of)
        .order_by(col(ReportSnapshot.as_of).desc(), col(ReportSnapshot.generated_at).desc())
        .limit(1)
    )
    return found.first()


async def snapshots_before(
    session: AsyncSession, *, kind: ReportKind | None, before: uuid.UUID | None, limit: int
) -> list[ReportSnapshot]:
    """Newest first (ids are UUIDv7: their order is the order of generation)."""
    query = select(ReportSnapshot).order_by(col(ReportSnapshot.id).desc()).limit(limit)
    if kind is not None:
        query = query.where(col(ReportSnapshot.kind) == kind)
    if before is not None:
        query = query.where(col(ReportSnapshot.id) < before)
    return list((await session.exec(query)).all())


async def latest_basis(
    session: AsyncSession, *, engine_version: str, known_by: datetime, hold: bool = False
) -> ReportBasis | None:
    """The newest basis built by this engine as known at `known_by` or before; with `hold`,
    kept from deletion until the transaction ends (a key-share lock)."""
    query = (
        select(ReportBasis)
        .where(
            col(ReportBasis.engine_version) == engine_version,
            col(ReportBasis.known_at) <= known_by,
        )
        .order_by(col(ReportBasis.known_at).desc())
        .limit(1)
    )
    if hold:
        query = query.with_for_update(key_share=True)
    return (await session.exec(query)).first()


async def drop_bases_except(session: AsyncSession, kept: uuid.UUID) -> int:
    """Every other basis (their paths go with them); how many."""
    dropped = await session.exec(delete(ReportBasis).where(col(ReportBasis.id) != kept))
    return dropped.rowcount


async def oldest_open_write(driver: asyncpg.Connection) -> datetime:
    """The earliest moment a write still open now may have stamped on what it records: its
    transaction's start (the application stamps records once its transaction has begun, or
    the database does), or now."""
    moment: datetime = await driver.fetchval(
        "SELECT LEAST(clock_timestamp(), min(xact_start)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND xact_start IS NOT NULL"
    )
    return moment
