import uuid
from datetime import date, datetime

from sqlalchemy import ARRAY, Column, ForeignKey, Index, Text, UniqueConstraint, Uuid
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import TextEnum, moment_column, one_of
from app.core.ids import new_id
from app.recognition.criteria import ExclusionCode, RecognitionStatus


class RecognitionDecision(SQLModel, table=True):
    """Append-only: a person's decisions are numbered 1, 2, …; the highest is current."""

    __tablename__ = "recognition_decision"
    __table_args__ = (
        UniqueConstraint("person_id", "version"),
        one_of("status", list(RecognitionStatus)),
        one_of("exclusion_code", list(ExclusionCode)),
        # What a status report counts as changed since its basis (app/reports/asof.py).
        Index("ix_recognition_decision_recorded_at", "recorded_at"),
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
    decided_on: date = Field(index=True)
    rationale: str | None = Field(default=None, sa_type=Text)
    exclusion_reason: str | None = Field(default=None, sa_type=Text)
    # required of a withdrawal (criteria.REQUIRES_EXCLUSION)
    exclusion_code: ExclusionCode | None = Field(default=None, sa_type=TextEnum(ExclusionCode, 40))
    source_ids: list[uuid.UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )
    decided_by: uuid.UUID | None = None
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


class RecognitionCoverage(SQLModel, table=True):
    """The case files a decision covers: a recognition concerns a prosecution, so a later
    arrest of the same person is not covered until a decision says so (DESIGN §2). A case
    file's recognition status is that of the latest decision covering it."""

    __tablename__ = "recognition_coverage"

    decision_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("recognition_decision.id"), primary_key=True)
    )
    case_file_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("case_file.id"), primary_key=True, index=True)
    )


class RecognitionProposal(SQLModel, table=True):
    """A partner's proposal that a person be recognised (or not): never a decision. Our
    coordinators read the proposals beside the person's decisions and decide."""

    __tablename__ = "recognition_proposal"
    __table_args__ = (one_of("status", list(RecognitionStatus)),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    partner_id: uuid.UUID = Field(foreign_key="partner.id")
    status: RecognitionStatus = Field(sa_type=TextEnum(RecognitionStatus, 30))
    case_file_ids: list[uuid.UUID] = Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )
    criteria: list[str] = Field(
        default_factory=list, sa_column=Column(ARRAY(Text), nullable=False, server_default="{}")
    )
    rationale: str | None = Field(default=None, sa_type=Text)
    proposed_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
