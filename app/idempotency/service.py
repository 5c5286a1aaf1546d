"""Exactly-once creates: a repeated Idempotency-Key replays the stored response.

The key, the request's fingerprint and the response are stored in the request's own
transaction, so a create and its record commit (or vanish) together. The response is
sealed with the data key ring (it can hold confidential values) and bound to its row;
records older than the retention are purged (`purge_expired`).
"""

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.crypto import AuditKeyRing, DataKeyRing
from app.core.errors import IdempotencyInFlight, IdempotencyKeyReused
from app.idempotency import repository

# Where the sealed response lives: the associated data of its envelope names it.
SEALED_AT = ("idempotency_record", "response_sealed")


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


# On a replay: checks that the caller may still see what the stored response shows, and
# answers what they may see now (a create re-renders its record for the caller's present
# clearance, which may have dropped since).
Replay = Callable[[StoredResponse], Awaitable[StoredResponse]]


def after_check(check: Callable[[], Awaitable[object]]) -> Replay:
    """A replay of the stored response as it is, once `check` has passed."""

    async def replay(stored: StoredResponse) -> StoredResponse:
        await check()
        return stored

    return replay


@dataclass(frozen=True)
class RequestFingerprint:
    """A keyed digest of a request (its body can hold confidential values, which a plain
    hash would let anyone holding a copy of the database confirm by guessing). `stored`
    is kept; a retry matches if its digest under any key in the ring is the stored one."""

    stored: str
    accepted: frozenset[str]


def fingerprint(keys: AuditKeyRing, *parts: Any) -> RequestFingerprint:
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    digests = keys.digests(canonical.encode())
    return RequestFingerprint(digests[0], frozenset(digests))


async def respond_once(
    session: AsyncSession,
    *,
    keys: DataKeyRing,
    scope: str,
    key: str | None,
    request_fingerprint: RequestFingerprint,
    retention: timedelta,
    produce: Callable[[], Awaitable[StoredResponse]],
    replay: Replay | None = None,
    refuse_in_flight: bool = False,
) -> StoredResponse:
    """Run `produce` once per key. A repeat gets the stored response, passed through
    `replay` (if given). A repeat while the first request still runs waits for it and
    then gets its response; with `refuse_in_flight`, it is refused at once (409): for
    requests long enough that a client should not be kept waiting (a partner's batch)."""
    if key is None:
        return await produce()
    if refuse_in_flight and not await repository.try_hold(session, scope, key):
        raise IdempotencyInFlight("A request with this Idempotency-Key is still running.")
    record_id = await repository.claim(
        session,
        scope,
        key,
        fingerprint=request_fingerprint.stored,
        expired_before=utcnow() - retention,
    )
    if record_id is None:
        existing = await repository.find(session, scope, key)
        if existing is None or existing.status_code is None or existing.response_sealed is None:
            raise IdempotencyInFlight("Retry in a moment.")
        if existing.fingerprint not in request_fingerprint.accepted:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request; use a new key."
            )
        stored = StoredResponse(
            existing.status_code,
            keys.open_json(*SEALED_AT, existing.id, envelope=existing.response_sealed),
            existing.response_headers or {},
        )
        if replay is not None:
            stored = await replay(stored)
        return StoredResponse(stored.status_code, stored.body, stored.headers, replayed=True)
    response = await produce()
    await repository.store(
        session,
        record_id,
        status_code=response.status_code,
        sealed_body=keys.seal_json(*SEALED_AT, record_id, value=response.body),
        headers=response.headers,
    )
    return response


async def purge_expired(session: AsyncSession, retention: timedelta) -> int:
    """Delete the records whose key can no longer be replayed; how many went."""
    return await repository.delete_created_before(session, utcnow() - retention)
