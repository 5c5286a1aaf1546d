import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access import visibility
from app.access.caller import Caller
from app.access.policy import Resource
from app.access.principal import Tier
from app.audit.journal import change, journal_of
from app.core.crypto import DataKeyRing
from app.core.errors import NotFound, UnknownReference
from app.core.pagination import (
    cursor_uuid,
    decode_cursor,
    id_position,
    query_fingerprint,
    trim_page,
)
from app.sources import repository
from app.sources.models import Source
from app.sources.schemas import SourceCreate, SourceRead


@dataclass(frozen=True)
class SourceView:
    """A source as the caller may see it: the witness is opened only at confidential
    clearance."""

    source: Source
    witness: str | None
    clearance: Tier

    def read(self) -> SourceRead:
        return SourceRead.model_validate(
            {
                **{
                    name: getattr(self.source, name)
                    for name in SourceRead.model_fields
                    if name != "witness"
                },
                "witness": self.witness,
            }
        )


@dataclass(frozen=True)
class SourcePage:
    items: list[SourceView]
    next_cursor: str | None


def _view(
    caller: Caller, keys: DataKeyRing, source: Source, *, resource: Resource | None = None
) -> SourceView:
    if resource is None:
        resource = visibility.source_resource(caller.principal, recorded_by=source.recorded_by)
    clearance = caller.clearance("source", resource)
    witness = None
    if clearance >= Tier.confidential and source.witness is not None:
        witness = keys.open(WITNESS[0], WITNESS[1], source.id, envelope=source.witness).decode()
    return SourceView(source, witness, clearance)


WITNESS = ("source", "witness")


async def create(
    session: AsyncSession, caller: Caller, *, keys: DataKeyRing, data: SourceCreate
) -> SourceView:
    source = Source(
        **data.model_dump(exclude={"witness"}),
        recorded_by=caller.principal.staff_id,
    )
    if data.witness is not None:
        source.witness = keys.seal(
            WITNESS[0], WITNESS[1], source.id, plaintext=data.witness.encode()
        )
    await repository.add(session, source)
    view = _view(caller, keys, source)
    journal = journal_of(session)
    # The witness as given (the caller may not be cleared to read it back): fingerprinted.
    values = {**view.read().model_dump(mode="json"), "witness": data.witness}
    journal.changed(
        "source.create",
        "source",
        source.id,
        changes=[
            change("source", source.id, before=None, after=journal.snapshot("source", values))
        ],
    )
    return view


async def get(
    session: AsyncSession, caller: Caller, source_id: uuid.UUID, *, keys: DataKeyRing
) -> SourceView:
    source = await repository.get(session, source_id)
    if source is None:
        raise NotFound("No such source.")
    return _view(caller, keys, source)


async def cited_by_shared_records(
    session: AsyncSession, caller: Caller, source_ids: Collection[uuid.UUID], *, keys: DataKeyRing
) -> dict[uuid.UUID, SourceView]:
    """The sources of these ids as the caller may see them, where the caller vouches that
    each is cited by a record shown to it that its agreement shares wholly (the change
    feed, which takes the ids from what it hands over); one it may not read is left out.
    Nothing else may call this with ids from anywhere else."""
    if not source_ids:
        return {}
    resource = visibility.cited_source_resource(caller.principal, cited_by_a_shared_record=True)
    if caller.tier_on("source", resource) is None:
        return {}
    sources = await repository.many(session, source_ids)
    return {source.id: _view(caller, keys, source, resource=resource) for source in sources}


async def ensure_exist(session: AsyncSession, source_ids: Iterable[uuid.UUID]) -> None:
    """Refuse a citation of a source that is not on record."""
    wanted = set(source_ids)
    if not wanted:
        return
    unknown = wanted - await repository.existing_ids(session, wanted)
    if unknown:
        raise UnknownReference(
            "Some cited sources do not exist.", unknown_source_ids=sorted(str(i) for i in unknown)
        )


async def list_sources(
    session: AsyncSession,
    caller: Caller,
    *,
    keys: DataKeyRing,
    publisher: str | None,
    cursor: str | None,
    limit: int,
) -> SourcePage:
    fingerprint = query_fingerprint({"publisher": publisher})
    after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
    rows = await repository.page(session, publisher=publisher, after=after, limit=limit + 1)
    sources, next_cursor = trim_page(
        rows, limit=limit, fingerprint=fingerprint, position=id_position
    )
    return SourcePage([_view(caller, keys, source) for source in sources], next_cursor)
