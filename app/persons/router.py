import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from app.access.caller import Caller
from app.access.tiers import hidden_fields, page_exclusion
from app.audit.http import record_history
from app.audit.journal import journal_of
from app.audit.schemas import RecordHistory
from app.core.db import SessionDep
from app.core.errors import PROBLEM_JSON, PersonMerged, PossibleDuplicate
from app.core.http import (
    ETAG_HEADER,
    LOCATION_HEADER,
    DataKeys,
    IfMatch,
    documented_headers,
    etag,
    model_response,
    required_version,
)
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.core.types import CountryCode
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse
from app.identity.http import requires
from app.persons import matching, service
from app.persons.schemas import (
    DuplicateScanRead,
    NameSearch,
    PersonCreate,
    PersonDuplicates,
    PersonFilters,
    PersonMatches,
    PersonMatchQuery,
    PersonRead,
    PersonUpdate,
)
from app.recognition.criteria import RecognitionStatus

router = APIRouter(prefix="/persons", tags=["persons"])
# The duplicate check is a resource of its own: under /persons its name would be taken for
# a person's id by GET and PATCH /persons/{person_id}.
matches_router = APIRouter(prefix="/person-matches", tags=["persons"])


def _read(view: service.PersonView) -> PersonRead:
    return view.read()


def _person_response(view: service.PersonView) -> Response:
    return model_response(
        _read(view),
        headers={"ETag": etag(view.person.version)},
        exclude=hidden_fields("person", view.clearance),
    )


POSSIBLE_DUPLICATE_RESPONSE: dict[str, Any] = {
    "description": (
        "The person may be recorded already: a candidate scores at or above the threshold "
        f"(`{PossibleDuplicate.slug}`). The problem lists `candidates` (as `POST "
        "/person-matches` answers) and the `threshold`; send the request again with the "
        "ids of those who are someone else in `confirmed_distinct_from`"
    ),
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "allOf": [
                    {"$ref": "#/components/schemas/Problem"},
                    {
                        "type": "object",
                        "required": ["candidates", "threshold"],
                        "properties": {
                            "threshold": {"type": "number"},
                            "candidates": {
                                "type": "array",
                                "items": {"$ref": "#/components/schemas/PersonMatch"},
                            },
                        },
                    },
                ]
            }
        }
    },
}


@matches_router.post(
    "",
    response_model=PersonMatches,
    responses={200: {"description": "Candidates, best first (none is an empty list)"}},
)
async def match_person(
    body: PersonMatchQuery,
    session: SessionDep,
    caller: Annotated[Caller, requires("person.list")],
) -> Response:
    """The duplicate check: recorded persons a would-be one may be (names in any script
    and spelling, birth date, gender, citizenships, region), each with a score and its
    reasons, among the persons the caller may see. Nothing is recorded but the reading.
    """
    given = service.given_facts(body)
    matches = await service.find_matches(session, caller, given)
    service.record_matches(journal_of(session), matches, given)
    return JSONResponse(
        {
            "threshold": matching.DUPLICATE_THRESHOLD,
            "candidates": [service.match_read(match) for match in matches],
        }
    )


@router.post(
    "",
    status_code=201,
    response_model=PersonRead,
    responses={
        **documented_headers(201, ETAG_HEADER, LOCATION_HEADER),
        409: POSSIBLE_DUPLICATE_RESPONSE,
    },
)
async def create_person(
    body: PersonCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("person.create")],
) -> Response:
    def created(view: service.PersonView) -> StoredResponse:
        location = request.url_for("read_person", person_id=view.person.id).path
        return StoredResponse(
            201,
            _read(view).model_dump(mode="json", exclude=hidden_fields("person", view.clearance)),
            {"Location": location, "ETag": etag(view.person.version)},
        )

    async def produce() -> StoredResponse:
        return created(await service.create(session, caller, keys=keys, data=body))

    async def replay(stored: StoredResponse) -> StoredResponse:
        # The person as the caller may see them now, never the stored copy.
        record_id = uuid.UUID(stored.body["id"])
        journal = journal_of(session)
        journal.subject = ("person", record_id)
        view = await service.get(session, caller, record_id, keys=keys)
        journal.viewed("person.read", "person", [view.person.id], clearance=view.clearance)
        return created(view)

    request_body = body.model_dump(mode="json")
    if not body.confirmed_distinct_from:
        # The request as clients sent it before the field existed: its key still replays.
        del request_body["confirmed_distinct_from"]
    return await once.run(request_body, produce, replay)


