import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.access.caller import Caller
from app.collective import service
from app.collective.models import CollectiveEvent
from app.collective.schemas import (
    CollectiveEventCreate,
    CollectiveEventRead,
    CollectiveEventSummary,
    CollectiveResult,
    CollectiveRetractionInput,
    CollectiveRetractionRead,
)
from app.core.dates import PartialDate, Precision
from app.core.db import SessionDep
from app.core.http import LOCATION_HEADER, documented_headers, model_response
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse
from app.identity.http import requires

router = APIRouter(prefix="/collective-events", tags=["collective events"])


def _summary(event: CollectiveEvent) -> CollectiveEventSummary:
    return CollectiveEventSummary(
        **{
            name: getattr(event, name)
            for name in CollectiveEventSummary.model_fields
            if name not in ("effective_date", "retraction")
        },
        effective_date=str(PartialDate(event.effective_date, Precision(event.effective_precision))),
        retraction=(
            CollectiveRetractionRead(
                reason=event.retraction_reason or "",
                recorded_at=event.retracted_at,
                recorded_by=event.retracted_by,
            )
            if event.retracted_at is not None
            else None
        ),
    )


def _read(view: service.CollectiveView) -> CollectiveEventRead:
    summary = _summary(view.event).model_dump()
    # Results list only the case files the caller may read; the count must not reveal
    # that there are others.
    summary["case_file_count"] = len({result.case_file_id for result in view.results})
    return CollectiveEventRead(
        **summary,
        results=[
            CollectiveResult(
                case_file_id=r.case_file_id,
                outcome=r.outcome,
                from_status=r.from_status,
                event_id=r.event_id,
            )
            for r in view.results
        ],
    )


@router.post(
    "",
    status_code=201,
    response_model=CollectiveEventRead,
    responses={
        **documented_headers(201, LOCATION_HEADER),
        409: {"description": "A case file cannot transition; nothing changed"},
    },
)
async def create_collective_event(
    body: CollectiveEventCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("collective.create")],
) -> Response:
    """Apply one transition to many case files in one transaction: all or nothing."""

    async def produce() -> StoredResponse:
        view = await service.create(session, caller, body)
        location = request.url_for("read_collective_event", event_id=view.event.id).path
        return StoredResponse(201, _read(view).model_dump(mode="json"), {"Location": location})

    return await once.run(body.model_dump(mode="json"), produce)


@router.post(
    "/{event_id}/retraction",
    status_code=201,
    response_model=CollectiveEventRead,
    responses={
        409: {
            "description": "Already retracted, or a case file cannot be changed (a later "
            "event depends on one of its events, or it is not yours); nothing changed"
        },
    },
)
async def retract_collective_event(
    event_id: uuid.UUID,
    body: CollectiveRetractionInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("collective.retract")],
) -> Response:
    """Retract every event the collective event made, in every case file, in one
    transaction, with the reason: all or nothing. The events stay on record, retracted."""

    async def produce() -> StoredResponse:
        view = await service.retract(session, caller, event_id, reason=body.reason)
        return StoredResponse(201, _read(view).model_dump(mode="json"), {})

    return await once.run(body.model_dump(mode="json"), produce)


@router.get("/{event_id}", response_model=CollectiveEventRead)
async def read_collective_event(
    event_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("collective.read")],
) -> Response:
    """The event, with the result for each case file the caller may see."""
    return model_response(_read(await service.get(session, caller, event_id)))


@router.get("", response_model=Page[CollectiveEventSummary])
async def list_collective_events(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("collective.list")],
) -> Response:
    found = await service.list_events(session, caller, cursor=paging.cursor, limit=paging.limit)
    return model_response(
        Page[CollectiveEventSummary](
            items=[
                _summary(event).model_copy(
                    update={"case_file_count": found.visible_counts.get(event.id, 0)}
                )
                for event in found.items
            ],
            next=next_link(request, found.next_cursor),
        )
    )
