import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.access.tiers import exclusion, hidden_fields, page_exclusion
from app.audit.http import record_history
from app.audit.journal import journal_of
from app.audit.schemas import RecordHistory
from app.cases import service, transitions
from app.cases.history import HistoryEntry, entry_read_values
from app.cases.schemas import (
    Article,
    CaseCreate,
    CaseFilters,
    CaseHistory,
    CaseRead,
    CaseUpdate,
    ConfirmationInput,
    RejectionInput,
    RetractionInput,
    StatusChange,
    StatusEventInput,
    StatusEventRead,
    SupersessionInput,
    case_read,
)
from app.cases.statuses import Confidence, SentenceType, Status
from app.core.dates import IsoDate
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
from app.core.types import CountryCode
from app.idempotency.http import IdempotentCreate, IdempotentCreateDep
from app.idempotency.service import StoredResponse, after_check
from app.identity.http import requires
from app.persons.schemas import PersonFilters
from app.recognition.criteria import RecognitionStatus

router = APIRouter(prefix="/cases", tags=["cases"])

# The conflicts of a status path, as each route that changes one can meet them (the
# generic causes of a 409, such as an Idempotency-Key in flight, are added by
# app/core/openapi.py).
_INVALID_HISTORY: dict[int | str, Any] = {
    409: {
        "description": "The status history is not a valid path (`invalid-transition`:"
        " `violation` and `event_index` say which event breaks it)"
    }
}
_INVALID_TRANSITION: dict[int | str, Any] = {
    409: {
        "description": "The status path does not allow this change (`invalid-transition`:"
        " `violation` and `event_index` say why)"
    }
}
_INVALID_RETRACTION: dict[int | str, Any] = {
    409: {
        "description": "The event is retracted already (`conflict`), or the path without it"
        " would not be valid (`invalid-transition`)"
    }
}
_INVALID_SUPERSESSION: dict[int | str, Any] = {
    409: {
        "description": "The event is retracted or superseded already (`conflict`), or the"
        " path with the correction in its place would not be valid (`invalid-transition`)"
    }
}
_INVALID_SETTLEMENT: dict[int | str, Any] = {
    409: {
        "description": "The event is not a pending claim: not unconfirmed, or confirmed,"
        " rejected or retracted already (`conflict`); or, confirmed, it would leave an invalid"
        " path (`invalid-transition`)"
    }
}


def _event_read(entry: HistoryEntry) -> StatusEventRead:
    return StatusEventRead.model_validate(entry_read_values(entry))


def _status_change(change: transitions.StatusChange) -> StatusChange:
    return StatusChange(
        event=_event_read(change.entry),
        case_status=change.case.status,
        case_version=change.case.version,
    )


def _case_response(view: service.CaseView, status_code: int = 200) -> Response:
    return model_response(
        case_read(view.case),
        status_code=status_code,
        headers={"ETag": etag(view.case.version)},
        exclude=hidden_fields("case", view.clearance),
    )


@router.post(
    "",
    status_code=201,
    response_model=CaseRead,
    responses=documented_headers(201, ETAG_HEADER, LOCATION_HEADER) | _INVALID_HISTORY,
)
async def create_case(
    body: CaseCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.create")],
) -> Response:
    def created(view: service.CaseView) -> StoredResponse:
        location = request.url_for("read_case", case_id=view.case.id).path
        return StoredResponse(
            201,
            case_read(view.case).model_dump(
                mode="json", exclude=hidden_fields("case", view.clearance)
            ),
            {"Location": location, "ETag": etag(view.case.version)},
        )

    async def produce() -> StoredResponse:
        return created(await service.create(session, caller, body))

    async def replay(stored: StoredResponse) -> StoredResponse:
        # The case file as the caller may see it now, never the stored copy.
        record_id = uuid.UUID(stored.body["id"])
        journal = journal_of(session)
        journal.subject = ("case", record_id)
        view = await service.get(session, caller, record_id)
        journal.viewed("case.read", "case", [view.case.id], clearance=view.clearance)
        return created(view)

    return await once.run(body.model_dump(mode="json"), produce, replay)


@router.get("/{case_id}", response_model=CaseRead, responses=documented_headers(200, ETAG_HEADER))
async def read_case(
    case_id: uuid.UUID, session: SessionDep, caller: Annotated[Caller, requires("case.read")]
) -> Response:
    view = await service.get(session, caller, case_id)
    journal_of(session).viewed("case.read", "case", [case_id], clearance=view.clearance)
    return _case_response(view)


@router.patch("/{case_id}", response_model=CaseRead, responses=documented_headers(200, ETAG_HEADER))
async def update_case(
    case_id: uuid.UUID,
    body: CaseUpdate,
    session: SessionDep,
    caller: Annotated[Caller, requires("case.update")],
    if_match: IfMatch = None,
) -> Response:
    view = await service.update(
        session, caller, case_id, expected_version=required_version(if_match), data=body
    )
    return _case_response(view)


