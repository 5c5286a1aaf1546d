"""Every SQL query of the custody feature."""

import uuid
from collections.abc import Collection, Sequence
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.custody.models import CustodyEvent, CustodyEventRetraction, CustodyPeriodEnd, Facility

EntryRecord = tuple[CustodyEvent, CustodyEventRetraction | None, CustodyPeriodEnd | None]


async def save(session: AsyncSession, record: object) -> None:
    """Write a new record, or the changes to one read in this session."""
    session.add(record)
    await session.flush()


async def get_facility(
    session: AsyncSession, facility_id: uuid.UUID, *, for_update: bool = False
) -> Facility | None:
    stmt = select(Facility).where(Facility.id == facility_id)
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def existing_facility_ids(
    session: AsyncSession, ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    stmt = select(Facility.id).where(col(Facility.id).in_(list(ids)))
    return set(await session.exec(stmt))


def _like_pattern(text: str) -> str:
    escaped = text.casefold().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def facility_page(
    session: AsyncSession,
    *,
    country: str | None,
    type_: str | None,
    name: str | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Facility]:
    stmt = select(Facility)
    if country is not None:
        stmt = stmt.where(Facility.country == country)
    if type_ is not None:
        stmt = stmt.where(Facility.type == type_)
    if name is not None:
        # Any of its names, in any script, contains the text (case aside). The register
        # is small: a scan costs nothing worth an index.
        stmt = stmt.where(col(Facility.search_text).like(_like_pattern(name), escape="\\"))
    if after is not None:
        stmt = stmt.where(Facility.id > after)
    return list(await session.exec(stmt.order_by(col(Facility.id)).limit(limit)))


def _entries() -> Any:
    """Timeline entries in recorded order, each with its retraction and end."""
    return (
        select(CustodyEvent, CustodyEventRetraction, CustodyPeriodEnd)
        .outerjoin(
            CustodyEventRetraction,
            col(CustodyEventRetraction.event_id) == col(CustodyEvent.id),
        )
        .outerjoin(CustodyPeriodEnd, col(CustodyPeriodEnd.event_id) == col(CustodyEvent.id))
        .order_by(col(CustodyEvent.recorded_at), col(CustodyEvent.id))
    )


async def entries_of_many(
    session: AsyncSession, case_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[EntryRecord]]:
    """As entries_of, for many case files in one query."""
    found: dict[uuid.UUID, list[EntryRecord]] = {case_id: [] for case_id in case_ids}
    if not case_ids:
        return found
    stmt = _entries().where(col(CustodyEvent.case_file_id).in_(list(case_ids)))
    for event, retraction, end in await session.exec(stmt):
        found[event.case_file_id].append((event, retraction, end))
    return found


async def entries_of(session: AsyncSession, case_id: uuid.UUID) -> list[EntryRecord]:
    """A case file's timeline entries in recorded order, each with its retraction and end."""
    stmt = _entries().where(col(CustodyEvent.case_file_id) == case_id)
    return [(event, retraction, end) for event, retraction, end in await session.exec(stmt)]
