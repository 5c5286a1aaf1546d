"""What the audit API answers with."""

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from app.audit.models import AuditEvent
from app.audit.verification import Checkpoint, Report
from app.core.types import OUTPUT


class ActorRead(BaseModel):
    model_config = OUTPUT

    type: str
    id: uuid.UUID | None
    role: str | None


class ChangedRecord(BaseModel):
    """Which fields of which record an event changed; auditors see no values."""

    model_config = OUTPUT

    type: str
    id: str
    fields: list[str]


class AuditEventRead(BaseModel):
    model_config = OUTPUT

    seq: int
    occurred_at: datetime
    actor: ActorRead
    action: str
    outcome: str
    resource_type: str | None
    resource_id: uuid.UUID | None
    related: list[uuid.UUID]
    request_id: str | None
    client_address: str | None
    user_agent: str | None
    changed: list[ChangedRecord]
    detail: dict[str, Any] | None
    hash: str


def _actor(event: AuditEvent) -> ActorRead:
    return ActorRead(type=event.actor_type, id=event.actor_id, role=event.actor_role)


def event_read(event: AuditEvent) -> AuditEventRead:
    return AuditEventRead(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor=_actor(event),
        action=event.action,
        outcome=event.outcome,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        related=list(event.related),
        request_id=event.request_id,
        client_address=event.client_address,
        user_agent=event.user_agent,
        changed=[
            ChangedRecord(type=entry["type"], id=entry["id"], fields=sorted(entry["fields"]))
            for entry in event.changes or []
        ],
        detail=event.detail,
        hash=event.hash.hex(),
    )


class FieldChange(BaseModel):
    model_config = OUTPUT

    before: Any
    after: Any


class RecordChange(BaseModel):
    model_config = OUTPUT

    type: str
    id: str
    fields: dict[str, FieldChange]


class HistoryEntry(BaseModel):
    """One write that touched the record, field by field (confidential values appear as
    keyed fingerprints)."""

    model_config = OUTPUT

    seq: int
    occurred_at: datetime
    actor: ActorRead
    action: str
    request_id: str | None
    changes: list[RecordChange]


def history_entry(event: AuditEvent, changes: list[dict[str, Any]]) -> HistoryEntry:
    return HistoryEntry(
        seq=event.seq,
        occurred_at=event.occurred_at,
        actor=_actor(event),
        action=event.action,
        request_id=event.request_id,
        changes=[RecordChange.model_validate(entry) for entry in changes],
    )


class RecordHistory(BaseModel):
    model_config = OUTPUT

    record_id: uuid.UUID
    entries: list[HistoryEntry]
    next: str | None


class VerificationRead(BaseModel):
    model_config = OUTPUT

    ok: bool
    events_checked: int
    head_seq: int
    head_hash: str
    first_bad_seq: int | None
    problem: str | None
    checkpoints_checked: int
    seconds: float
    events_per_second: float


def verification_read(report: Report) -> VerificationRead:
    return VerificationRead(
        ok=report.ok,
        events_checked=report.events_checked,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        first_bad_seq=report.first_bad_seq,
        problem=report.problem,
        checkpoints_checked=report.checkpoints_checked,
        seconds=round(report.seconds, 3),
        events_per_second=round(report.events_per_second),
    )


class CheckpointRead(BaseModel):
    """A signed statement of the chain's head. `statement` is exactly what was signed (RFC
    8785 JSON of the other fields but the signature), `public_key` the Ed25519 key that
    verifies it; pin the key rather than trusting it from here."""

    model_config = OUTPUT

    log: str
    seq: int
    head_hash: str
    signed_at: str
    key_id: str
    signature: str
    statement: str
    public_key: str | None


def checkpoint_read(checkpoint: Checkpoint, public_key: str | None) -> CheckpointRead:
    return CheckpointRead(
        **checkpoint.to_json(),
        statement=checkpoint.statement().decode(),
        public_key=public_key,
    )
