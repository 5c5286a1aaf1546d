import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from app.core.db import SessionDep
from app.core.http import etag, model_response
from app.core.pagination import Page, PageRequest, next_link, page_request
from app.core.types import Label
from app.idempotency.http import IdempotentCreateDep
from app.idempotency.service import StoredResponse
from app.sources import service
from app.sources.schemas import SourceCreate, SourceRead

router = APIRouter(prefix="/sources", tags=["sources"])


@router.post("", status_code=201, response_model=SourceRead)
async def create_source(
    body: SourceCreate, session: SessionDep, request: Request, once: IdempotentCreateDep
) -> Response:
    async def produce() -> StoredResponse:
        source = await service.create(session, body)
        location = request.url_for("read_source", source_id=source.id).path
        return StoredResponse(
            201,
            SourceRead.model_validate(source).model_dump(mode="json"),
            {"Location": location, "ETag": etag(source.version)},
        )

    return await once.run(body.model_dump(mode="json"), produce)


@router.get("/{source_id}", response_model=SourceRead)
async def read_source(source_id: uuid.UUID, session: SessionDep) -> Response:
    source = await service.get(session, source_id)
    return model_response(SourceRead.model_validate(source), headers={"ETag": etag(source.version)})


@router.get("", response_model=Page[SourceRead])
async def list_sources(
    session: SessionDep,
    request: Request,
    paging: Annotated[PageRequest, Depends(page_request)],
    publisher: Label | None = None,
) -> Response:
    found = await service.list_sources(session, publisher, paging.cursor, paging.limit)
    return model_response(
        Page[SourceRead](
            items=[SourceRead.model_validate(s) for s in found.items],
            next=next_link(request, found.next_cursor),
        )
    )
