"""The API's shapes for report schedules and their runs."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cases.models import DeprivationType
from app.core.types import INPUT, OUTPUT, CountryCode, Label, not_nullable
from app.reports.schedules.models import RunStatus, ScheduleOrigin
from app.reports.schedules.periods import Cadence

DEFAULT_BASELINE = date(2020, 1, 1)

HeldDeprivationTypes = Annotated[
    list[DeprivationType],
    Field(
        min_length=1,
        max_length=len(DeprivationType),
        description="Which deprivation types count as held; absent or null: the report's "
        "default (docs/reports.md)",
    ),
]


class ReportScheduleCreate(BaseModel):
    model_config = INPUT

    name: Label
    cadence: Cadence = Field(
        description="weekly: each ISO week (Monday to Sunday), as of its Sunday; monthly: "
        "each calendar month, as of its last day"
    )
    jurisdiction: CountryCode | None = None
    baseline: date = Field(
        default=DEFAULT_BASELINE, description="Where the cumulative figures start"
    )
    held_deprivation_types: HeldDeprivationTypes | None = None
    enabled: bool = True


# What a PATCH may not clear; the jurisdiction (all of them) and the held types (the
# default) may be cleared with null.
_REQUIRED_ONCE_SET = ("name", "baseline", "enabled")


def _update_schema(schema: dict[str, Any]) -> None:
    not_nullable(schema, _REQUIRED_ONCE_SET)


class ReportScheduleUpdate(BaseModel):
    """Every field but the cadence (another cadence is another schedule); an absent field
    stays as it is."""

    model_config = ConfigDict(**INPUT, json_schema_extra=_update_schema)

    name: Label | None = None
    jurisdiction: CountryCode | None = None
    baseline: date | None = None
    held_deprivation_types: HeldDeprivationTypes | None = None
    enabled: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        cleared = [
            name
            for name in _REQUIRED_ONCE_SET
            if name in self.model_fields_set and getattr(self, name) is None
        ]
        if cleared:
            raise ValueError(f"cannot be null: {', '.join(cleared)}")
        return self


class ReportScheduleRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    name: str
    cadence: Cadence
    origin: ScheduleOrigin = Field(
        description="api: made by a coordinator; configuration: set in "
        "HABEAS_REPORT_SCHEDULES, read-only here"
    )
    jurisdiction: str | None
    baseline: date
    held_deprivation_types: list[DeprivationType] | None
    enabled: bool
    version: int
    created_by: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class ReportScheduleRunRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    schedule_id: uuid.UUID
    as_of: date
    period_from: date
    period_to: date
    status: RunStatus = Field(
        description="failed: every attempt of the last try failed; the next run of the "
        "job tries again"
    )
    attempts: int = Field(description="Attempts at this period so far, over every run")
    error: str | None = Field(description="The last failed attempt's error")
    snapshot_id: uuid.UUID | None = Field(description="The report made, once succeeded")
    started_at: datetime
    finished_at: datetime | None
