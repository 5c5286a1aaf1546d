"""Exactly-once creates: a repeated Idempotency-Key replays the stored response.

The key, the request's fingerprint and the response are stored in the request's own
transaction, so a create and its record commit (or vanish) together.
"""

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.errors import IdempotencyInFlight, IdempotencyKeyReused
from app.idempotency import repository


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    replayed: bool = False


def fingerprint(*parts: Any) -> str:
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def respond_once(
    session: AsyncSession,
    *,
    scope: str,
    key: str | None,
    request_fingerprint: str,
    retention: timedelta,
    produce: Callable[[], Awaitable[StoredResponse]],
    before_replay: Callable[[], Awaitable[None]] | None = None,
) -> StoredResponse:
    """Run `produce` once per key. A repeat gets the stored response, after `before_replay`
    (if given) confirms the caller may still see what it holds."""
    if key is None:
        return await produce()
    record_id = await repository.claim(
        session, scope, key, request_fingerprint, expired_before=utcnow() - retention
    )
    if record_id is None:
        existing = await repository.find(session, scope, key)
        if existing is None or existing.status_code is None or existing.response_body is None:
            raise IdempotencyInFlight("Retry in a moment.")
        if existing.fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request; use a new key."
            )
        if before_replay is not None:
            await before_replay()
        return StoredResponse(
            existing.status_code,
            existing.response_body,
            existing.response_headers or {},
            replayed=True,
        )
    response = await produce()
    await repository.store(
        session, record_id, response.status_code, response.body, response.headers
    )
    return response
