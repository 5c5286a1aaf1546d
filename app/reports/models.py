"""Report snapshots: what was published, kept as it was (docs/reports.md)."""

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Identity,
    Index,
    String,
    Text,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from app.core.clock import utcnow
from app.core.columns import TextEnum, moment_column, one_of
from app.core.ids import new_id


class ReportKind(StrEnum):
    status = "status"


class ReportSnapshot(SQLModel, table=True):
    """One generated report. Immutable: the database refuses UPDATE, DELETE and TRUNCATE
    (migration 0013), so a published figure never changes silently; a correction shows in
    the next report, and in its differences from this one."""

    __tablename__ = "report_snapshot"
    __table_args__ = (
        one_of("kind", list(ReportKind)),
        # The previous snapshot of a series: the latest generated with an as_of not after.
        Index("ix_report_snapshot_series", "series", "as_of", "generated_at"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    kind: ReportKind = Field(sa_type=TextEnum(ReportKind, 20))
    # What makes two snapshots comparable: kind, jurisdiction, baseline, held types.
    series: str = Field(sa_type=Text)
    as_of: date
    as_known_at: datetime = Field(sa_column=moment_column())
    generator_version: str = Field(sa_type=Text)
    # The resolved parameters and the figures, as hashed (see content_sha256).
    parameters: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    figures: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # SHA-256 (hex) of the canonical JSON of {kind, generator_version, parameters, figures}.
    content_sha256: str = Field(max_length=64)
    previous_id: uuid.UUID | None = Field(
        default=None, sa_column=Column(Uuid, ForeignKey("report_snapshot.id"), nullable=True)
    )
    differences: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    # Never served: the people behind the claims listed and the differences (person ids),
    # named when the report is read, if they may be named then (docs/reports.md).
    people: dict[str, Any] = Field(sa_column=Column(JSONB, nullable=False))
    generated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    # The staff member or partner who asked; none for a scheduled run.
    generated_by: uuid.UUID | None = None


class ReportSnapshotHeld(SQLModel, table=True):
    """The people a snapshot counted as held (never served), one array per snapshot: the
    next report of its series finds who entered and left custody by comparing with them.
    Append-only like the snapshot. Written by the figures statement itself, before the
    snapshot's row: the reference is checked at commit."""

    __tablename__ = "report_snapshot_held"

    snapshot_id: uuid.UUID = Field(
        sa_column=Column(
            Uuid,
            ForeignKey("report_snapshot.id", deferrable=True, initially="DEFERRED"),
            primary_key=True,
        )
    )
    person_ids: list[uuid.UUID] = Field(sa_column=Column(ARRAY(Uuid), nullable=False))


# What a report counts of a case file or a person, as it was before a correction (migration
# 0015): the triggers there write these rows, whatever write path changed the facts, and
# set `facts_since` on the row itself. The as-of engine reads them for a knowledge time
# before `facts_since`.


def _identity() -> Any:
    return Field(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )


class CaseFileFactsHistory(SQLModel, table=True):
    __tablename__ = "case_file_facts_history"

    id: int | None = _identity()
    case_file_id: uuid.UUID = Field(foreign_key="case_file.id", index=True)
    valid_from: datetime = Field(sa_column=moment_column())
    valid_until: datetime = Field(sa_column=moment_column())
    person_id: uuid.UUID
    jurisdiction: str = Field(max_length=2)
    deprivation_type: str = Field(max_length=30)
    charges: list[dict[str, Any]] = Field(sa_column=Column(JSONB, nullable=False))


class PersonFactsHistory(SQLModel, table=True):
    __tablename__ = "person_facts_history"

    id: int | None = _identity()
    person_id: uuid.UUID = Field(foreign_key="person.id", index=True)
    valid_from: datetime = Field(sa_column=moment_column())
    valid_until: datetime = Field(sa_column=moment_column())
    citizenships: list[str] = Field(sa_column=Column(ARRAY(String(2)), nullable=False))
    gender: str = Field(max_length=10)
    region: str | None = Field(default=None, max_length=6)
    birth_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))


# The path basis (migration 0016): every case file's path as known at one moment, kept so
# that a report as known at that moment or later reads it instead of building every path
# again; only the case files changed since are built anew (docs/reports.md, "The path
# basis"). A cache, never a record: rebuilt from the events, and dropped with no loss.


class ReportBasis(SQLModel, table=True):
    """One built basis: the moment it is as known at, and the engine that built it (a basis
    built by another version of the engine is never read)."""

    __tablename__ = "report_basis"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    known_at: datetime = Field(sa_column=moment_column())
    # Anything recorded after this moment (the knowledge moment less a margin) makes a case
    # file count as changed since the basis (app/reports/basis.py).
    changed_after: datetime = Field(sa_column=moment_column())
    engine_version: str = Field(sa_type=Text)
    built_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    seconds: float
    events: int = Field(sa_column=Column(BigInteger, nullable=False))


