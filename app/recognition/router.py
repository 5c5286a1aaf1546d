import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Response

from app.access.caller import Caller
from app.access.principal import Tier
from app.access.tiers import exclusion
from app.audit.journal import journal_of
from app.core.db import SessionDep
from app.core.http import (
    ETAG_HEADER,
    IfMatch,
    documented_headers,
    etag,
    model_response,
    required_version,
)
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse, after_check
from app.identity.http import requires
from app.recognition import service
from app.recognition.schemas import (
    CriteriaRead,
    DecisionCreate,
    ProposalRead,
    ProposalsRead,
    RecognitionRead,
    decision_read,
)

router = APIRouter(prefix="/persons/{person_id}/recognition", tags=["recognition"])
criteria_router = APIRouter(prefix="/recognition", tags=["recognition"])


def _read(recognition: service.Recognition) -> RecognitionRead:
    history = [decision_read(d, recognition.coverage.get(d.id, [])) for d in recognition.decisions]
    return RecognitionRead(
        person_id=recognition.person_id,
        status=recognition.status,
        version=recognition.version,
        current=history[0] if history else None,
        history=history,
    )


def _exclude(recognition: service.Recognition) -> dict[str, Any]:
    hidden = exclusion("recognition_decision", recognition.clearance)
    return {"current": hidden, "history": {"__all__": hidden}} if hidden else {}


@router.get("", response_model=RecognitionRead, responses=documented_headers(200, ETAG_HEADER))
async def read_recognition(
    person_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("recognition.read")],
) -> Response:
    recognition = await service.get(session, caller, person_id)
    journal_of(session).viewed(
        "recognition.read", "person", [person_id], clearance=recognition.clearance
    )
    return model_response(
        _read(recognition),
        headers={"ETag": etag(recognition.version)},
        exclude=_exclude(recognition) or None,
    )


@router.get("/proposals", response_model=ProposalsRead)
async def read_proposals(
    person_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("recognition.read")],
) -> Response:
    """What partner organisations proposed about the person's recognition (through their
    sync batches), newest first: for those who decide (coordinators). A proposal decides
    nothing and moves no case file's recognition."""
    proposals = await service.proposals(session, caller, person_id)
    journal_of(session).viewed(
        "recognition.read_proposals", "person", [person_id], clearance=Tier.restricted
    )
    return model_response(
        ProposalsRead(
            person_id=person_id,
            proposals=[ProposalRead.model_validate(proposal) for proposal in proposals],
        )
    )


@router.post(
    "",
    status_code=201,
    response_model=RecognitionRead,
    responses=documented_headers(201, ETAG_HEADER),
)
async def decide_recognition(
    person_id: uuid.UUID,
    body: DecisionCreate,
    session: SessionDep,
    once: IdempotentCreateDep,
    caller: Annotated[Caller, requires("recognition.decide")],
    if_match: IfMatch = None,
) -> Response:
    """Append a decision. If-Match carries the recognition's ETag ("0" before the first),
    so that a decision is never taken without seeing the one before it.

    A decision covers case files (`case_file_ids`, by default the person's open ones): each
    covered case file takes the decision's status as its `recognition_status`, and a new
    version. A withdrawal states its rationale and an exclusion code (see
    GET /recognition/criteria)."""
    expected_version = required_version(if_match)

    async def produce() -> StoredResponse:
        recognition = await service.decide(
            session, caller, person_id, expected_version=expected_version, data=body
        )
        return StoredResponse(
            201,
            _read(recognition).model_dump(mode="json", exclude=_exclude(recognition) or None),
            {"ETag": etag(recognition.version)},
        )

    return await once.run(
        [body.model_dump(mode="json"), expected_version],
        produce,
        after_check(lambda: service.may_decide(session, caller, person_id)),
    )


@criteria_router.get("/criteria", response_model=CriteriaRead)
async def read_criteria(
    caller: Annotated[Caller, requires("recognition.criteria")],
) -> Response:
    """The criteria a decision may cite, with the table's version and source documents;
    each criterion says whether its text is the official wording or our paraphrase (to be
    checked). Also the exclusion codes a withdrawal gives."""
    return model_response(service.CRITERIA_TABLE)
