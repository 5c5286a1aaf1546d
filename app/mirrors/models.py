"""The mirror tables (migration 0022): another Habeas whose change feed this instance
follows as a partner, and the records that feed hands over, kept as they were handed."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import moment_column, one_of
from app.core.ids import new_id

MIRROR_KINDS = ("person", "case")
# live: the upstream shares it, as `body`; redirect: merged into `merged_into` there;
# gone: the upstream no longer shares it (a tombstone, or a reset of its feed), so its
# content is deleted here; only the mapping of ids stays, so that a record shared again
# keeps its id here.
MIRROR_STATES = ("live", "redirect", "gone")


class MirrorUpstream(SQLModel, table=True):
    """An instance this one mirrors: its address, the partner client it is read as, and
    where its feed was read up to (written in the transaction of the page it follows)."""

    __tablename__ = "mirror_upstream"
    __table_args__ = (
        CheckConstraint("phase IS NULL OR phase IN ('snapshot', 'changes')", name="phase_allowed"),
        Index("ux_mirror_upstream_address", "base_url", "client_id", unique=True),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    base_url: str = Field(sa_column=Column(Text, nullable=False))
    client_id: str = Field(sa_column=Column(String(200), nullable=False))
    cursor: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    phase: str | None = Field(default=None, sa_column=Column(String(20), nullable=True))
    caught_up: bool = False
    # The upstream's audit number of the last item applied (for the display; the cursor
    # is what resumes).
    position: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    pages: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    items: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    resets: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    last_pulled_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


class MirrorRecord(SQLModel, table=True):
    """One upstream record: our id for it (`id`, the mapping of the upstream's ids to
    ours), its state, and while it is shared its content as the upstream's feed handed it
    (at the upstream's agreement's tier), with where and when it was handed over."""

    __tablename__ = "mirror_record"
    __table_args__ = (
        one_of("kind", MIRROR_KINDS),
        one_of("state", MIRROR_STATES),
        CheckConstraint(
            "(state = 'live') = (body IS NOT NULL AND content_hash IS NOT NULL)",
            name="body_only_while_live",
        ),
        CheckConstraint(
            "(state = 'redirect') = (merged_into IS NOT NULL)", name="merged_into_for_redirects"
        ),
        Index(
            "ux_mirror_record_upstream_id", "upstream_id", "kind", "upstream_record_id", unique=True
        ),
        # The records' list reads in this order.
        Index("ix_mirror_record_list", "upstream_id", "kind", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    upstream_id: uuid.UUID = Field(foreign_key="mirror_upstream.id")
    kind: str = Field(sa_column=Column(String(10), nullable=False))
    upstream_record_id: uuid.UUID
    state: str = Field(sa_column=Column(String(10), nullable=False))
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSONB, nullable=True))
    # SHA-256 of the body's canonical JSON: a page read again changes nothing.
    content_hash: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    merged_into: uuid.UUID | None = None
    upstream_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
