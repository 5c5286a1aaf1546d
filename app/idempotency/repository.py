import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.clock import utcnow
from app.core.ids import new_id
from app.idempotency.models import IdempotencyRecord


async def claim(session: AsyncSession, scope: str, key: str, fingerprint: str) -> uuid.UUID | None:
    """Insert the key, or return None if it exists.

    A concurrent request holding the same key makes this wait on the unique index until it
    commits (then None) or rolls back (then this claim succeeds).
    """
    stmt = (
        insert(IdempotencyRecord)
        .values(id=new_id(), scope=scope, key=key, fingerprint=fingerprint, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(col(IdempotencyRecord.id))
    )
    claimed: uuid.UUID | None = (await session.exec(stmt)).scalar_one_or_none()
    return claimed


async def find(session: AsyncSession, scope: str, key: str) -> IdempotencyRecord | None:
    stmt = select(IdempotencyRecord).where(
        IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
    )
    return (await session.exec(stmt)).first()


async def remove(session: AsyncSession, record_id: uuid.UUID) -> None:
    await session.exec(delete(IdempotencyRecord).where(col(IdempotencyRecord.id) == record_id))


async def store(
    session: AsyncSession,
    record_id: uuid.UUID,
    status_code: int,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    await session.exec(
        update(IdempotencyRecord)
        .where(col(IdempotencyRecord.id) == record_id)
        .values(status_code=status_code, response_body=body, response_headers=headers)
    )
