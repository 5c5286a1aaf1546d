"""The change feed's tables (migration 0020): where each shared record last changed, and
what the feed has handed each partner."""

import uuid

from sqlalchemy import BigInteger, CheckConstraint, Column, Index, LargeBinary, String
from sqlmodel import Field, SQLModel


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
