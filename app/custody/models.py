"""The facility register and the custody timeline of case files.

Timeline entries are never updated or deleted: a wrong entry gets a retraction (with a
reason), and a period (incommunicado, hunger strike, punishment cell) is closed by an end
record. Each record keeps when it took effect (a partial date) and when we learned of it
(recorded_at), so the timeline can be read as it was known at any time.
"""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import ARRAY, CheckConstraint, Column, ForeignKey, Index, Text, Uuid
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.cases.statuses import Confidence
from app.core.clock import utcnow
from app.core.columns import TextEnum, moment_column, one_of
from app.core.dates import Precision
from app.core.ids import new_id


class FacilityType(StrEnum):
    """What kind of place a facility is (docs: README, "The custody timeline")."""

    # police cells and short-term holding (IVS, TsIP, ЦИП/ИВС): hours to weeks
    temporary_detention = "temporary_detention"
    # remand prisons for those awaiting trial or appeal (SIZO, СИЗО)
    pretrial_detention_centre = "pretrial_detention_centre"
    # closed prisons (турма) for the strictest regimes
    prison = "prison"
    # correctional colonies (ИК), where most sentences are served
    penal_colony = "penal_colony"
    # restriction of freedom in a correctional centre of open type ("khimiya", ИУОТ)
    open_facility = "open_facility"
    # compulsory psychiatric treatment
    psychiatric_hospital = "psychiatric_hospital"
    # anything else: a prison hospital, a military detention unit …
    other = "other"


class CustodyKind(StrEnum):
    # moved to a facility of the register (from another, when known)
    transfer = "transfer"
    # whereabouts unknown, no contact with lawyer or family: a period
    incommunicado = "incommunicado"
    # a period
    hunger_strike = "hunger_strike"
    # punishment or solitary cell (ШИЗО, ПКТ): a period, with the days imposed
    punishment_cell = "punishment_cell"
    # a new charge brought in custody ("disobeying the administration")
    new_charge = "new_charge"
    # the date the person is expected to be released, as of the entry's date
    expected_release = "expected_release"


# The kinds that last, and are closed later by an end record.
PERIODS: frozenset[CustodyKind] = frozenset(
    {CustodyKind.incommunicado, CustodyKind.hunger_strike, CustodyKind.punishment_cell}
)


def _uuid_array() -> Any:
    return Field(
        default_factory=list, sa_column=Column(ARRAY(Uuid), nullable=False, server_default="{}")
    )


class Facility(SQLModel, table=True):
    """A place of detention. The register is public reference data."""

    __tablename__ = "facility"
    __table_args__ = (one_of("type", list(FacilityType)),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # each: value, script (ISO 15924), language (ISO 639)
    names: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))
    country: str = Field(max_length=2, index=True)
    region: str | None = Field(default=None, max_length=6)
    type: FacilityType = Field(sa_type=TextEnum(FacilityType, 30))
    # every name, case-folded, one a line: what a name search matches (folded in Python,
    # so that it does not depend on the database's locale)
    search_text: str = Field(sa_type=Text)
    recorded_by: uuid.UUID | None = None
    version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


def search_text(names: list[dict[str, Any]]) -> str:
    return "\n".join(str(name["value"]).casefold() for name in names)


class CustodyEvent(SQLModel, table=True):
    """One entry of a case file's custody timeline. Never updated or deleted."""

    __tablename__ = "custody_event"
    __table_args__ = (
        one_of("kind", list(CustodyKind)),
        one_of("effective_precision", list(Precision)),
        one_of("confidence", list(Confidence)),
        # A transfer always names where to; nothing else names a facility.
        CheckConstraint(
            "(kind = 'transfer') = (facility_id IS NOT NULL)", name="transfer_has_facility"
        ),
        CheckConstraint(
            "kind = 'transfer' OR from_facility_id IS NULL", name="only_transfer_has_origin"
        ),
        Index("ix_custody_event_case_file_id_kind", "case_file_id", "kind"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id")
    kind: CustodyKind = Field(sa_type=TextEnum(CustodyKind, 20))
    effective_date: date
    effective_precision: Precision = Field(sa_type=TextEnum(Precision, 5))
    facility_id: uuid.UUID | None = Field(
        default=None,
        sa_column=Column(Uuid, ForeignKey("facility.id"), nullable=True, index=True),
    )
    from_facility_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("facility.id"), nullable=True)
    )
    # what the kind says about itself (days in a punishment cell, a charge's article …)
    details: dict[str, Any] = Field(
        default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}")
    )
    confidence: Confidence = Field(sa_type=TextEnum(Confidence, 12))
    note: str | None = Field(default=None, sa_type=Text)
    source_ids: list[uuid.UUID] = _uuid_array()
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None


class CustodyEventRetraction(SQLModel, table=True):
    """Withdraws one wrong timeline entry, with a reason; the entry stays on record."""

    __tablename__ = "custody_event_retraction"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    event_id: uuid.UUID = Field(foreign_key="custody_event.id", unique=True)
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id", index=True)
    reason: str = Field(sa_type=Text)
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None


class CustodyPeriodEnd(SQLModel, table=True):
    """The end of a period (incommunicado, hunger strike, punishment cell): when it ended,
    and when we learned it. A period has at most one."""

    __tablename__ = "custody_period_end"
    __table_args__ = (
        one_of("effective_precision", list(Precision)),
        one_of("confidence", list(Confidence)),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    event_id: uuid.UUID = Field(foreign_key="custody_event.id", unique=True)
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id", index=True)
    effective_date: date
    effective_precision: Precision = Field(sa_type=TextEnum(Precision, 5))
    confidence: Confidence = Field(sa_type=TextEnum(Confidence, 12))
    note: str | None = Field(default=None, sa_type=Text)
    source_ids: list[uuid.UUID] = _uuid_array()
    recorded_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    recorded_by: uuid.UUID | None = None
