"""The audit trail's tables: the hash-chained events, the chain head, and signed checkpoints.

`audit_event` and `audit_checkpoint` are append-only: triggers refuse UPDATE, DELETE and
TRUNCATE (migration 0004), and the application's database role is granted neither
(`habeas db grant`). `audit_head` is the one row appends lock to allocate the next sequence
number; it is a convenience, never trusted by verification.
"""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Column, Index, LargeBinary
from sqlalchemy import Text as SqlText
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlmodel import Field, SQLModel

from app.core.columns import moment_column, one_of

ACTOR_TYPES = ("user", "partner", "system", "anonymous")
# "not_found": a request for a record that does not exist (probing, or a stale link).
OUTCOMES = ("success", "denied", "not_found")


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_event"
    __table_args__ = (
        one_of("actor_type", ACTOR_TYPES),
        one_of("outcome", OUTCOMES),
        CheckConstraint("seq > 0", name="seq_positive"),
        CheckConstraint("octet_length(hash) = 32 AND octet_length(prev_hash) = 32", name="hashes"),
        Index("ix_audit_event_occurred_at", "occurred_at"),
        Index("ix_audit_event_actor", "actor_id", "seq"),
        Index("ix_audit_event_resource", "resource_id", "seq"),
        Index("ix_audit_event_action", "action", "seq"),
        Index("ix_audit_event_related", "related", postgresql_using="gin"),
    )

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    occurred_at: datetime = Field(sa_column=moment_column())
    actor_type: str = Field(sa_type=SqlText)
    actor_id: uuid.UUID | None = Field(default=None)
    actor_role: str | None = Field(default=None, sa_type=SqlText)
    action: str = Field(sa_type=SqlText)
    resource_type: str | None = Field(default=None, sa_type=SqlText)
    resource_id: uuid.UUID | None = Field(default=None)
    # Other records the event touched or showed (the case files of a collective event,
    # the persons on a page that was read), so that searching for a record finds it.
    related: list[uuid.UUID] = Field(
        default_factory=list,
        sa_column=Column(ARRAY(UUID(as_uuid=True)), nullable=False, server_default="{}"),
    )
    outcome: str = Field(sa_type=SqlText)
    request_id: str | None = Field(default=None, sa_type=SqlText)
    client_address: str | None = Field(default=None, sa_type=SqlText)
    user_agent: str | None = Field(default=None, sa_type=SqlText)
    # For writes, field by field: [{"type", "id", "fields": {name: {"before", "after"}}}].
    changes: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSONB))
    # Anything else worth keeping: why a request was denied, which filters a search used.
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB))
    prev_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class AuditHead(SQLModel, table=True):
    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("singleton", name="singleton"),)

    singleton: bool = Field(default=True, sa_column=Column(Boolean, primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    occurred_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))


class AuditCheckpoint(SQLModel, table=True):
    """A signed statement that the chain had `head_hash` at `seq`. The signing key is not
    in the database, so whoever can rewrite the table still cannot sign a new head."""

    __tablename__ = "audit_checkpoint"

    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    key_id: str = Field(sa_column=Column(SqlText, primary_key=True))
    head_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    signed_at: datetime = Field(sa_column=moment_column())
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
