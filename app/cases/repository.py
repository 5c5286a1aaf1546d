"""Every SQL query of the cases feature."""

import uuid
from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from app.cases.models import CaseFile, StatusEvent, StatusEventRetraction
from app.cases.schemas import CaseFilters

EventRecord = tuple[StatusEvent, StatusEventRetraction | None]


async def next_reference_number(session: AsyncSession) -> int:
    return int((await session.exec(select(func.nextval("case_reference_seq")))).one())


async def add(session: AsyncSession, case: CaseFile, events: Sequence[StatusEvent]) -> None:
    session.add(case)
    await session.flush()
    session.add_all(events)
    await session.flush()


async def get(
    session: AsyncSession, case_id: uuid.UUID, *, for_update: bool = False
) -> CaseFile | None:
    stmt = select(CaseFile).where(CaseFile.id == case_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def lock_many(session: AsyncSession, case_ids: Collection[uuid.UUID]) -> list[CaseFile]:
    """Lock the case files in id order, so that concurrent batches cannot deadlock."""
    stmt = (
        select(CaseFile)
        .where(col(CaseFile.id).in_(list(case_ids)))
        .order_by(col(CaseFile.id))
        .with_for_update()
    )
    return list(await session.exec(stmt))


async def events_of(
    session: AsyncSession, case_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, list[EventRecord]]:
    """Each case file's events in recorded order, with their retraction if any."""
    stmt = (
        select(StatusEvent, StatusEventRetraction)
        .outerjoin(
            StatusEventRetraction, col(StatusEventRetraction.event_id) == col(StatusEvent.id)
        )
        .where(col(StatusEvent.case_file_id).in_(list(case_ids)))
        .order_by(col(StatusEvent.case_file_id), col(StatusEvent.position))
    )
    grouped: dict[uuid.UUID, list[EventRecord]] = defaultdict(list)
    for event, retraction in await session.exec(stmt):
        grouped[event.case_file_id].append((event, retraction))
    return grouped


async def add_events(session: AsyncSession, events: Sequence[StatusEvent]) -> None:
    session.add_all(events)
    await session.flush()


async def add_retraction(session: AsyncSession, retraction: StatusEventRetraction) -> None:
    session.add(retraction)
    await session.flush()


async def save(session: AsyncSession, cases: Sequence[CaseFile]) -> None:
    session.add_all(cases)
    await session.flush()


async def page(
    session: AsyncSession,
    filters: CaseFilters,
    person_ids: SelectOfScalar[uuid.UUID] | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[CaseFile]:
    """A page of case files; `person_ids` (from the persons feature) narrows by person."""
    stmt = select(CaseFile)
    if person_ids is not None:
        stmt = stmt.where(col(CaseFile.person_id).in_(person_ids))
    if filters.status is not None:
        stmt = stmt.where(CaseFile.status == filters.status)
    if filters.jurisdiction is not None:
        stmt = stmt.where(CaseFile.jurisdiction == filters.jurisdiction)
    if filters.article is not None:
        stmt = stmt.where(col(CaseFile.charges).contains([{"article": filters.article}]))
    if filters.detained_from is not None:
        stmt = stmt.where(CaseFile.detained_on >= filters.detained_from)
    if filters.detained_to is not None:
        stmt = stmt.where(CaseFile.detained_on <= filters.detained_to)
    if filters.person_id is not None:
        stmt = stmt.where(CaseFile.person_id == filters.person_id)
    if after is not None:
        stmt = stmt.where(CaseFile.id > after)
    return list(await session.exec(stmt.order_by(col(CaseFile.id)).limit(limit)))


async def case_ids_of_collective(
    session: AsyncSession, collective_event_id: uuid.UUID
) -> list[uuid.UUID]:
    stmt = (
        select(StatusEvent.case_file_id)
        .where(StatusEvent.collective_event_id == collective_event_id)
        .order_by(col(StatusEvent.case_file_id))
    )
    return list(await session.exec(stmt))
