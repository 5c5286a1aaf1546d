import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.access.caller import Caller
from app.access.tiers import hidden_fields, page_exclusion
from app.audit.journal import journal_of
from app.core.db import SessionDep
from app.core.http import (
    ETAG_HEADER,
    LOCATION_HEADER,
    DataKeys,
    documented_headers,
    etag,
    model_response,
)
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.core.types import Label
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse
from app.identity.http import requires
from app.sources import service
from app.sources.schemas import SourceCreate, SourceRead

router = APIRouter(prefix="/sources", tags=["sources"])


@router.post(
    "",
    status_code=201,
    response_model=SourceRead,
    responses=documented_headers(201, ETAG_HEADER, LOCATION_HEADER),
)
async def create_source(
    body: SourceCreate,
    session: SessionDep,
    request: Request,
    once: IdempotentCreateDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("source.create")],
) -> Response:
    def created(view: service.SourceView) -> StoredResponse:
        location = request.url_for("read_source", source_id=view.source.id).path
        return StoredResponse(
            201,
            view.read().model_dump(mode="json", exclude=hidden_fields("source", view.clearance)),
            {"Location": location, "ETag": etag(view.source.version)},
        )

    async def produce() -> StoredResponse:
        return created(await service.create(session, caller, keys=keys, data=body))

    async def replay(stored: StoredResponse) -> StoredResponse:
        # The source as the caller may see it now, never the stored copy.
        record_id = uuid.UUID(stored.body["id"])
        journal = journal_of(session)
        journal.subject = ("source", record_id)
        view = await service.get(session, caller, record_id, keys=keys)
        journal.viewed("source.read", "source", [view.source.id], clearance=view.clearance)
        return created(view)

    return await once.run(body.model_dump(mode="json"), produce, replay)


@router.get(
    "/{source_id}", response_model=SourceRead, responses=documented_headers(200, ETAG_HEADER)
)
async def read_source(
    source_id: uuid.UUID,
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("source.read")],
) -> Response:
    view = await service.get(session, caller, source_id, keys=keys)
    journal_of(session).viewed("source.read", "source", [source_id], clearance=view.clearance)
    return model_response(
        view.read(),
        headers={"ETag": etag(view.source.version)},
        exclude=hidden_fields("source", view.clearance),
    )


@router.get("", response_model=Page[SourceRead])
async def list_sources(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    keys: DataKeys,
    caller: Annotated[Caller, requires("source.list")],
    publisher: Label | None = None,
) -> Response:
    found = await service.list_sources(
        session, caller, keys=keys, publisher=publisher, cursor=paging.cursor, limit=paging.limit
    )
    journal_of(session).viewed_page(
        "source.list", "source", [(view.source.id, view.clearance) for view in found.items]
    )
    return model_response(
        Page[SourceRead](
            items=[view.read() for view in found.items],
            next=next_link(request, found.next_cursor),
        ),
        exclude=page_exclusion("source", [view.clearance for view in found.items]),
    )
