import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, Column, Text, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import TextEnum, moment_column, one_of
from app.core.ids import new_id
from app.recognition.criteria import RecognitionStatus


class RecognitionDecision(SQLModel, table=True):
    """Append-only: a person's decisions are numbered 1, 2, …; the highest is current."""

    __tablename__ = "recognition_decision"
    __table_args__ = (
        UniqueConstraint("person_id", "version"),
        one_of("status", list(RecognitionStatus)),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id")
    version: int
    status: RecognitionStatus = Field(sa_type=TextEnum(RecognitionStatus, 30))
    criteria: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}")
    )
    co_signers: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}")
    )
    decided_on: date
    rationale: str | None = Field(default=None, sa_type=Text)
    exclusion_reason: str | None = Field(default=None, sa_type=Text)
    source_ids: list[uuid.UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )
    decided_by: uuid.UUID | None = None
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
