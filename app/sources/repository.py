import uuid
from collections.abc import Collection

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.sources.models import Source


async def add(session: AsyncSession, source: Source) -> None:
    session.add(source)
    await session.flush()


async def get(session: AsyncSession, source_id: uuid.UUID) -> Source | None:
    return await session.get(Source, source_id)


async def many(session: AsyncSession, ids: Collection[uuid.UUID]) -> list[Source]:
    stmt = select(Source).where(col(Source.id).in_(list(ids))).order_by(col(Source.id))
    return list(await session.exec(stmt))


async def existing_ids(session: AsyncSession, ids: Collection[uuid.UUID]) -> set[uuid.UUID]:
    stmt = select(Source.id).where(col(Source.id).in_(list(ids)))
    return set(await session.exec(stmt))


async def page(
    session: AsyncSession, *, publisher: str | None, after: uuid.UUID | None, limit: int
) -> list[Source]:
    stmt = select(Source)
    if publisher is not None:
        stmt = stmt.where(Source.publisher == publisher)
    if after is not None:
        stmt = stmt.where(Source.id > after)
    return list(await session.exec(stmt.order_by(col(Source.id)).limit(limit)))
