"""Every SQL query of the merges feature."""

import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.merges.models import MergeEventKind, PersonMerge, PersonMergeEvent


async def save(session: AsyncSession, record: PersonMerge) -> None:
    session.add(record)
    await session.flush()


async def get(
    session: AsyncSession, merge_id: uuid.UUID, *, person_id: uuid.UUID, for_update: bool = False
) -> PersonMerge | None:
    stmt = select(PersonMerge).where(
        col(PersonMerge.id) == merge_id, col(PersonMerge.person_id) == person_id
    )
    if for_update:
        stmt = stmt.with_for_update()
    return (await session.exec(stmt)).first()


async def of_person(session: AsyncSession, person_id: uuid.UUID) -> list[PersonMerge]:
    stmt = (
        select(PersonMerge)
        .where(col(PersonMerge.person_id) == person_id)
        .order_by(col(PersonMerge.merged_at).desc(), col(PersonMerge.id).desc())
    )
    return list(await session.exec(stmt))


async def holds_merges(session: AsyncSession, person_id: uuid.UUID) -> bool:
    """Whether persons are merged into this one now."""
    stmt = select(PersonMerge.id).where(
        col(PersonMerge.person_id) == person_id, col(PersonMerge.unmerged_at).is_(None)
    )
    return (await session.exec(stmt.limit(1))).first() is not None


async def add_event(session: AsyncSession, record: PersonMerge, kind: MergeEventKind) -> None:
    at = record.unmerged_at if kind is MergeEventKind.unmerged else record.merged_at
    assert at is not None
    session.add(
        PersonMergeEvent(
            merge_id=record.id,
            kind=kind.value,
            person_id=record.person_id,
            merged_person_id=record.merged_person_id,
            at=at,
        )
    )
    await session.flush()
