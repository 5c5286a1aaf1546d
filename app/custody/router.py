import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.access.caller import Caller
from app.access.tiers import exclusion
from app.audit.journal import journal_of
from app.core.dates import IsoMoment
from app.core.db import SessionDep
from app.core.http import (
    ETAG_HEADER,
    LOCATION_HEADER,
    IfMatch,
    documented_headers,
    etag,
    model_response,
    required_version,
)
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.core.types import CountryCode, Label
from app.custody import service
from app.custody.models import Facility, FacilityType
from app.custody.schemas import (
    CustodyEntryInput,
    CustodyEntryRead,
    CustodyRetractionInput,
    CustodyTimeline,
    FacilityCreate,
    FacilityRead,
    FacilityUpdate,
    PeriodEndInput,
    timeline_exclusion,
)
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse, after_check
from app.identity.http import requires

facilities_router = APIRouter(prefix="/facilities", tags=["facilities"])
router = APIRouter(prefix="/cases", tags=["custody"])

# The facility register ------------------------------------------------------------------


def _facility_response(facility: Facility) -> Response:
    return model_response(service.facility_read(facility), headers={"ETag": etag(facility.version)})


@facilities_router.post(
    "",
    status_code=201,
    response_model=FacilityRead,
    responses=documented_headers(201, ETAG_HEADER, LOCATION_HEADER),
)
async def create_facility(
    body: FacilityCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("facility.create")],
) -> Response:
    """Add a place of detention to the register (coordinators)."""

    def created(facility: Facility) -> StoredResponse:
        location = request.url_for("read_facility", facility_id=facility.id).path
        return StoredResponse(
            201,
            service.facility_read(facility).model_dump(mode="json"),
            {"Location": location, "ETag": etag(facility.version)},
        )

    async def produce() -> StoredResponse:
        return created(await service.create_facility(session, caller, body))

    async def replay(stored: StoredResponse) -> StoredResponse:
        # The facility as it is now, never the stored copy.
        return created(await service.get_facility(session, caller, uuid.UUID(stored.body["id"])))

    return await once.run(body.model_dump(mode="json"), produce, replay)


@facilities_router.get(
    "/{facility_id}", response_model=FacilityRead, responses=documented_headers(200, ETAG_HEADER)
)
async def read_facility(
    facility_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("facility.read")],
) -> Response:
    return _facility_response(await service.get_facility(session, caller, facility_id))


@facilities_router.patch(
    "/{facility_id}", response_model=FacilityRead, responses=documented_headers(200, ETAG_HEADER)
)
async def update_facility(
    facility_id: uuid.UUID,
    body: FacilityUpdate,
    session: SessionDep,
    caller: Annotated[Caller, requires("facility.update")],
    if_match: IfMatch = None,
) -> Response:
    """Correct a facility's names, place or type (coordinators)."""
    facility = await service.update_facility(
        session, caller, facility_id, expected_version=required_version(if_match), data=body
    )
    return _facility_response(facility)


@facilities_router.get("", response_model=Page[FacilityRead])
async def list_facilities(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("facility.list")],
    country: CountryCode | None = None,
    type: FacilityType | None = None,
    q: Annotated[
        Label | None, Query(description="Part of any of its names, in any script (case aside)")
    ] = None,
) -> Response:
    found = await service.list_facilities(
        session,
        caller,
        country=country,
        type_=type,
        name=q,
        cursor=paging.cursor,
        limit=paging.limit,
    )
    return model_response(
        Page[FacilityRead](
            items=[service.facility_read(facility) for facility in found.items],
            next=next_link(request, found.next_cursor),
        )
    )


# The custody timeline of a case file ------------------------------------------------------


def _entry_body(view: service.EntryView) -> dict[str, Any]:
    return view.entry.read().model_dump(
        mode="json", exclude=exclusion("custody_event", view.clearance)
    )


def _stored_entry(view: service.EntryView) -> StoredResponse:
    return StoredResponse(201, _entry_body(view))


@router.get("/{case_id}/custody-timeline", response_model=CustodyTimeline)
async def read_custody_timeline(
    case_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("case.read")],
    known_at: Annotated[
        IsoMoment | None,
        Query(description="The timeline as it was on record at this moment (default: now)"),
    ] = None,
) -> Response:
    """Transfers, incommunicado periods, hunger strikes, punishment cells, new charges and
    the expected release, in effective order, with retractions and ends. Places and health
    (every kind but new charges and the expected release) are restricted."""
    view = await service.timeline(session, caller, case_id, known_at=known_at)
    journal_of(session).viewed("case.read_custody", "case", [case_id], clearance=view.clearance)
    return model_response(view.timeline, exclude=timeline_exclusion(view.clearance) or None)


@router.post("/{case_id}/custody-timeline", status_code=201, response_model=CustodyEntryRead)
async def record_custody_entry(
    case_id: uuid.UUID,
    body: CustodyEntryInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.record_custody")],
) -> Response:
    """Add an entry. Entries are appended, never changed: a wrong one is retracted; a
    period (incommunicado, hunger strike, punishment cell) may carry its end, or be closed
    later at …/{entry_id}/end."""

    async def produce() -> StoredResponse:
        return _stored_entry(await service.record(session, caller, case_id, body))

    return await once.run(
        body.model_dump(mode="json"),
        produce,
        after_check(lambda: service.may_record(session, caller, case_id)),
    )


@router.post(
    "/{case_id}/custody-timeline/{entry_id}/retraction",
    status_code=201,
    response_model=CustodyEntryRead,
    responses={409: {"description": "The entry is retracted already"}},
)
async def retract_custody_entry(
    case_id: uuid.UUID,
    entry_id: uuid.UUID,
    body: CustodyRetractionInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.record_custody")],
) -> Response:
    """Withdraw a wrong entry, with the reason; it stays in the timeline, marked (409 if
    it is retracted already)."""

    async def produce() -> StoredResponse:
        return _stored_entry(
            await service.retract(session, caller, case_id, entry_id=entry_id, reason=body.reason)
        )

    return await once.run(
        body.model_dump(mode="json"),
        produce,
        after_check(lambda: service.may_record(session, caller, case_id)),
    )


@router.post(
    "/{case_id}/custody-timeline/{entry_id}/end",
    status_code=201,
    response_model=CustodyEntryRead,
    responses={
        409: {"description": "The entry is no period, is retracted, or has ended already"},
        422: {"description": "The input is not valid, or the end is before the start"},
    },
)
async def end_custody_period(
    case_id: uuid.UUID,
    entry_id: uuid.UUID,
    body: PeriodEndInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.record_custody")],
) -> Response:
    """Record when a period ended (409 for an entry that is no period, is retracted, or
    has ended already; 422 for an end before its start)."""

    async def produce() -> StoredResponse:
        return _stored_entry(
            await service.close(session, caller, case_id, entry_id=entry_id, data=body)
        )

    return await once.run(
        body.model_dump(mode="json"),
        produce,
        after_check(lambda: service.may_record(session, caller, case_id)),
    )
