"""The sync tables: where each shared record last changed and what the feed has handed
each partner (migration 0020); the partners' own ids for our records (migration 0021)."""

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import moment_column
from app.core.ids import new_id


class SyncPosition(SQLModel, table=True):
    """The audit sequence number of the last write that touched a record (kept by the
    trigger `sync_position_changes` on `audit_event`, never by the application)."""

    __tablename__ = "sync_position"
    __table_args__ = (
        CheckConstraint("record_type IN ('person', 'case', 'source')", name="record_type_allowed"),
        # The feed reads in this order from a cursor.
        Index("ix_sync_position_seq", "seq", "record_type", "record_id"),
    )

    record_type: str = Field(sa_column=Column(String(20), primary_key=True))
    record_id: uuid.UUID = Field(primary_key=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))


class SyncDelivered(SQLModel, table=True):
    """What the feed last handed a partner of a record: a hash of the item (the record at
    the partner's tier, a tombstone or a redirect) and the audit number it was handed at.
    A record leaves the partner's copy with one tombstone; a partner never handed it hears
    nothing of it; a change the partner cannot see sends nothing."""

    __tablename__ = "sync_delivered"

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    record_type: str = Field(sa_column=Column(String(20), primary_key=True))
    record_id: uuid.UUID = Field(primary_key=True)
    content_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    delivered_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    # Handed in a snapshot (taken at `delivered_seq`), not as a change at that number.
    in_snapshot: bool


class SyncExternalId(SQLModel, table=True):
    """A partner's own id for one of our records (what its batches name records by), one
    mapping each way: an external id names one record, a record has one external id per
    partner. Written when a batch creates the record, or when it names one of ours by our
    id together with its own."""

    __tablename__ = "sync_external_id"
    __table_args__ = (
        CheckConstraint(
            "record_type IN ('person', 'case', 'status_event')", name="record_type_allowed"
        ),
        UniqueConstraint("partner_id", "record_type", "record_id"),
    )

    partner_id: uuid.UUID = Field(foreign_key="partner.id", primary_key=True)
    record_type: str = Field(sa_column=Column(String(20), primary_key=True))
    external_id: str = Field(sa_column=Column(String(200), primary_key=True))
    record_id: uuid.UUID
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


class SyncWebhook(SQLModel, table=True):
    """A partner's endpoint for change notifications: told that its feed has something
    new (the position, never the data), signed as the Standard Webhooks specification
    says with a secret only the partner and the worker know (sealed at rest; the previous
    one signs too for a while after a rotation). One that keeps failing is disabled."""

    __tablename__ = "sync_webhook"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id", index=True)
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret_sealed: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    previous_secret_sealed: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    previous_secret_until: datetime | None = Field(
        default=None, sa_column=moment_column(nullable=True)
    )
    # The audit position the partner was last told of (or had nothing new up to).
    notified_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    failures: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    disabled_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    disabled_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


class SyncWebhookDelivery(SQLModel, table=True):
    """One attempt to notify an endpoint, and what came of it."""

    __tablename__ = "sync_webhook_delivery"
    __table_args__ = (
        CheckConstraint("outcome IN ('delivered', 'failed', 'disabled')", name="outcome_allowed"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    webhook_id: uuid.UUID = Field(foreign_key="sync_webhook.id", index=True)
    message_id: str = Field(sa_column=Column(String(64), nullable=False))
    position: int = Field(sa_column=Column(BigInteger, nullable=False))
    attempt: int
    # Kept HABEAS_WEBHOOK_DELIVERY_RETENTION_DAYS, then purged (app/jobs/housekeeping.py).
    attempted_at: datetime = Field(default_factory=utcnow, sa_column=moment_column(index=True))
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    outcome: str = Field(sa_column=Column(String(12), nullable=False))
    milliseconds: int
