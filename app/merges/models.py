"""The record of a merge: one person (the merged one) folded into another (the kept one),
with what moved and what each changed field was before, so that an unmerge restores the
merged person exactly, and so that partners' copies can follow (B -> A, and back)."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Identity,
    Index,
    LargeBinary,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import moment_column
from app.core.ids import new_id


class PersonMerge(SQLModel, table=True):
    __tablename__ = "person_merge"
    __table_args__ = (
        CheckConstraint("person_id <> merged_person_id", name="two_persons"),
        Index("ix_person_merge_person_id", "person_id"),
        # A person is merged into one other at a time.
        Index(
            "ix_person_merge_merged_person_id_in_effect",
            "merged_person_id",
            unique=True,
            postgresql_where=text("unmerged_at IS NULL"),
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # the person kept, who holds the merged one's records while the merge is in effect
    person_id: uuid.UUID = Field(foreign_key="person.id")
    merged_person_id: uuid.UUID = Field(foreign_key="person.id")
    reason: str = Field(sa_type=Text)
    merged_by: uuid.UUID | None = None
    merged_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    # What moved and what was overwritten, for the unmerge (app/merges/service.py). Never
    # served whole: the merged person's private names and sealed values are among it.
    moved: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # The kept person's sealed values (relatives, contacts, address) the merge changed,
    # before and after, as one AES-GCM envelope bound to this row (app/core/crypto.py), so
    # that key rotation reseals it with the rest; never the person's envelopes themselves.
    sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    # field -> "kept" or "merged": whose value the kept person holds after the merge
    resolutions: dict[str, str] = Field(sa_column=Column(JSONB, nullable=False))
    unmerged_by: uuid.UUID | None = None
    unmerged_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    # At the unmerge: what had been added to the kept person since and stayed with them.
    stayed: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))


class MergeEventKind(StrEnum):
    merged = "merged"
    unmerged = "unmerged"


class PersonMergeEvent(SQLModel, table=True):
    """Append-only: each merge and unmerge as it happened, numbered in the order written,
    for partners' sync to follow (B -> A, and back) from the last number it read. Only ids
    and the moment: what a partner may see of either person is the sync's to decide."""

    __tablename__ = "person_merge_event"
    __table_args__ = (CheckConstraint("kind IN ('merged', 'unmerged')", name="kind"),)

    seq: int | None = Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    merge_id: uuid.UUID = Field(foreign_key="person_merge.id", index=True)
    kind: str = Field(sa_type=Text)
    person_id: uuid.UUID
    merged_person_id: uuid.UUID
    at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
