"""/audit: search the trail, verify it, get signed checkpoints (auditors)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from app.access.caller import Caller
from app.access.principal import Tier
from app.audit import service
from app.audit.http import own_reads_appended
from app.audit.journal import journal_of
from app.audit.schemas import (
    AuditEventRead,
    CheckpointRead,
    VerificationRead,
    checkpoint_read,
    event_read,
    verification_read,
)
from app.core.crypto import public_key_text
from app.core.dates import IsoMoment
from app.core.db import SessionDep
from app.core.http import AuditKeys, model_response
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.core.types import Label
from app.identity.http import requires

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("/events", response_model=Page[AuditEventRead])
async def search_events(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("audit.read")],
    actor_id: uuid.UUID | None = None,
    resource_id: uuid.UUID | None = None,
    resource_type: Label | None = None,
    action: Label | None = None,
    outcome: Label | None = None,
    since: IsoMoment | None = None,
    until: IsoMoment | None = None,
) -> Response:
    """Events newest first. `resource_id` finds the events about a record and those that
    touched or showed it among others (a collective event, a page of a list)."""
    conditions: dict[str, Any] = {
        name: value
        for name, value in {
            "actor_id": actor_id,
            "resource_id": resource_id,
            "resource_type": resource_type,
            "action": action,
            "outcome": outcome,
            "since": since,
            "until": until,
        }.items()
        if value is not None
    }
    await own_reads_appended(request)
    found = await service.search(session, conditions, cursor=paging.cursor, limit=paging.limit)
    # Reading the trail is itself on the record: who looked for whom.
    journal_of(session).viewed(
        "audit.search",
        "audit_event",
        [],
        clearance=Tier.restricted,
        detail={name: str(value) for name, value in conditions.items()},
    )
    return model_response(
        Page[AuditEventRead](
            items=[event_read(event) for event in found.items],
            next=next_link(request, found.next_cursor),
        )
    )


@router.get("/verify", response_model=VerificationRead)
async def verify_chain(
    session: SessionDep, keys: AuditKeys, caller: Annotated[Caller, requires("audit.verify")]
) -> Response:
    """Check the whole chain: contiguous sequence numbers, links, hashes, time order, and
    every stored signed checkpoint. Names the first event that is wrong."""
    report = await service.verify_chain(session, keys.public_keys())
    return model_response(verification_read(report))


@router.get(
    "/checkpoints/latest",
    response_model=CheckpointRead,
    responses={
        409: {
            "description": "The trail does not verify (`first_bad_seq`, `problem`) or is"
            " empty, or the signing key changed while signing (try again): nothing was signed"
        }
    },
)
async def latest_checkpoint(
    session: SessionDep, keys: AuditKeys, caller: Annotated[Caller, requires("audit.verify")]
) -> Response:
    """A signed statement of the chain's head now (made if the head moved since the last
    one, after verifying what was appended since). Keep it outside this system: a history
    rewritten after it will not verify against it."""
    made = await service.checkpoint(session, keys)
    public_key = keys.public_keys().get(made.key_id)
    return model_response(
        checkpoint_read(made, public_key_text(public_key) if public_key is not None else None)
    )
