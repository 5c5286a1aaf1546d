"""Use cases of the audit trail: search, verification, checkpoints, record history."""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlmodel.ext.asyncio.session import AsyncSession

from app.audit import repository
from app.audit.models import AuditEvent
from app.audit.schemas import checkpoint_read
from app.audit.verification import Checkpoint, Report, statement_bytes, verify
from app.core.clock import utcnow
from app.core.crypto import AuditKeyRing, public_key_text
from app.core.db import driver_connection
from app.core.errors import Conflict
from app.core.pagination import cursor_int, decode_cursor, query_fingerprint, trim_page


@dataclass(frozen=True)
class EventPage:
    items: list[AuditEvent]
    next_cursor: str | None


def _before_seq(cursor: str | None, query: dict[str, Any]) -> tuple[int | None, str]:
    fingerprint = query_fingerprint(query)
    if cursor is None:
        return None, fingerprint
    return cursor_int(decode_cursor(cursor, fingerprint, 1)[0]), fingerprint


def _page(rows: list[AuditEvent], limit: int, fingerprint: str) -> EventPage:
    events, next_cursor = trim_page(
        rows, limit=limit, fingerprint=fingerprint, position=lambda event: [event.seq]
    )
    return EventPage(events, next_cursor)


async def search(
    session: AsyncSession, conditions: dict[str, Any], *, cursor: str | None, limit: int
) -> EventPage:
    query = {name: str(value) for name, value in conditions.items()}
    before, fingerprint = _before_seq(cursor, {"audit": query})
    rows = await repository.search(session, conditions, before_seq=before, limit=limit + 1)
    return _page(rows, limit, fingerprint)


async def changes_to(
    session: AsyncSession, record_id: uuid.UUID, *, cursor: str | None, limit: int
) -> EventPage:
    before, fingerprint = _before_seq(cursor, {"history": str(record_id)})
    rows = await repository.changes_to(session, record_id, before_seq=before, limit=limit + 1)
    return _page(rows, limit, fingerprint)


def entries_about(event: AuditEvent, record_id: uuid.UUID) -> list[dict[str, Any]]:
    """The changes of an event that concern one record: its own, and, when the event was
    about it (or the change names it as its case file or person), those of its parts."""
    key = str(record_id)
    about_record = event.resource_id == record_id
    return [
        entry
        for entry in event.changes or []
        if about_record
        or entry.get("id") == key
        or any(
            entry.get("fields", {}).get(name, {}).get("after") == key
            for name in ("case_file_id", "person_id")
        )
    ]


async def verify_chain(
    session: AsyncSession,
    public_keys: Mapping[str, Ed25519PublicKey],
    saved: Sequence[Checkpoint] = (),
) -> Report:
    """The whole chain, against every stored checkpoint and any saved elsewhere."""
    checkpoints = [*await repository.checkpoints(session), *saved]
    return await verify(await driver_connection(session), checkpoints, public_keys)


async def checkpoint(session: AsyncSession, keys: AuditKeyRing) -> Checkpoint:
    """Sign the head of the chain, after verifying everything since the last checkpoint
    (a head is never vouched for unless the history behind it holds)."""
    latest = await repository.latest_checkpoint(session)
    public_keys = keys.public_keys()
    if latest is not None and not latest.signed_by(public_keys):
        latest = None
    checkpoints = await repository.checkpoints(session)
    report = await verify(await driver_connection(session), checkpoints, public_keys, since=latest)
    if not report.ok:
        raise Conflict(
            "The audit trail does not verify; no checkpoint was signed.",
            first_bad_seq=report.first_bad_seq,
            problem=report.problem,
        )
    if latest is not None and latest.seq == report.head_seq:
        return latest
    if report.head_seq == 0:
        raise Conflict("The audit trail is empty; there is nothing to sign yet.")
    head_hash = bytes.fromhex(report.head_hash)
    signed_at: datetime = utcnow()
    # The key id is part of the statement, so it is chosen before signing.
    key_id = keys.active_kid
    signing_kid, signature = keys.sign(
        statement_bytes(report.head_seq, head_hash, signed_at=signed_at, key_id=key_id)
    )
    if signing_kid != key_id:  # the key file changed between the two calls; try again later
        raise Conflict("The audit key changed while signing; try again.")
    made = Checkpoint(report.head_seq, head_hash, signed_at, key_id, signature)
    await repository.add_checkpoint(session, made)
    stored = await repository.checkpoint_at(session, made.seq, key_id)
    return stored or made


def checkpoint_document(made: Checkpoint, keys: AuditKeyRing) -> dict[str, Any]:
    """A checkpoint as it is handed out to be kept elsewhere (`habeas audit checkpoint
    --out`, the worker's export): the signed statement and the public key that verifies it
    (whoever keeps it pins that key rather than trusting it from the file)."""
    key = keys.public_keys().get(made.key_id)
    return checkpoint_read(made, public_key_text(key) if key else None).model_dump()
