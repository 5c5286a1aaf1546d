import uuid
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
from app.core.errors import PROBLEM_JSON, BatchConflict, BatchRejected, Conflict, DomainError
from app.core.http import DataKeys, model_response, required_idempotency_key, settings_of
from app.core.pagination import digits_only
from app.idempotency.http import IdempotentCreate
from app.idempotency.service import StoredResponse
from app.identity.http import Requires, authenticate, requires
from app.sync import push, service, webhooks
from app.sync.models import SyncWebhook
from app.sync.schemas import (
    POSITION_FIELDS,
    BatchInput,
    BatchItemProblem,
    BatchResult,
    FeedPage,
    WebhookCreate,
    WebhookList,
    WebhookRead,
    WebhookWithSecret,
)

router = APIRouter(prefix="/sync", tags=["sync"])
READS_THE_FEED = Requires("sync.read")
WRITES = Requires("sync.write")

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
    page, seen = await service.read_changes(session, caller, keys, cursor=cursor, limit=limit)
    _record(session, seen)
    # The items are FeedPage's, already as JSON values (each was made once, for its hash).
    return Response(orjson.dumps(page.document()), media_type="application/json")


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
                page, seen = await service.read_changes(
                    session, caller, keys, cursor=cursor, limit=limit
                )
                _record(session, seen)
                await commit(session)
        except DomainError as refusal:
            # The token expired or the partner was disabled meanwhile: the partner
            # resumes from its last position line.
            yield orjson.dumps({"problem": refusal.to_problem(request.url.path)}) + b"\n"
            return
        document = page.document()
        position = {key: document[key] for key in POSITION_FIELDS}
        # A page's lines sent as one piece: a piece a line cost a write to the socket and
        # a turn of the server's loop each (a stream read half the records a second).
        yield b"".join(orjson.dumps(line) + b"\n" for line in [*document["items"], position])
        if page.caught_up:
            return
        cursor = page.next


# A refusal of a batch lists its operations' problems in `items`; the other refusals of
# the same status (a key in flight, the body not valid) are plain problem documents.
BATCH_PROBLEM_SCHEMA: dict[str, Any] = {
    "allOf": [
        {"$ref": "#/components/schemas/Problem"},
        {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": BatchItemProblem.model_json_schema()}
            },
        },
    ]
}


@router.post(
    "/batches",
    response_model=BatchResult,
    responses={
        200: {"description": "Every operation applied, in one transaction"},
        409: {
            "description": "Records the batch changes changed since the versions it names "
            f"(`{BatchConflict.slug}`): nothing applied; `items` gives each one's "
            "`current_version` and `current` values. Read them, then send a new batch. Or "
            f"another batch of the partner is being applied (`{Conflict.slug}`): send this "
            "one after it",
            "content": {PROBLEM_JSON: {"schema": BATCH_PROBLEM_SCHEMA}},
        },
        422: {
            "description": f"Operations that cannot apply (`{BatchRejected.slug}`): an "
            "unknown external id, a record outside the agreement, a field above its tier, a "
            "transition the path refuses, a likely duplicate …; nothing applied; `items` "
            "gives each operation's problem. Or the body, Idempotency-Key or the number of "
            "operations is not valid; or the key was used for another body",
            "content": {PROBLEM_JSON: {"schema": BATCH_PROBLEM_SCHEMA}},
        },
    },
)
async def push_batch(
    body: BatchInput,
    request: Request,
    session: SessionDep,
    keys: DataKeys,
    key: Annotated[str, Depends(required_idempotency_key)],
    caller: Annotated[Caller, Depends(WRITES)],
) -> Response:
    """Apply a batch of the partner's changes: create and update persons and case files,
    record status events and claims, propose recognition, naming records by the partner's
    own external ids (or by our ids), in order, all in one transaction or none
    (docs/sync.md). Requires the scopes `sync:write` and `sync:read` and a read-write
    agreement; each operation reaches only the records the agreement shares, fields up to
    its tier. Events enter as `reported` (claims as `unconfirmed`) unless the agreement
    trusts the partner's confirmations; each is attributed to the partner.

    The Idempotency-Key is required: the same key and body answer the same (applied
    once), the same key with another body 422, while the first is still running 409."""

    async def produce() -> StoredResponse:
        result = await push.apply(session, caller, keys, body)
        return StoredResponse(200, result.model_dump(mode="json"))

    once = IdempotentCreate(request, session, key)
    return await once.run([body.model_dump(mode="json")], produce, refuse_in_flight=True)


def _webhook_read(webhook: SyncWebhook, secret: str | None = None) -> WebhookRead:
    values = WebhookRead.model_validate(webhook).model_dump()
    if secret is None:
        return WebhookRead.model_validate(values)
    return WebhookWithSecret.model_validate({**values, "secret": secret})


@router.post("/webhooks", status_code=201, response_model=WebhookWithSecret)
async def register_webhook(
    body: WebhookCreate,
    request: Request,
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("sync.webhook_manage")],
) -> Response:
    """Register an endpoint to be told when the feed has something new for the partner
    (`{"type": "sync.changes", "data": {"position": …}}`, never the data itself: then read
    `/sync/changes` from your cursor). Messages are signed following the Standard
    Webhooks specification with the secret answered here, once; a failing endpoint is
    retried with backoff and, after many failures in a row, disabled."""
    registered = await webhooks.register(session, caller, keys, settings_of(request), body.url)
    return model_response(_webhook_read(registered.webhook, registered.secret), status_code=201)


@router.get("/webhooks", response_model=WebhookList)
async def list_webhooks(
    session: SessionDep, caller: Annotated[Caller, requires("sync.webhook_list")]
) -> Response:
    """A partner's endpoints (an admin: every partner's), disabled ones included with why."""
    found = await webhooks.listed(session, caller)
    return model_response(WebhookList(items=[_webhook_read(webhook) for webhook in found]))


@router.post("/webhooks/{webhook_id}/secret", status_code=201, response_model=WebhookWithSecret)
async def rotate_webhook_secret(
    webhook_id: uuid.UUID,
    session: SessionDep,
    keys: DataKeys,
    caller: Annotated[Caller, requires("sync.webhook_manage")],
) -> Response:
    """A new signing secret, answered once. The previous one signs each message too for
    24 hours (`webhook-signature` carries both), so that the receiver can switch."""
    registered = await webhooks.rotate(session, caller, keys, webhook_id)
    return model_response(_webhook_read(registered.webhook, registered.secret), status_code=201)


@router.delete("/webhooks/{webhook_id}", status_code=204)
async def remove_webhook(
    webhook_id: uuid.UUID,
    session: SessionDep,
    caller: Annotated[Caller, requires("sync.webhook_manage")],
) -> Response:
    """Stop notifying an endpoint (its deliveries stay on record)."""
    await webhooks.remove(session, caller, webhook_id)
    return Response(status_code=204)
