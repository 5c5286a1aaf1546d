"""Case files and their append-only status history."""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ARRAY, Column, ForeignKey, Index, Text, UniqueConstraint, Uuid, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.cases.statuses import TAKES_EFFECT, Confidence, SentenceType, Status
from app.core.clock import utcnow
from app.core.columns import TextEnum, facts_since_column, moment_column, one_of
from app.core.dates import Precision
from app.core.ids import new_id
from app.recognition.criteria import RecognitionStatus


class DeprivationType(StrEnum):
    pretrial_custody = "pretrial_custody"
    house_arrest = "house_arrest"
    administrative_arrest = "administrative_arrest"
    imprisonment = "imprisonment"
    restriction_of_freedom = "restriction_of_freedom"
    psychiatric = "psychiatric"


class Confidentiality(StrEnum):
    normal = "normal"
    # only assigned caseworkers and coordinators may see the case file
    high = "high"


def _uuid_array() -> Any:
    return Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )


def _jsonb_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]"))


class CaseFile(SQLModel, table=True):
    __tablename__ = "case_file"
    __table_args__ = (
        one_of("deprivation_type", list(DeprivationType)),
        one_of("confidentiality", list(Confidentiality)),
        one_of("status", list(Status)),
        one_of("status_since_precision", list(Precision)),
        one_of("status_confidence", list(Confidence)),
        one_of("detained_precision", list(Precision)),
        one_of("sentence_type", list(SentenceType)),
        Index("ix_case_file_facts_since", "facts_since"),
        # The persons a high-confidentiality case file closes (few): asked by every list
        # and page a partner or an analyst reads (app/access/visibility.py).
        Index(
            "ix_case_file_high_person_id",
            "person_id",
            postgresql_where=text("confidentiality = 'high'"),
        ),
        Index(
            "ix_case_file_charges",
            "charges",
            postgresql_using="gin",
            postgresql_ops={"charges": "jsonb_path_ops"},
        ),
        Index("ix_case_file_status_id", "status", "id"),
        one_of("recognition_status", list(RecognitionStatus)),
        Index("ix_case_file_recognition_status_id", "recognition_status", "id"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    reference: str = Field(max_length=20, unique=True)
    jurisdiction: str = Field(max_length=2, index=True)
    deprivation_type: DeprivationType = Field(sa_type=TextEnum(DeprivationType, 30))
    confidentiality: Confidentiality = Field(
        default=Confidentiality.normal, sa_type=TextEnum(Confidentiality, 10)
    )
    assigned_caseworkers: list[uuid.UUID] = _uuid_array()
    charges: list[dict[str, Any]] = _jsonb_list()
    # Derived from the path's `sentenced` events (their details are the one source of
    # the sentence); written with the status columns.
    court_decisions: list[dict[str, Any]] = _jsonb_list()
    # Court decisions recorded before sentences lived on events that matched no `sentenced`
    # event (migration 0009): kept, never written since.
    court_decisions_unmatched: list[dict[str, Any]] | None = Field(
        default=None, sa_column=Column(JSONB, nullable=True)
    )
    # restricted: where the person is held, and every transfer
    detention_places: list[dict[str, Any]] = _jsonb_list()
    # Derived from the status path by the cases service; never written by a client.
    status: Status = Field(sa_type=TextEnum(Status, 20))
    status_since: date
    status_since_precision: Precision = Field(sa_type=TextEnum(Precision, 5))
    # How sure we are of the current status: the confidence of the event that set it.
    status_confidence: Confidence = Field(sa_type=TextEnum(Confidence, 12))
    # The first step of the path (detained or charged) and its precision.
    detained_on: date = Field(index=True)
    detained_precision: Precision = Field(sa_type=TextEnum(Precision, 5))
    # Held now: detained, or serving a custodial sentence (statuses.in_custody).
    in_custody: bool
    # The type of the latest sentence on the path, if any.
    sentence_type: SentenceType | None = Field(default=None, sa_type=TextEnum(SentenceType, 40))
    # Unconfirmed events neither confirmed nor rejected (nor retracted) yet.
    pending_claims: int = 0
    # The status of the latest recognition decision covering the case file, kept by the
    # recognition feature in the decision's transaction; not_assessed until one covers it.
    recognition_status: RecognitionStatus = Field(
        default=RecognitionStatus.not_assessed,
        sa_type=TextEnum(RecognitionStatus, 30),
        sa_column_kwargs={"server_default": RecognitionStatus.not_assessed.value},
    )
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    # When the facts a status report counts last changed; kept by a trigger, which keeps
    # the earlier versions for reports "as known at" a moment before (migration 0015).
    facts_since: datetime = Field(default_factory=utcnow, sa_column=facts_since_column())


class StatusEvent(SQLModel, table=True):
    """One step of a case file's status path. Never updated or deleted; see retractions."""

    __tablename__ = "status_event"
    __table_args__ = (
        UniqueConstraint("case_file_id", "position"),
        # What was recorded after a moment: the case files a report must build anew
        # rather than read from the path basis (app/reports/basis.py).
        Index("ix_status_event_recorded_at", "recorded_at"),
        # The claims a report lists: unconfirmed events by day.
        Index(
            "ix_status_event_unconfirmed_effective_date",
            "effective_date",
            postgresql_where=text("confidence = 'unconfirmed'"),
        ),
        one_of("to_status", list(Status)),
        one_of("effective_precision", list(Precision)),
        one_of("confidence", list(Confidence)),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id")
    # Order of recording within the case file. The path orders events by effective date;
    # events on the same first possible day keep this order.
    position: int
    to_status: Status = Field(sa_type=TextEnum(Status, 20))
    effective_date: date
    effective_precision: Precision = Field(sa_type=TextEnum(Precision, 5))
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None
    # The partner whose system sent the event in a batch (app/sync/push.py), if any.
    reported_by_partner: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("partner.id"), nullable=True)
    )
    confidence: Confidence = Field(sa_type=TextEnum(Confidence, 12))
    note: str | None = Field(default=None, sa_type=Text)
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    source_ids: list[uuid.UUID] = _uuid_array()
    collective_event_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("collective_event.id"), nullable=True, index=True),
    )


