import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from app.access.caller import Caller
from app.core.db import SessionDep
from app.core.http import model_response
from app.core.pagination import PageRequest, next_link, page_request
from app.identity.http import requires
from app.mirrors import service
from app.mirrors.repository import Mirrored
from app.mirrors.schemas import (
    MirroredKind,
    MirroredPage,
    MirroredRecord,
    MirroredState,
    MirrorList,
    MirrorRead,
)

router = APIRouter(prefix="/mirrors", tags=["mirrors"])


@router.get("", response_model=MirrorList)
async def list_mirrors(
    session: SessionDep, caller: Annotated[Caller, requires("mirror.list")]
) -> Response:
    """The instances this one mirrors (`habeas sync pull`), where each one's feed was read
    up to, and how many of its records it shares now."""
    found = await service.listed(session, caller)
    return model_response(MirrorList(items=[MirrorRead.model_validate(row) for row in found]))


@router.get("/{mirror_id}/records", response_model=MirroredPage)
async def list_mirrored_records(
    mirror_id: uuid.UUID,
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    caller: Annotated[Caller, requires("mirror.read")],
    kind: Annotated[MirroredKind, Query(description="Persons or case files.")],
    state: Annotated[
        list[MirroredState] | None,
        Query(description="Only records in these states (default: `live`, those shared now)."),
    ] = None,
) -> Response:
    """An upstream's records as its feed handed them, kept apart from our own case files
    (they count in none of our figures), with where and when each was handed over."""
    states = sorted({chosen.value for chosen in state or [MirroredState.live]})
    rows, next_cursor = await service.records(
        session, caller, mirror_id, kind=kind.value, states=states, page=paging
    )
    return model_response(
        MirroredPage(
            items=[_record_read(row) for row in rows], next=next_link(request, next_cursor)
        )
    )


def _record_read(row: Mirrored) -> MirroredRecord:
    return MirroredRecord(
        id=row.id,
        kind=MirroredKind(row.kind),
        upstream_id=row.upstream_record_id,
        state=MirroredState(row.state),
        record=row.body,
        merged_into=row.merged_into,
        merged_into_here=row.merged_into_here,
        upstream_seq=row.upstream_seq,
        received_at=row.received_at,
    )
