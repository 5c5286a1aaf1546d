"""The change feed's queries: positions from a cursor, and what each partner was handed."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection
from app.sync.models import SyncWebhook, SyncWebhookDelivery

# A record as the feed names it: its kind and id.
Ref = tuple[str, uuid.UUID]

FEED_KINDS = ["person", "case"]

SQL_HEAD = "SELECT seq, hash FROM audit_head"
SQL_HASH_AT = "SELECT hash FROM audit_event WHERE seq = $1"
# From a position on, in the order of the audit trail; records written together share a
# number and follow in kind and id order.
SQL_CHANGES = """
SELECT seq, record_type, record_id FROM sync_position
WHERE (seq, record_type, record_id) > ($1, $2, $3) AND record_type = ANY($4::text[])
ORDER BY seq, record_type, record_id
LIMIT $5
"""
SQL_DELIVERED = """
SELECT d.record_type, d.record_id, d.content_hash, d.delivered_seq, d.in_snapshot
FROM sync_delivered d
JOIN unnest($2::text[], $3::uuid[]) AS asked(record_type, record_id)
  ON asked.record_type = d.record_type AND asked.record_id = d.record_id
WHERE d.partner_id = $1
"""
SQL_DELIVER = """
INSERT INTO sync_delivered
    (partner_id, record_type, record_id, content_hash, delivered_seq, in_snapshot)
SELECT $1, r.*
FROM unnest($2::text[], $3::uuid[], $4::bytea[], $5::bigint[], $6::boolean[]) AS r
ON CONFLICT (partner_id, record_type, record_id) DO UPDATE
SET content_hash = EXCLUDED.content_hash, delivered_seq = EXCLUDED.delivered_seq,
    in_snapshot = EXCLUDED.in_snapshot
