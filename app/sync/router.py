from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security.utils import get_authorization_scheme_param
from pydantic import BeforeValidator
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from app.access.caller import Caller
from app.audit.journal import journal_of
from app.core.crypto import DataKeyRing
from app.core.db import JOURNAL, SessionDep, commit
from app.core.errors import DomainError
from app.core.http import DataKeys, model_response
from app.core.pagination import digits_only
from app.identity.http import Requires, authenticate
from app.sync import service
from app.sync.schemas import FeedPage

router = APIRouter(prefix="/sync", tags=["sync"])
READS_THE_FEED = Requires("sync.read")

FEED_PAGE_DEFAULT = 100
FEED_PAGE_MAX = 500
NDJSON = "application/x-ndjson"
# Pages one streamed answer holds at most: a partner far behind reconnects from the last
# position line (with a token still valid), so that no stream runs for ever.
STREAMED_PAGES = 2_000


@router.get(
    "/changes",
    response_model=FeedPage,
    responses={
        200: {"content": {NDJSON: {"schema": {"type": "string"}}}, "description": "The page"}
    },
)
async def read_changes(
    request: Request,
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, Depends(READS_THE_FEED)],
    limit: Annotated[
        int,
        Query(ge=1, le=FEED_PAGE_MAX, description="Records per page, at most."),
        BeforeValidator(digits_only),
    ] = FEED_PAGE_DEFAULT,
    cursor: Annotated[
        str | None,
        Query(
            max_length=512,
            description="The `next` of the page before; none to start (with a snapshot of "
            "everything shared).",
        ),
    ] = None,
) -> Response:
    """The partner's change feed: every change to the persons and case files its sharing
    agreement covers, each as the partner may see it now, in the order the changes were
    committed; a record that leaves the agreement arrives as a tombstone, a person merged
    into another as a redirect. Without a cursor (and after the agreement changes) it
    starts with a snapshot of everything shared. Follow `next` until `caught_up`, keep
    the last `next`, and ask again from it later: no change is ever missed (docs/sync.md).

    With `Accept: application/x-ndjson`: the same items, one JSON object a line, page after
    page until caught up (or a bound), each page followed by a position line `{"next": …,
    "phase": …, "caught_up": …, "reset": …}` to resume from. Each page is read in a
    transaction of its own with the token checked again, so the server holds one page at
    a time; a stream whose token expires ends with a line `{"problem": {…}}`: resume from
    the last position with a new token.
    """
    if NDJSON in request.headers.get("accept", ""):
        if cursor is not None:
            # Checked before the answer starts: a damaged cursor is a 400, not a broken stream.
            service.decode_position(cursor, caller.principal.id)
        return StreamingResponse(
            _stream(request, keys, cursor=cursor, limit=limit), media_type=NDJSON
        )
    page, excluded, seen = await service.read_changes(
        session, caller, keys, cursor=cursor, limit=limit
    )
    _record(session, seen)
    return model_response(page, exclude=excluded)


def _record(session: AsyncSession, seen: list[Any]) -> None:
    journal = journal_of(session)
    journal.viewed_page("sync.read", "sync", seen)
    # What the partner was handed is kept with the page: a crash must not forget it.
    journal.keep_durable()


async def _stream(
    request: Request, keys: DataKeyRing, *, cursor: str | None, limit: int
) -> AsyncIterator[bytes]:
    """Pages one after another, each in a unit of work of its own, as separate requests
    would read them; only one page is held at a time."""
    factory: async_sessionmaker[AsyncSession] = request.app.state.session_factory
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token)
    for _ in range(STREAMED_PAGES):
        try:
            async with factory() as session:
                session.info[JOURNAL] = request.app.state.open_journal(request)
                # As each request is: the token, the partner's live agreement, the action.
                principal = await authenticate(request, session, credentials)
                caller = await READS_THE_FEED(request, principal)
                page, excluded, seen = await service.read_changes(
                    session, caller, keys, cursor=cursor, limit=limit
                )
                _record(session, seen)
                await commit(session)
        except DomainError as refusal:
            # The token expired or the partner was disabled meanwhile: the partner
            # resumes from its last position line.
            yield orjson.dumps({"problem": refusal.to_problem(request.url.path)}) + b"\n"
            return
        document = page.model_dump(mode="json", exclude=excluded)
        for item in document["items"]:
            yield orjson.dumps(item) + b"\n"
        position = {key: document[key] for key in ("next", "phase", "caught_up", "reset")}
        yield orjson.dumps(position) + b"\n"
        if page.caught_up:
            return
        cursor = page.next
