import uuid
from datetime import datetime

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, delete, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.ids import new_id
from app.idempotency.models import IdempotencyRecord


async def claim(
    session: AsyncSession, scope: str, key: str, *, fingerprint: str, expired_before: datetime
) -> uuid.UUID | None:
    """Insert the key (or take over an expired record of it); None if a live one exists.

    A concurrent request holding the same key makes this wait on the unique index until it
    commits (then None) or rolls back (then this claim succeeds).
    """
    fresh = insert(IdempotencyRecord).values(
        id=new_id(), scope=scope, key=key, fingerprint=fingerprint, created_at=utcnow()
    )
    stmt = fresh.on_conflict_do_update(
        index_elements=["scope", "key"],
        set_={
            "id": fresh.excluded.id,
            "fingerprint": fresh.excluded.fingerprint,
            "created_at": fresh.excluded.created_at,
            "status_code": None,
            "response_sealed": None,
            "response_headers": None,
        },
        where=col(IdempotencyRecord.created_at) < expired_before,
    ).returning(col(IdempotencyRecord.id))
    claimed: uuid.UUID | None = (await session.exec(stmt)).scalar_one_or_none()
    return claimed


# Idempotency keys in flight: a key space of their own (the two-key form of advisory locks
# never meets the one-key form the other locks of the application use). Two keys of one
# hash share a lock: the later is refused for a moment as if in flight, and may retry.
KEYS_LOCK_SPACE = 0x68626B79  # "hbky"


async def try_hold(session: AsyncSession, scope: str, key: str) -> bool:
    """Hold the key until the transaction ends, unless another transaction holds it (a
    request with the same key still running): then False, at once."""
    held = await session.exec(
        select(func.pg_try_advisory_xact_lock(KEYS_LOCK_SPACE, func.hashtext(scope + "\n" + key)))
    )
    return bool(held.one())


async def find(session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
    )
    return (await session.exec(stmt)).first()


async def store(
    session: AsyncSession,
    record_id: uuid.UUID,
    *,
    status_code: int,
    sealed_body: bytes | None,
    headers: dict[str, str],
) -> None:
    await session.exec(
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.id) == record_id)
        .values(status_code=status_code, response_sealed=sealed_body, response_headers=headers)
    )


async def delete_created_before(session: AsyncSession, cutoff: datetime) -> int:
    result = await session.exec(
        delete(IdempotencyRecord).where(col(IdempotencyRecord.created_at) < cutoff)
    )
    return int(result.rowcount)
