import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import CheckConstraint, Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import TextEnum, moment_column, one_of
from app.core.ids import new_id


class Reliability(StrEnum):
    """Admiralty grading of the source: A completely reliable … F cannot be judged."""

    A = "A"
    B = "B"
    C = "C"
    D = "D"
    E = "E"
    F = "F"


class Source(SQLModel, table=True):
    __tablename__ = "source"
    __table_args__ = (
        one_of("reliability", list(Reliability)),
        CheckConstraint("credibility BETWEEN 1 AND 6", name="credibility_range"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    publisher: str = Field(sa_type=Text)
    title: str = Field(sa_type=Text)
    url: str | None = Field(default=None, sa_type=Text)
    published_on: date | None = None
    reliability: Reliability = Field(sa_type=TextEnum(Reliability, 1))
    # Admiralty grading of the information: 1 confirmed … 6 cannot be judged.
    credibility: int
    is_public: bool
    # confidential: who told us, when the source is a witness
    witness: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    recorded_by: uuid.UUID | None = None
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
