"""The change feed's queries: positions from a cursor, and what each partner was handed."""

import uuid
from collections.abc import Sequence

from sqlmodel.ext.asyncio.session import AsyncSession

from app.core.db import driver_connection

# A record as the feed names it: its kind and id.
Ref = tuple[str, uuid.UUID]

FEED_KINDS = ["person", "case"]

SQL_HEAD = "SELECT seq FROM audit_head"
# From a position on, in the order of the audit trail; records written together share a
# number and follow in kind and id order.
SQL_CHANGES = """
SELECT seq, record_type, record_id FROM sync_position
WHERE (seq, record_type, record_id) > ($1, $2, $3) AND record_type = ANY($4::text[])
ORDER BY seq, record_type, record_id
LIMIT $5
"""
SQL_DELIVERED = """
SELECT d.record_type, d.record_id
FROM sync_delivered d
JOIN unnest($2::text[], $3::uuid[]) AS asked(record_type, record_id)
  ON asked.record_type = d.record_type AND asked.record_id = d.record_id
WHERE d.partner_id = $1
"""
SQL_DELIVER = """
INSERT INTO sync_delivered (partner_id, record_type, record_id)
SELECT $1, record_type, record_id FROM unnest($2::text[], $3::uuid[]) AS r(record_type, record_id)
ON CONFLICT DO NOTHING
"""
SQL_DELIVERED_AFTER = """
SELECT record_type, record_id FROM sync_delivered
WHERE partner_id = $1 AND (record_type, record_id) > ($2, $3)
ORDER BY record_type, record_id
LIMIT $4
"""


async def head(session: AsyncSession) -> int:
    """The audit trail's last number: every write up to it is committed and visible."""
    driver = await driver_connection(session)
    seq = await driver.fetchval(SQL_HEAD)
    return int(seq)


async def changes_after(
    session: AsyncSession, after: tuple[int, str, uuid.UUID], limit: int
) -> list[tuple[int, str, uuid.UUID]]:
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_CHANGES, *after, FEED_KINDS, limit)
    return [(row["seq"], row["record_type"], row["record_id"]) for row in rows]


async def delivered(session: AsyncSession, partner_id: uuid.UUID, refs: Sequence[Ref]) -> set[Ref]:
    if not refs:
        return set()
    driver = await driver_connection(session)
    rows = await driver.fetch(
        SQL_DELIVERED, partner_id, [kind for kind, _ in refs], [ref_id for _, ref_id in refs]
    )
    return {(row["record_type"], row["record_id"]) for row in rows}


async def deliver(session: AsyncSession, partner_id: uuid.UUID, refs: Sequence[Ref]) -> None:
    if not refs:
        return
    driver = await driver_connection(session)
    await driver.execute(
        SQL_DELIVER, partner_id, [kind for kind, _ in refs], [ref_id for _, ref_id in refs]
    )


async def delivered_after(
    session: AsyncSession, partner_id: uuid.UUID, after: Ref, limit: int
) -> list[Ref]:
    driver = await driver_connection(session)
    rows = await driver.fetch(SQL_DELIVERED_AFTER, partner_id, *after, limit)
    return [(row["record_type"], row["record_id"]) for row in rows]
