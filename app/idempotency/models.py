import uuid
from datetime import datetime

from sqlalchemy import Column, LargeBinary, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import moment_column
from app.core.ids import new_id


class IdempotencyRecord(SQLModel, table=True):
    """A create's response, stored in the same transaction as its effect."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    scope: str = Field(max_length=500)
    key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int | None = None
    # The response to replay, sealed with the data key ring (table idempotency_record,
    # column response_sealed): a create's answer can hold confidential values.
    response_sealed: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    response_headers: dict[str, str] | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(
        default_factory=utcnow,
        sa_column=moment_column(index=True),
    )
