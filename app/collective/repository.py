import uuid

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.collective.models import CollectiveEvent


async def add(session: AsyncSession, event: CollectiveEvent) -> None:
    session.add(event)
    await session.flush()


async def get(
    session: AsyncSession, event_id: uuid.UUID, *, for_update: bool = False
) -> CollectiveEvent | None:
    return await session.get(CollectiveEvent, event_id, with_for_update=for_update)


async def save(session: AsyncSession, event: CollectiveEvent) -> None:
    session.add(event)
    await session.flush()


async def page(
    session: AsyncSession, *, after: uuid.UUID | None, limit: int
) -> list[CollectiveEvent]:
    stmt = select(CollectiveEvent)
    if after is not None:
        stmt = stmt.where(CollectiveEvent.id > after)
    return list(await session.exec(stmt.order_by(col(CollectiveEvent.id)).limit(limit)))
