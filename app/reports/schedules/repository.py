"""SQL of report schedules and their runs."""

import uuid
from datetime import date, datetime

from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.ids import new_id
from app.reports.schedules.models import (
    ReportSchedule,
    ReportScheduleRun,
    RunStatus,
    ScheduleOrigin,
)
from app.reports.schedules.periods import Period


async def save(session: AsyncSession, record: object) -> None:
    """Write a new record, or the changes to one read in this session."""
    session.add(record)
    await session.flush()


async def get_schedule(
    session: AsyncSession, schedule_id: uuid.UUID, *, for_update: bool = False
) -> ReportSchedule | None:
    query = select(ReportSchedule).where(ReportSchedule.id == schedule_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def schedule_named(
    session: AsyncSession, name: str, *, for_update: bool = False
) -> ReportSchedule | None:
    query = select(ReportSchedule).where(ReportSchedule.name == name)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def schedules_after(
    session: AsyncSession, after: uuid.UUID | None, count: int
) -> list[ReportSchedule]:
    query = select(ReportSchedule)
    if after is not None:
        query = query.where(col(ReportSchedule.id) > after)
    query = query.order_by(col(ReportSchedule.id)).limit(count)
    return list((await session.exec(query)).all())


async def enabled_schedules(session: AsyncSession) -> list[ReportSchedule]:
    query = (
        select(ReportSchedule)
        .where(col(ReportSchedule.enabled).is_(True))
        .order_by(col(ReportSchedule.id))
    )
    return list((await session.exec(query)).all())


async def configured_schedules(session: AsyncSession) -> list[ReportSchedule]:
    query = (
        select(ReportSchedule)
        .where(ReportSchedule.origin == ScheduleOrigin.configuration)
        .with_for_update()
    )
    return list((await session.exec(query)).all())


async def runs_after(
    session: AsyncSession, schedule_id: uuid.UUID, after: uuid.UUID | None, count: int
) -> list[ReportScheduleRun]:
    query = select(ReportScheduleRun).where(ReportScheduleRun.schedule_id == schedule_id)
    if after is not None:
        query = query.where(col(ReportScheduleRun.id) > after)
    query = query.order_by(col(ReportScheduleRun.id)).limit(count)
    return list((await session.exec(query)).all())


async def succeeded_as_ofs(session: AsyncSession, schedule_id: uuid.UUID) -> set[date]:
    query = select(col(ReportScheduleRun.as_of)).where(
        ReportScheduleRun.schedule_id == schedule_id,
        ReportScheduleRun.status == RunStatus.succeeded,
    )
    return set((await session.exec(query)).all())


async def start_attempt(
    session: AsyncSession, *, schedule_id: uuid.UUID, period: Period, at: datetime
) -> ReportScheduleRun:
    """The period's run, marked running with one attempt more (made at its first)."""
    statement = (
        insert(ReportScheduleRun)
        .values(
            id=new_id(),
            schedule_id=schedule_id,
            as_of=period.as_of,
            period_from=period.period_from,
            period_to=period.period_to,
            status=RunStatus.running,
            attempts=1,
            started_at=at,
        )
        .on_conflict_do_update(
            index_elements=["schedule_id", "as_of"],
            set_={
                "status": RunStatus.running,
                "attempts": ReportScheduleRun.attempts + 1,
                "started_at": at,
                "finished_at": None,
            },
        )
        .returning(col(ReportScheduleRun.id))
    )
    run_id = (await session.exec(statement)).scalar_one()
    run = await session.get(ReportScheduleRun, run_id, populate_existing=True)
    assert run is not None
    return run


async def get_run(
    session: AsyncSession, run_id: uuid.UUID, *, for_update: bool = False
) -> ReportScheduleRun | None:
    query = select(ReportScheduleRun).where(ReportScheduleRun.id == run_id)
    if for_update:
        query = query.with_for_update()
    return (await session.exec(query)).first()


async def runs_by_status(session: AsyncSession) -> dict[str, int]:
    query = select(ReportScheduleRun.status, func.count()).group_by(col(ReportScheduleRun.status))
    return {str(status): count for status, count in (await session.exec(query)).all()}
