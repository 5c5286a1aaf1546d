"""SQL of the jobs feature: integrity check records, and figures read from pgqueuer's
queue table (which has no model: pgqueuer owns it, app/jobs/queue.py names it)."""

from datetime import timedelta

from sqlalchemy import text
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.jobs.models import IntegrityCheck
from app.jobs.queue import QUEUE_TABLE


async def add_integrity_check(session: AsyncSession, check: IntegrityCheck) -> None:
    session.add(check)
    await session.flush()


async def latest_integrity_check(
    session: AsyncSession, *, ok_only: bool = False
) -> IntegrityCheck | None:
    query = select(IntegrityCheck)
    if ok_only:
        query = query.where(col(IntegrityCheck.ok).is_(True))
    query = query.order_by(col(IntegrityCheck.finished_at).desc()).limit(1)
    return (await session.exec(query)).first()


async def queue_depth(session: AsyncSession) -> dict[tuple[str, str], int]:
    """Jobs in the queue by (entrypoint, status): queued, picked (running) and failed
    (held for inspection); finished ones leave the table."""
    connection = await session.connection()
    rows = await connection.execute(
        text(
            f"SELECT entrypoint, status::text, count(*) FROM {QUEUE_TABLE}"
            " GROUP BY entrypoint, status"
        )
    )
    return {(entrypoint, status): count for entrypoint, status, count in rows.all()}


async def delete_failed_jobs(session: AsyncSession, older_than: timedelta) -> int:
    connection = await session.connection()
    result = await connection.execute(
        text(
            f"DELETE FROM {QUEUE_TABLE}"
            " WHERE status = 'failed' AND updated < now() - CAST(:age AS interval)"
        ),
        {"age": older_than},
    )
    return result.rowcount