MERGED_RESPONSE: dict[str, Any] = {
    "description": (
        f"The person was merged into another (`{PersonMerged.slug}`): Location and "
        "`merged_into` name the record that holds them now"
    ),
    "headers": {
        "Location": {"description": "The path of that record", "schema": {"type": "string"}}
    },
    "content": {
        PROBLEM_JSON: {
            "schema": {
                "allOf": [
                    {"$ref": "#/components/schemas/Problem"},
                    {
                        "type": "object",
                        "required": ["merged_into"],
                        "properties": {"merged_into": {"type": "string", "format": "uuid"}},
                    },
                ]
            }
        }
    },
}


@router.get(
    "/{person_id}",
    response_model=PersonRead,
    responses={**documented_headers(200, ETAG_HEADER), 308: MERGED_RESPONSE},
)
async def read_person(
    person_id: uuid.UUID,
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("person.read")],
) -> Response:
    view = await service.get(
        session, caller, person_id, keys=keys, merged=service.MergedAs.redirected
    )
    journal_of(session).viewed("person.read", "person", [person_id], clearance=view.clearance)
    return _person_response(view)


@router.get("/{person_id}/history", response_model=RecordHistory)
async def read_person_history(
    person_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("person.history")],
) -> Response:
    """Every change to the person and their recognition, field by field, newest first
    (coordinators). Confidential values appear as keyed fingerprints."""
    view = await service.history_reader(session, caller, person_id)
    journal_of(session).viewed("person.history", "person", [person_id], clearance=view.clearance)
    return await record_history(session, request, person_id, paging=paging)


@router.patch(
    "/{person_id}",
    response_model=PersonRead,
    responses={**documented_headers(200, ETAG_HEADER), 409: POSSIBLE_DUPLICATE_RESPONSE},
)
async def update_person(
    person_id: uuid.UUID,
    body: PersonUpdate,
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("person.update")],
    if_match: IfMatch = None,
) -> Response:
    view = await service.update(
        session,
        caller,
        person_id,
        keys=keys,
        expected_version=required_version(if_match),
        data=body,
    )
    return _person_response(view)


@router.get("", response_model=Page[PersonRead])
async def list_persons(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    keys: DataKeys,
    caller: Annotated[Caller, requires("person.list")],
    q: Annotated[
        NameSearch | None, Query(description="Any spelling of a name, in any script")
    ] = None,
    citizenship: CountryCode | None = None,
    recognition_status: RecognitionStatus | None = None,
) -> Response:
    filters = PersonFilters(citizenship=citizenship, recognition_status=recognition_status)
    found = await service.list_persons(
        session, caller, keys, filters=filters, q=q, cursor=paging.cursor, limit=paging.limit
    )
    journal = journal_of(session)
    journal.viewed_page(
        "person.list",
        "person",
        [(view.person.id, view.clearance) for view in found.items],
        # A name searched for is itself sensitive: kept only as a fingerprint.
        detail={"q": journal.fingerprint(q)} if q is not None else None,
    )
    return model_response(
        Page[PersonRead](
            items=[_read(view) for view in found.items],
            next=next_link(request, found.next_cursor),
        ),
        exclude=page_exclusion("person", [view.clearance for view in found.items]),
    )


# Persons recorded twice across the whole database: what the latest scan found.
duplicates_router = APIRouter(prefix="/person-duplicates", tags=["persons"])


@duplicates_router.get("", response_model=PersonDuplicates)
async def list_person_duplicates(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("person.merge")],
    min_score: Annotated[
        float, Query(ge=0, le=1, description="Pairs the scan scored at least this")
    ] = matching.DUPLICATE_THRESHOLD,
) -> Response:
    """Pairs of persons who may be one, across the whole database, best first
    (coordinators, who merge them): as the latest scan found them (`habeas persons
    duplicates`, or the worker's schedule), each scored again with what both hold now.
    Pairs merged or stated to be two people since are left out."""
    found = await service.duplicate_pairs(
        session, caller, min_score=min_score, cursor=paging.cursor, limit=paging.limit
    )
    body = {
        "scan": (
            DuplicateScanRead.model_validate(found.scan).model_dump(mode="json")
            if found.scan is not None
            else None
        ),
        "items": found.items,
        "next": next_link(request, found.next_cursor),
    }
    return JSONResponse(body)
