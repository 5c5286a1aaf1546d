"""Report schedules and the record of each of their runs."""

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from app.cases.models import DeprivationType
from app.core.clock import utcnow
from app.core.columns import TextEnum, all_of, moment_column, one_of
from app.core.ids import new_id
from app.reports.schedules.periods import Cadence


class ScheduleOrigin(StrEnum):
    # made and changed by coordinators through the API
    api = "api"
    # set in HABEAS_REPORT_SCHEDULES: the worker writes it, the API only reads it
    configuration = "configuration"


class RunStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    # every attempt of the last run failed; the next run of the job tries again
    failed = "failed"


class ReportSchedule(SQLModel, table=True):
    __tablename__ = "report_schedule"
    __table_args__ = (
        one_of("cadence", list(Cadence)),
        one_of("origin", list(ScheduleOrigin)),
        all_of("held_deprivation_types", list(DeprivationType)),
        UniqueConstraint("name"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=300)
    # Fixed once made: another cadence is another series of reports, so another schedule.
    cadence: Cadence = Field(sa_type=TextEnum(Cadence, 10))
    origin: ScheduleOrigin = Field(sa_type=TextEnum(ScheduleOrigin, 20))
    # None: every jurisdiction
    jurisdiction: str | None = Field(default=None, max_length=2)
    baseline: date
    # None: the report's documented default
    held_deprivation_types: list[str] | None = Field(
        default=None, sa_column=Column(ARRAY(Text), nullable=True)
    )
    enabled: bool = True
    version: int = Field(default=1)
    created_by: uuid.UUID | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=moment_column())


class ReportScheduleRun(SQLModel, table=True):
    """One period of one schedule: made once (unique), tried until it succeeds."""

    __tablename__ = "report_schedule_run"
    __table_args__ = (
        one_of("status", list(RunStatus)),
        UniqueConstraint("schedule_id", "as_of"),
        Index("ix_report_schedule_run_status", "status"),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    schedule_id: uuid.UUID = Field(foreign_key="report_schedule.id")
    as_of: date
    period_from: date
    period_to: date
    status: RunStatus = Field(sa_type=TextEnum(RunStatus, 10))
    # every attempt at this period, over every run of the job
    attempts: int = 0
    # the last failed attempt's error (kept after a later success, for the record)
    error: str | None = Field(default=None, sa_type=Text)
    snapshot_id: uuid.UUID | None = Field(default=None, foreign_key="report_snapshot.id")
    started_at: datetime = Field(sa_column=moment_column())
    finished_at: datetime | None = Field(default=None, sa_column=moment_column(nullable=True))
