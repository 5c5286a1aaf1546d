"""Queries on the audit trail (appends are in app/audit/chain.py)."""

import uuid
from typing import Any

from sqlalchemy import ColumnElement, or_
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit.models import AuditCheckpoint, AuditEvent
from app.audit.verification import Checkpoint


def _touching(record_id: uuid.UUID) -> ColumnElement[bool]:
    return or_(
        col(AuditEvent.resource_id) == record_id,
        col(AuditEvent.related).contains([record_id]),
    )


async def search(
    session: AsyncSession, conditions: dict[str, Any], *, before_seq: int | None, limit: int
) -> list[AuditEvent]:
    """Newest first. `conditions` holds the filters that are set."""
    stmt = select(AuditEvent)
    if "actor_id" in conditions:
        stmt = stmt.where(col(AuditEvent.actor_id) == conditions["actor_id"])
    if "resource_id" in conditions:
        stmt = stmt.where(_touching(conditions["resource_id"]))
    if "resource_type" in conditions:
        stmt = stmt.where(col(AuditEvent.resource_type) == conditions["resource_type"])
    if "action" in conditions:
        stmt = stmt.where(col(AuditEvent.action) == conditions["action"])
    if "outcome" in conditions:
        stmt = stmt.where(col(AuditEvent.outcome) == conditions["outcome"])
    if "since" in conditions:
        stmt = stmt.where(col(AuditEvent.occurred_at) >= conditions["since"])
    if "until" in conditions:
        stmt = stmt.where(col(AuditEvent.occurred_at) < conditions["until"])
    if before_seq is not None:
        stmt = stmt.where(col(AuditEvent.seq) < before_seq)
    stmt = stmt.order_by(col(AuditEvent.seq).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


def _changed(record_id: uuid.UUID) -> ColumnElement[bool]:
    """The event is about the record, or one of its changes is to the record or names it
    as its case file or person (a status event, a new case file). An event that only
    touched the record (a status change of a person's case file) did not change it."""
    key = str(record_id)
    changes = col(AuditEvent.changes)
    return or_(
        col(AuditEvent.resource_id) == record_id,
        changes.contains([{"id": key}]),
        *(
            changes.contains([{"fields": {name: {"after": key}}}])
            for name in ("case_file_id", "person_id")
        ),
    )


async def changes_to(
    session: AsyncSession, record_id: uuid.UUID, *, before_seq: int | None, limit: int
) -> list[AuditEvent]:
    """The successful writes that changed a record, newest first."""
    stmt = select(AuditEvent).where(
        _touching(record_id),
        _changed(record_id),
        col(AuditEvent.outcome) == "success",
        col(AuditEvent.changes).is_not(None),
    )
    if before_seq is not None:
        stmt = stmt.where(col(AuditEvent.seq) < before_seq)
    stmt = stmt.order_by(col(AuditEvent.seq).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


def _checkpoint(row: AuditCheckpoint) -> Checkpoint:
    return Checkpoint(row.seq, row.head_hash, row.signed_at, row.key_id, row.signature)


async def checkpoints(session: AsyncSession) -> list[Checkpoint]:
    rows = await session.exec(select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq)))
    return [_checkpoint(row) for row in rows]


async def latest_checkpoint(session: AsyncSession) -> Checkpoint | None:
    stmt = select(AuditCheckpoint).order_by(col(AuditCheckpoint.seq).desc()).limit(1)
    row = (await session.exec(stmt)).first()
    return _checkpoint(row) if row is not None else None


async def add_checkpoint(session: AsyncSession, checkpoint: Checkpoint) -> None:
    # The same head signed twice by the same key (two requests at once) is kept once.
    stmt = (
        insert(AuditCheckpoint)
        .values(
            seq=checkpoint.seq,
            key_id=checkpoint.key_id,
            head_hash=checkpoint.head_hash,
            signed_at=checkpoint.signed_at,
            signature=checkpoint.signature,
        )
        .on_conflict_do_nothing(index_elements=["seq", "key_id"])
    )
    await session.exec(stmt)


async def checkpoint_at(session: AsyncSession, seq: int, key_id: str) -> Checkpoint | None:
    row = await session.get(AuditCheckpoint, (seq, key_id))
    return _checkpoint(row) if row is not None else None
