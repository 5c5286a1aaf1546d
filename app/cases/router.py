import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from app.access.caller import Caller
from app.access.tiers import exclusion, hidden_fields, page_exclusion
from app.audit.http import record_history
from app.audit.journal import journal_of
from app.audit.schemas import RecordHistory
from app.cases import service, transitions
from app.cases.schemas import (
    Article,
    CaseCreate,
    CaseFilters,
    CaseHistory,
    CaseRead,
    CaseUpdate,
    RetractionInput,
    StatusChange,
    StatusEventInput,
    case_read,
    event_read,
)
from app.cases.statuses import Status
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
from app.idempotency.http import IdempotentCreateDep
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


def _status_change(change: transitions.StatusChange) -> StatusChange:
    entry = change.entry
    return StatusChange(
        event=event_read(entry.event, entry.retraction, entry.from_status),
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
    detained_from: IsoDate | None = None,
    detained_to: IsoDate | None = None,
    person_id: uuid.UUID | None = None,
) -> Response:
    filters = CaseFilters(
        status=status,
        jurisdiction=jurisdiction,
        article=article,
        detained_from=detained_from,
        detained_to=detained_to,
        person_id=person_id,
    )
    person_filters = PersonFilters(citizenship=citizenship, recognition_status=recognition_status)
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
            events=[event_read(e.event, e.retraction, e.from_status) for e in entries],
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


@router.post(
    "/{case_id}/status-events/{event_id}/retraction",
    status_code=201,
    response_model=StatusChange,
    responses=documented_headers(201, ETAG_HEADER) | _INVALID_RETRACTION,
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
    """Withdraw a wrong status event; it stays in the history, marked with the reason."""
    expected_version = required_version(if_match)

    async def produce() -> StoredResponse:
        change = await transitions.retract(
            session,
            caller,
            case_id,
            event_id=event_id,
            expected_version=expected_version,
            reason=body.reason,
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