"""
SQL_DELIVERED_AFTER = """
SELECT record_type, record_id FROM sync_delivered
WHERE partner_id = $1 AND (record_type, record_id) > ($2, $3)
ORDER BY record_type, record_id
LIMIT $4
"""


async def head(session: AsyncSession) -> tuple[int, bytes]:
    """The audit trail's last number and hash: every write up to it is committed and
    visible."""
    driver = await driver_connection(session)
    row = await driver.fetchrow(SQL_HEAD)
    assert row is not None
    return int(row["seq"]), bytes(row["hash"])


async def hash_at(session: AsyncSession, seq: int) -> bytes | None:
    """The hash of the audit event numbered `seq`, if there is one."""
    driver = await driver_connection(session)
    found = await driver.fetchval(SQL_HASH_AT, seq)
    return None if found is None else bytes(found)


async def changes_after(
    session: AsyncSession, after: tuple[int, str, uuid.UUID], limit: int
) -> list[tuple[int, str, uuid.UUID]]:
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_CHANGES, *after, FEED_KINDS, limit)
    return [(row["seq"], row["record_type"], row["record_id"]) for row in rows]


@dataclass(frozen=True)
class Delivered:
    content_hash: bytes
    seq: int
    in_snapshot: bool


async def delivered(
    session: AsyncSession, partner_id: uuid.UUID, refs: Sequence[Ref]
) -> dict[Ref, Delivered]:
    """What the partner was last handed of each of these records (none: never)."""
    if not refs:
        return {}
    driver = await driver_connection(session)
    rows = await driver.fetch(
        SQL_DELIVERED, partner_id, [kind for kind, _ in refs], [ref_id for _, ref_id in refs]
    )
    return {
        (row["record_type"], row["record_id"]): Delivered(
            bytes(row["content_hash"]), row["delivered_seq"], row["in_snapshot"]
        )
        for row in rows
    }


async def deliver(
    session: AsyncSession, partner_id: uuid.UUID, handed: Sequence[tuple[Ref, Delivered]]
) -> None:
    if not handed:
        return
    driver = await driver_connection(session)
    await driver.execute(
        SQL_DELIVER,
        partner_id,
        [kind for (kind, _), _ in handed],
        [record_id for (_, record_id), _ in handed],
        [what.content_hash for _, what in handed],
        [what.seq for _, what in handed],
        [what.in_snapshot for _, what in handed],
    )


async def delivered_after(
    session: AsyncSession, partner_id: uuid.UUID, after: Ref, limit: int
) -> list[Ref]:
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_DELIVERED_AFTER, partner_id, *after, limit)
    return [(row["record_type"], row["record_id"]) for row in rows]


# Batches ---------------------------------------------------------------------------------

# A partner's batches one at a time: a transaction-level lock on the partner's id, in a
# key space of its own (the two-key form of advisory locks never meets the one-key form
# the other locks of the application use).
PARTNER_BATCHES_LOCK_SPACE = 0x68627362  # "hbsb"
SQL_HOLD_PARTNER_BATCHES = (
    f"SELECT pg_try_advisory_xact_lock({PARTNER_BATCHES_LOCK_SPACE}, hashtext($1::uuid::text))"
)
SQL_RECORD_OF_EXTERNAL_ID = """
SELECT record_id FROM sync_external_id
WHERE partner_id = $1 AND record_type = $2 AND external_id = $3
"""
SQL_ADD_EXTERNAL_ID = """
INSERT INTO sync_external_id (partner_id, record_type, external_id, record_id, created_at)
VALUES ($1, $2, $3, $4, now())
"""


async def hold_partner_batches(session: AsyncSession, partner_id: uuid.UUID) -> bool:
    """Hold the partner's turn until the transaction ends; False if another batch of the
    partner holds it."""
    driver = await driver_connection(session)
    return bool(await driver.fetchval(SQL_HOLD_PARTNER_BATCHES, partner_id))


async def record_of_external_id(
    session: AsyncSession, partner_id: uuid.UUID, record_type: str, external_id: str
) -> uuid.UUID | None:
    driver = await driver_connection(session)
    found: uuid.UUID | None = await driver.fetchval(
        SQL_RECORD_OF_EXTERNAL_ID, partner_id, record_type, external_id
    )
    return found


async def add_external_id(
    session: AsyncSession,
    partner_id: uuid.UUID,
    record_type: str,
    external_id: str,
    record_id: uuid.UUID,
) -> None:
    driver = await driver_connection(session)
    await driver.execute(SQL_ADD_EXTERNAL_ID, partner_id, record_type, external_id, record_id)


# Webhooks ---------------------------------------------------------------------------------


async def enabled_webhooks_of(session: AsyncSession, partner_id: uuid.UUID) -> int:
    count = await session.scalar(
        select(func.count()).where(
            col(SyncWebhook.partner_id) == partner_id, col(SyncWebhook.disabled_at).is_(None)
        )
    )
    return int(count or 0)


async def webhooks(session: AsyncSession, partner_id: uuid.UUID | None) -> list[SyncWebhook]:
    """A partner's endpoints, or (None) every partner's, oldest first."""
    query = select(SyncWebhook).order_by(col(SyncWebhook.created_at), col(SyncWebhook.id))
    if partner_id is not None:
        query = query.where(col(SyncWebhook.partner_id) == partner_id)
    return list(await session.exec(query))


async def webhook(
    session: AsyncSession, webhook_id: uuid.UUID, *, skip_locked: bool = False
) -> SyncWebhook | None:
    """The endpoint's row, held until the transaction ends (or None, with `skip_locked`,
    when another transaction holds it)."""
    hold: dict[str, bool] | bool = {"skip_locked": True} if skip_locked else True
    return await session.get(SyncWebhook, webhook_id, with_for_update=hold)


async def due_webhook_ids(session: AsyncSession, now: datetime) -> list[uuid.UUID]:
    """Enabled endpoints with no attempt waiting for a later time."""
    return list(
        await session.exec(
            select(SyncWebhook.id).where(
                col(SyncWebhook.disabled_at).is_(None),
                or_(
                    col(SyncWebhook.next_attempt_at).is_(None),
                    col(SyncWebhook.next_attempt_at) <= now,
                ),
            )
        )
    )


async def earliest_retry(session: AsyncSession, now: datetime) -> datetime | None:
    """When the first enabled endpoint waiting for a retry is due."""
    due: datetime | None = await session.scalar(
        select(func.min(SyncWebhook.next_attempt_at)).where(
            col(SyncWebhook.disabled_at).is_(None), col(SyncWebhook.next_attempt_at) > now
        )
    )
    return due


async def purge_deliveries(session: AsyncSession, before: datetime) -> int:
    """Forget the webhook deliveries attempted before `before`; how many."""
    deleted = await session.exec(
        delete(SyncWebhookDelivery).where(col(SyncWebhookDelivery.attempted_at) < before)
    )
    return deleted.rowcount