class ReportBasisPath(SQLModel, table=True):
    """An event on its case file's path as known at the basis's moment, with what the path
    says of it: its effective day (a partial date lifted as the path reads it), the next
    event's day and status, and whether its status (and its predecessor's) is custody —
    before the report's choice of the deprivation types it counts."""

    __tablename__ = "report_basis_path"
    __table_args__ = (
        # Deaths in custody end custody on every case file of the person: found at once.
        Index(
            "ix_report_basis_path_deaths",
            "basis_id",
            "person_id",
            postgresql_where=text("to_status = 'died_in_custody'"),
        ),
        # A report's period, and the people whose figures over time it counts anew.
        Index("ix_report_basis_path_effective_date", "basis_id", "effective_date"),
        Index("ix_report_basis_path_person_id", "basis_id", "person_id"),
        # The states on a report's day: those ending after it.
        Index("ix_report_basis_path_until", "basis_id", "until"),
    )

    basis_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("report_basis.id", ondelete="CASCADE"), primary_key=True)
    )
    event_id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    case_file_id: uuid.UUID
    person_id: uuid.UUID
    jurisdiction: str = Field(max_length=2)
    deprivation_type: str = Field(max_length=30)
    to_status: str = Field(max_length=20)
    sentence_type: str | None = Field(default=None, sa_type=Text)
    term_months: int | None = None
    release_reason: str | None = Field(default=None, sa_type=Text)
    destination_country: str | None = Field(default=None, sa_type=Text)
    collective_event_id: uuid.UUID | None = None
    given: int
    effective_date: date
    until: date | None = None
    next_status: str | None = Field(default=None, max_length=20)
    held: bool
    was_held: bool
    # For an event whose status is custody: what the report's breakdowns count of its
    # case file (the articles charged) and of its person, as known at the basis's moment.
    # A person or case file whose facts changed since is built anew, facts included.
    facts_kept: bool
    articles: list[str] | None = Field(default=None, sa_column=Column(ARRAY(Text), nullable=True))
    citizenships: list[str] | None = Field(
        default=None, sa_column=Column(ARRAY(String(2)), nullable=True)
    )
    gender: str | None = Field(default=None, max_length=10)
    region: str | None = Field(default=None, max_length=6)
    birth_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))


class ReportBasisDaily(SQLModel, table=True):
    """What a basis's paths add to the figures over time, summed by day: `held` and
    `recognised` (+1 as an island of a person's custody begins, −1 the day after it
    ends), `detention` and `release:<mode>` (people), for all jurisdictions (key `*`)
    and for each (its code), counting the default deprivation types (app/reports/asof.py,
    _CONTRIBUTIONS)."""

    __tablename__ = "report_basis_daily"

    basis_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("report_basis.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(2), primary_key=True))
    measure: str = Field(sa_column=Column(Text, primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    n: int = Field(sa_column=Column(BigInteger, nullable=False))


class ReportBasisSpan(SQLModel, table=True):
    """A person's standing on the days of a span [starts, ends) of a basis over which
    nothing of it changes: held (with the case file a report counts them on, what it
    counts of it and of them) or prosecuted at liberty, for all jurisdictions (key `*`)
    and, for a person with case files in several, for each (its code). Only the case
    files in custody, with a prosecution still open or with a death count here: a person
    whose such case files are in one jurisdiction has only the key `*`, with that
    jurisdiction as `only_jurisdiction`. Counting the default deprivation types, with the
    recognition decisions the basis's sums count (app/reports/asof.py, BASIS_SPAN_SQL)."""

    __tablename__ = "report_basis_span"
    __table_args__ = (
        # The spans on a report's day: those ending after it and begun by it (kept in
        # that order).
        Index("ix_report_basis_span_ends", "basis_id", "ends", "starts"),
    )

    basis_id: uuid.UUID = Field(
        sa_column=Column(Uuid, ForeignKey("report_basis.id", ondelete="CASCADE"), primary_key=True)
    )
    key: str = Field(sa_column=Column(String(2), primary_key=True))
    person_id: uuid.UUID = Field(sa_column=Column(Uuid, primary_key=True))
    starts: date = Field(sa_column=Column(Date, primary_key=True))
    # 'infinity' while the standing lasts.
    ends: date = Field(sa_column=Column(Date, nullable=False))
    only_jurisdiction: str | None = Field(default=None, max_length=2)
    held: bool
    case_file_id: uuid.UUID | None = None
    to_status: str | None = Field(default=None, max_length=20)
    deprivation_type: str | None = Field(default=None, max_length=30)
    jurisdiction: str | None = Field(default=None, max_length=2)
    sentence_type: str | None = Field(default=None, sa_type=Text)
    term_months: int | None = None
    recognised: bool
    persecuted: bool
    articles: list[str] | None = Field(default=None, sa_column=Column(ARRAY(Text), nullable=True))
    citizenships: list[str] | None = Field(
        default=None, sa_column=Column(ARRAY(String(2)), nullable=True)
    )
    gender: str | None = Field(default=None, max_length=10)
    region: str | None = Field(default=None, max_length=6)
    birth_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