_OVERLAP = (
    "Dates are known to a day, a month or a year; a partial date stands for every day it "
    "may be, and matches when that interval overlaps the range (a detention in 2021-08 "
    "matches detained_from=2021-08-20)."
)
_RELEASED = (
    "An event in effect by which the person left custody alive (released, pardoned, "
    "deported) in the range."
)


@router.get("", response_model=Page[CaseRead])
async def list_cases(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("case.list")],
    status: Status | None = None,
    jurisdiction: CountryCode | None = None,
    article: Annotated[
        Article | None,
        Query(description="Case files charged under this article of any code: 342, 20.3.3"),
    ] = None,
    citizenship: CountryCode | None = None,
    recognition_status: RecognitionStatus | None = None,
    detained_from: Annotated[IsoDate | None, Query(description=_OVERLAP)] = None,
    detained_to: Annotated[IsoDate | None, Query(description=_OVERLAP)] = None,
    person_id: uuid.UUID | None = None,
    confidence: Annotated[
        Confidence | None, Query(description="How sure the current status is")
    ] = None,
    has_pending_claims: Annotated[
        bool | None, Query(description="With (true) or without (false) unsettled claims")
    ] = None,
    in_custody: Annotated[
        bool | None, Query(description="Held now (detained, or a custodial sentence)")
    ] = None,
    sentence_type: Annotated[
        SentenceType | None, Query(description="The type of the latest sentence")
    ] = None,
    status_changed_from: Annotated[IsoDate | None, Query(description=_OVERLAP)] = None,
    status_changed_to: Annotated[IsoDate | None, Query(description=_OVERLAP)] = None,
    released_from: Annotated[IsoDate | None, Query(description=_RELEASED + " " + _OVERLAP)] = None,
    released_to: Annotated[IsoDate | None, Query(description=_RELEASED + " " + _OVERLAP)] = None,
    destination_country: Annotated[
        CountryCode | None,
        Query(description="Deported (in effect) to this country (restricted tier)"),
    ] = None,
    facility_id: Annotated[
        uuid.UUID | None, Query(description="Held in this facility now (restricted tier)")
    ] = None,
    incommunicado: Annotated[
        bool | None, Query(description="With an open incommunicado period (restricted tier)")
    ] = None,
    former_political_prisoner: Annotated[
        bool | None,
        Query(
            description="true: case files recognised as political prisoners (recognition_status"
            " political_prisoner) whose person is no longer held; false: all others"
        ),
    ] = None,
) -> Response:
    """Lists case files. `recognition_status` is the case file's own: that of the latest
    decision covering it (a decision about another case file of the person does not count)."""
    filters = CaseFilters(
        status=status,
        jurisdiction=jurisdiction,
        article=article,
        detained_from=detained_from,
        detained_to=detained_to,
        person_id=person_id,
        confidence=confidence,
        has_pending_claims=has_pending_claims,
        in_custody=in_custody,
        sentence_type=sentence_type,
        status_changed_from=status_changed_from,
        status_changed_to=status_changed_to,
        released_from=released_from,
        released_to=released_to,
        destination_country=destination_country,
        facility_id=facility_id,
        incommunicado=incommunicado,
        recognition_status=recognition_status,
        former_political_prisoner=former_political_prisoner,
    )
    person_filters = PersonFilters(citizenship=citizenship)
    found = await service.list_cases(
        session,
        caller,
        filters=filters,
        person_filters=person_filters,
        cursor=paging.cursor,
        limit=paging.limit,
    )
    journal_of(session).viewed_page(
        "case.list", "case", [(view.case.id, view.clearance) for view in found.items]
    )
    return model_response(
        Page[CaseRead](
            items=[case_read(view.case) for view in found.items],
            next=next_link(request, found.next_cursor),
        ),
        exclude=page_exclusion("case", [view.clearance for view in found.items]),
    )


@router.get("/{case_id}/history", response_model=RecordHistory)
async def read_case_history(
    case_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("case.history")],
) -> Response:
    """Every change to the case file and its status events, field by field, newest first:
    who, when, from which request (coordinators)."""
    view = await service.history_reader(session, caller, case_id)
    journal_of(session).viewed("case.history", "case", [case_id], clearance=view.clearance)
    return await record_history(session, request, case_id, paging=paging)


@router.get("/{case_id}/status-events", response_model=CaseHistory)
async def read_status_history(
    case_id: uuid.UUID, session: SessionDep, caller: Annotated[Caller, requires("case.read")]
) -> Response:
    view, entries = await service.history(session, caller, case_id)
    journal_of(session).viewed(
        "case.read_status_events", "case", [case_id], clearance=view.clearance
    )
    hidden = exclusion("status_event", view.clearance)
    return model_response(
        CaseHistory(
            case_file_id=view.case.id,
            status=view.case.status,
            events=[_event_read(entry) for entry in entries],
        ),
        exclude={"events": {"__all__": hidden}} if hidden else None,
    )


