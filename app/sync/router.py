from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BeforeValidator

from app.access.caller import Caller
from app.audit.journal import journal_of
from app.core.db import SessionDep
from app.core.http import DataKeys, model_response
from app.core.pagination import digits_only
from app.identity.http import requires
from app.sync import service
from app.sync.schemas import FeedPage

router = APIRouter(prefix="/sync", tags=["sync"])

FEED_PAGE_DEFAULT = 100
FEED_PAGE_MAX = 500


@router.get("/changes", response_model=FeedPage)
async def read_changes(
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("sync.read")],
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
    the last `next`, and ask again from it later: no change is ever missed."""
    page, excluded, seen = await service.read_changes(
        session, caller, keys, cursor=cursor, limit=limit
    )
    journal = journal_of(session)
    journal.viewed_page("sync.read", "sync", seen)
    # What the partner was handed is kept with the page: a crash must not forget it.
    journal.keep_durable()
    return model_response(page, exclude=excluded)
