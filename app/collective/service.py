"""Collective events: one transition applied to many case files, all or nothing."""

import uuid
from dataclasses import dataclass

from sqlmodel.ext.asyncio.session import AsyncSession

from app.access import visibility
from app.access.caller import Caller
from app.audit.journal import change, journal_of
from app.cases import transitions
from app.cases.transitions import CollectiveOutcome
from app.collective import repository
from app.collective.models import CollectiveEvent
from app.collective.schemas import CollectiveEventCreate
from app.core.clock import utcnow
from app.core.dates import PartialDate
from app.core.errors import Conflict, HiddenRecord, NotFound
from app.core.pagination import (
    cursor_uuid,
    decode_cursor,
    id_position,
    query_fingerprint,
    trim_page,
)
from app.sources import service as sources_service


@dataclass(frozen=True)
class CollectiveView:
    event: CollectiveEvent
    results: list[CollectiveOutcome]


@dataclass(frozen=True)
class CollectivePage:
    items: list[CollectiveEvent]
    # Per event, how many of its case files the caller may read.
    visible_counts: dict[uuid.UUID, int]
    next_cursor: str | None


async def create(
    session: AsyncSession, caller: Caller, data: CollectiveEventCreate
) -> CollectiveView:
    await sources_service.ensure_exist(session, data.source_ids)
    effective = PartialDate.parse(data.effective_date)
    event = CollectiveEvent(
        title=data.title,
        kind=data.kind,
        to_status=data.to_status,
        effective_date=effective.start,
        effective_precision=effective.precision,
        destination_country=data.destination_country,
        expelled_to=data.expelled_to,
        note=data.note,
        source_ids=list(data.source_ids),
        case_file_count=len(data.case_file_ids),
        recorded_by=caller.principal.staff_id,
    )
    await repository.add(session, event)
    journal = journal_of(session)
    journal.changed(
        "collective.create",
        "collective_event",
        event.id,
        changes=[
            change(
                "collective_event",
                event.id,
                before=None,
                after=journal.snapshot("collective_event", event.model_dump(mode="json")),
            )
        ],
    )
    # Raises, and so rolls the whole request back, if any one case file cannot transition.
    results = await transitions.apply_collective(
        session,
        caller,
        data.case_file_ids,
        steps=data.steps(),
        collective_event_id=event.id,
    )
    return CollectiveView(event, results)


async def retract(
    session: AsyncSession, caller: Caller, event_id: uuid.UUID, *, reason: str
) -> CollectiveView:
    """Retract everything a collective event did, in every case file, or nothing."""
    event = await repository.get(session, event_id, for_update=True)
    if event is None:
        raise NotFound("No such collective event.")
    if event.retracted_at is not None:
        raise Conflict("This collective event is already retracted.")
    journal = journal_of(session)
    before = journal.snapshot("collective_event", event.model_dump(mode="json"))
    # Raises, and so rolls the whole request back, if any one case file cannot be changed.
    await transitions.retract_collective(session, caller, event_id, reason=reason)
    event.retraction_reason = reason
    event.retracted_at = utcnow()
    event.retracted_by = caller.principal.staff_id
    await repository.save(session, event)
    journal.changed(
        "collective.retract",
        "collective_event",
        event.id,
        changes=[
            change(
                "collective_event",
                event.id,
                before=before,
                after=journal.snapshot("collective_event", event.model_dump(mode="json")),
            )
        ],
    )
    return CollectiveView(event, await transitions.collective_results(session, caller, event_id))


async def get(session: AsyncSession, caller: Caller, event_id: uuid.UUID) -> CollectiveView:
    event = await repository.get(session, event_id)
    if event is None:
        raise NotFound("No such collective event.")
    if not caller.may("collective.read", visibility.COLLECTIVE_EVENT):
        raise HiddenRecord("No such collective event.")
    return CollectiveView(event, await transitions.collective_results(session, caller, event_id))


async def list_events(
    session: AsyncSession, caller: Caller, *, cursor: str | None, limit: int
) -> CollectivePage:
    fingerprint = query_fingerprint({})
    after = cursor_uuid(decode_cursor(cursor, fingerprint, 1)[0]) if cursor else None
    rows = await repository.page(session, after=after, limit=limit + 1)
    events, next_cursor = trim_page(
        rows, limit=limit, fingerprint=fingerprint, position=id_position
    )
    counts = await transitions.readable_counts_of_collectives(
        session, caller, [event.id for event in events]
    )
    return CollectivePage(events, counts, next_cursor)