@router.post(
    "/{case_id}/status-events",
    status_code=201,
    response_model=StatusChange,
    responses=documented_headers(201, ETAG_HEADER) | _INVALID_TRANSITION,
)
async def append_status_event(
    case_id: uuid.UUID,
    body: StatusEventInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.transition")],
    if_match: IfMatch = None,
) -> Response:
    """Record a status change. If-Match carries the case file's ETag: of many simultaneous
    changes from the same version, exactly one is applied."""
    expected_version = required_version(if_match)

    async def produce() -> StoredResponse:
        change = await transitions.append(
            session, caller, case_id, expected_version=expected_version, data=body
        )
        return StoredResponse(
            201,
            _status_change(change).model_dump(mode="json"),
            {"ETag": etag(change.case.version)},
        )

    return await once.run(
        [body.model_dump(mode="json"), expected_version],
        produce,
        after_check(lambda: transitions.may_transition(session, caller, case_id)),
    )


async def _change_of_path(
    session: AsyncSession,
    caller: Caller,
    case_id: uuid.UUID,
    once: IdempotentCreate,
    request_body: BaseModel,
    if_match: str | None,
    make: Callable[[int], Awaitable[transitions.StatusChange]],
) -> Response:
    """A change to one event of the path, If-Match on the case file and safe to retry."""
    expected_version = required_version(if_match)

    async def produce() -> StoredResponse:
        change = await make(expected_version)
        return StoredResponse(
            201,
            _status_change(change).model_dump(mode="json"),
            {"ETag": etag(change.case.version)},
        )

    return await once.run(
        [request_body.model_dump(mode="json"), expected_version],
        produce,
        after_check(lambda: transitions.may_transition(session, caller, case_id)),
    )


_EVENT_CHANGE_RESPONSES = documented_headers(201, ETAG_HEADER)


@router.post(
    "/{case_id}/status-events/{event_id}/retraction",
    status_code=201,
    response_model=StatusChange,
    responses=_EVENT_CHANGE_RESPONSES | _INVALID_RETRACTION,
)
async def retract_status_event(
    case_id: uuid.UUID,
    event_id: uuid.UUID,
    body: RetractionInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.transition")],
    if_match: IfMatch = None,
) -> Response:
    """Withdraw a wrong status event; it stays in the history, marked with the reason. The
    rest of the path must stay valid."""
    return await _change_of_path(
        session,
        caller,
        case_id,
        once,
        body,
        if_match,
        lambda version: transitions.retract(
            session,
            caller,
            case_id,
            event_id=event_id,
            expected_version=version,
            reason=body.reason,
        ),
    )


@router.post(
    "/{case_id}/status-events/{event_id}/supersession",
    status_code=201,
    response_model=StatusChange,
    responses=_EVENT_CHANGE_RESPONSES | _INVALID_SUPERSESSION,
)
async def supersede_status_event(
    case_id: uuid.UUID,
    event_id: uuid.UUID,
    body: SupersessionInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.transition")],
    if_match: IfMatch = None,
) -> Response:
    """Correct an event (a term, a date) in one step: the corrected event replaces it where
    its date puts it and keeps its collective event; the original stays on record as
    superseded, with the reason. The answer carries the corrected event."""
    return await _change_of_path(
        session,
        caller,
        case_id,
        once,
        body,
        if_match,
        lambda version: transitions.supersede(
            session, caller, case_id, event_id=event_id, expected_version=version, data=body
        ),
    )


@router.post(
    "/{case_id}/status-events/{event_id}/confirmation",
    status_code=201,
    response_model=StatusChange,
    responses=_EVENT_CHANGE_RESPONSES | _INVALID_SETTLEMENT,
)
async def confirm_claim(
    case_id: uuid.UUID,
    event_id: uuid.UUID,
    body: ConfirmationInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.transition")],
    if_match: IfMatch = None,
) -> Response:
    """Confirm a pending claim (an unconfirmed event): it takes effect from now on, where
    its effective date puts it in the path (409 if the path would not stay valid)."""
    return await _change_of_path(
        session,
        caller,
        case_id,
        once,
        body,
        if_match,
        lambda version: transitions.settle_claim(
            session,
            caller,
            case_id,
            event_id=event_id,
            expected_version=version,
            confirmation=body,
        ),
    )


@router.post(
    "/{case_id}/status-events/{event_id}/rejection",
    status_code=201,
    response_model=StatusChange,
    responses=_EVENT_CHANGE_RESPONSES | _INVALID_SETTLEMENT,
)
async def reject_claim(
    case_id: uuid.UUID,
    event_id: uuid.UUID,
    body: RejectionInput,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("case.transition")],
    if_match: IfMatch = None,
) -> Response:
    """Reject a pending claim, with the reason: it stays in the history and never takes
    effect."""
    return await _change_of_path(
        session,
        caller,
        case_id,
        once,
        body,
        if_match,
        lambda version: transitions.settle_claim(
            session,
            caller,
            case_id,
            event_id=event_id,
            expected_version=version,
            rejection_reason=body.reason,
        ),
    )