class StatusEventRetraction(SQLModel, table=True):
    """Withdraws one wrong status event, with a reason; the event itself stays on record.

    A supersession is a retraction that names the corrected event replacing it (which
    keeps the original's place in its collective event)."""

    __tablename__ = "status_event_retraction"
    __table_args__ = (Index("ix_status_event_retraction_recorded_at", "recorded_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    event_id: uuid.UUID = Field(foreign_key="status_event.id", unique=True)
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id", index=True)
    reason: str = Field(sa_type=Text)
    superseded_by: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("status_event.id"), nullable=True)
    )
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None


class ClaimOutcome(StrEnum):
    confirmed = "confirmed"
    rejected = "rejected"


class ClaimResolution(SQLModel, table=True):
    """Settles an unconfirmed event (a claim): confirmed, it takes effect from `recorded_at`
    for "as known at" questions; rejected, it never does. Append-only, one per claim."""

    __tablename__ = "status_claim_resolution"
    __table_args__ = (
        Index("ix_status_claim_resolution_recorded_at", "recorded_at"),
        one_of("outcome", list(ClaimOutcome)),
        one_of("confidence", list(Confidence)),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    event_id: uuid.UUID = Field(foreign_key="status_event.id", unique=True)
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id", index=True)
    outcome: ClaimOutcome = Field(sa_type=TextEnum(ClaimOutcome, 10))
    # For a confirmation: how sure we now are (confirmed or reported).
    confidence: Confidence | None = Field(default=None, sa_type=TextEnum(Confidence, 12))
    reason: str | None = Field(default=None, sa_type=Text)
    source_ids: list[uuid.UUID] = _uuid_array()
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """A status event as read from its case file's history, with how it was settled."""

    event: StatusEvent
    retraction: StatusEventRetraction | None = None
    resolution: ClaimResolution | None = None

    @property
    def withdrawn(self) -> bool:
        return self.retraction is not None

    @property
    def pending(self) -> bool:
        """An unconfirmed event neither confirmed, rejected nor withdrawn: a claim."""
        return (
            self.retraction is None
            and self.event.confidence is Confidence.unconfirmed
            and self.resolution is None
        )

    @property
    def takes_effect(self) -> bool:
        """On the path: not withdrawn, and either recorded as confirmed or reported, or a
        claim since confirmed."""
        if self.retraction is not None:
            return False
        if self.event.confidence in TAKES_EFFECT:
            return True
        return self.resolution is not None and self.resolution.outcome is ClaimOutcome.confirmed

    @property
    def confidence(self) -> Confidence:
        """How sure we are now: a confirmed claim carries its confirmation's confidence."""
        if self.resolution is not None and self.resolution.confidence is not None:
            return self.resolution.confidence
        return self.event.confidence
