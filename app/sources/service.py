import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.errors import NotFound, UnprocessableInput
from app.core.pagination import cursor_uuid, decode_cursor, encode_cursor, query_fingerprint
from app.sources import repository
from app.sources.models import Source
from app.sources.schemas import SourceCreate


@dataclass(frozen=True)
class SourcePage:
    items: list[Source]
    next_cursor: str | None


async def create(session: AsyncSession, data: SourceCreate) -> Source:
    source = Source(**data.model_dump())
    await repository.add(session, source)
    return source


async def get(session: AsyncSession, source_id: uuid.UUID) -> Source:
    source = await repository.get(session, source_id)
    if source is None:
        raise NotFound("No such source.")
    return source


async def ensure_exist(session: AsyncSession, source_ids: Iterable[uuid.UUID]) -> None:
    """Refuse a citation of a source that is not on record."""
    wanted = set(source_ids)
    if not wanted:
        return
    unknown = wanted - await repository.existing_ids(session, wanted)
    if unknown:
        raise UnprocessableInput(
            "Some cited sources do not exist.", unknown_source_ids=sorted(str(i) for i in unknown)
        )


async def list_sources(
    session: AsyncSession, publisher: str | None, cursor: str | None, limit: int
) -> SourcePage:
    fingerprint = query_fingerprint({"publisher": publisher})
    after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
    sources = await repository.page(session, publisher, after, limit + 1)
    more = len(sources) > limit
    sources = sources[:limit]
    return SourcePage(sources, encode_cursor([str(sources[-1].id)], fingerprint) if more else None)
