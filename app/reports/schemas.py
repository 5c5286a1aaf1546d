"""The report's request and its JSON, field by field, so that the OpenAPI schema documents
every figure (docs/reports.md says what each counts)."""

import uuid
from datetime import date, datetime
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.cases.models import DeprivationType
from app.core.clock import latest_today, utcnow
from app.core.dates import DATE_IN_FUTURE, DayFrom1900, IsoMoment
from app.core.types import INPUT, CountryCode
from app.reports.models import ReportKind

Count = Annotated[int, Field(ge=0)]
Counts = dict[str, Count]
# The error type of a report's dates that do not follow each other (no schema compares two
# values, so a client learns it from the answer).
DATES_OUT_OF_ORDER = "dates_out_of_order"


def day_not_to_come(day: date) -> date:
    """A report describes a day that has begun somewhere on Earth (UTC+14), not one to come."""
    if day > latest_today():
        raise PydanticCustomError(DATE_IN_FUTURE, "the day has not come yet")
    return day


class Period(BaseModel):
    model_config = INPUT

    from_: DayFrom1900 = Field(alias="from", description="The first day of the period")
    to: DayFrom1900 = Field(description="The last day of the period (included)")


class ReportCreate(BaseModel):
    """What to report on. Dates are days (YYYY-MM-DD); `as_known_at` (a moment with its
    offset) defaults to now."""

    model_config = INPUT

    kind: ReportKind = ReportKind.status
    as_of: DayFrom1900 = Field(description="The day the held figures describe")
    period: Period
    as_known_at: IsoMoment | None = Field(
        default=None,
        description="Count only what had been recorded by then; default: the generation time "
        "(less a few seconds for writes under way)",
    )
    baseline: DayFrom1900 = Field(
        default=date(2020, 1, 1), description="Cumulative figures count from this day"
    )
    jurisdiction: CountryCode | None = Field(
        default=None, description="Only case files of this country; all when absent"
    )
    held_deprivation_types: Annotated[list[DeprivationType], Field(min_length=1)] | None = Field(
        default=None,
        description="Which deprivation types count as held; default: pretrial custody, "
        "imprisonment, restriction of freedom, psychiatric",
    )
    chart_years: Annotated[int, Field(ge=1, le=10)] = Field(
        default=3, description="How many years of months the series (and charts) cover"
    )

    @field_validator("as_of")
    @classmethod
    def _not_to_come(cls, day: date) -> date:
        return day_not_to_come(day)

    @field_validator("as_known_at")
    @classmethod
    def _known_by_now(cls, moment: datetime | None) -> datetime | None:
        # A report "as known at" a moment to come could not be reproduced.
        if moment is not None and moment > utcnow():
            raise PydanticCustomError(DATE_IN_FUTURE, "`as_known_at` is in the future")
        return moment

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        for earlier, later, text in (
            (self.period.from_, self.period.to, "the period's `from` is after its `to`"),
            (self.period.to, self.as_of, "the period ends after `as_of`"),
            (self.baseline, self.as_of, "`baseline` is after `as_of`"),
        ):
            if earlier > later:
                raise PydanticCustomError(DATES_OUT_OF_ORDER, text)
        return self


class ReportParameters(BaseModel):
    """The parameters a report was generated with, resolved (defaults filled in)."""

    as_of: date
    period: dict[Literal["from", "to"], date]
    as_known_at: datetime
    baseline: date
    jurisdiction: str | None
    held_deprivation_types: list[DeprivationType]
    chart_years: int


class HeldFigures(BaseModel):
    total: Count = Field(description="Persons in custody on as_of (each person once)")
    recognised: Count = Field(description="…of whom recognised political prisoners")
    politically_persecuted: Count = Field(
        description="…recognised as politically persecuted (not as political prisoners)"
    )
    by_status: Counts
    by_deprivation: Counts
    by_sentence_type: Counts
    by_jurisdiction: Counts


class AtLibertyFigures(BaseModel):
    prosecuted: Count = Field(description="Persons with an open case file, not in custody")


class SentenceFigures(BaseModel):
    total: Count
    by_type: Counts
    by_term_band: Counts


class ReleaseFigures(BaseModel):
    total: Count
    by_mode: Counts


class DeportationFigures(BaseModel):
    total: Count
    by_destination: Counts


class PeriodFigures(BaseModel):
    new_detentions: Count
    new_recognitions: Count
    sentences: SentenceFigures
    released: ReleaseFigures
    deported: DeportationFigures
    released_foreign_by_citizenship: Counts
    deaths_in_custody: Count


class CumulativeFigures(BaseModel):
    deaths_in_custody_since_baseline: Count
    detentions_since_baseline: Count
    releases_since_baseline: Count


class ClaimItem(BaseModel):
    to_status: str
    effective_date: str
    name: str | None = Field(description="Only when the person may be named publicly")


class UnconfirmedClaims(BaseModel):
    count: Count
    by_status: Counts
    items: list[ClaimItem]


class ClaimFigures(BaseModel):
    unconfirmed: UnconfirmedClaims


class Breakdowns(BaseModel):
    foreign_by_citizenship: Counts
    by_gender: Counts
    by_age_band: Counts
    by_region: Counts
    by_article: Counts
    by_sentence_band: Counts


class CollectiveEventFigures(BaseModel):
    id: uuid.UUID
    title: str
    kind: str
    effective_date: str
    to_status: str
    destination_country: str | None
    expelled_to: str | None
    case_files: Count
    foreign_nationals: Count


class HeldInMonth(BaseModel):
    month_end: date
    held: Count
    recognised: Count


class ReleasesInMonth(BaseModel):
    month: str
    by_mode: Counts


class Series(BaseModel):
    held_by_month: list[HeldInMonth]
    releases_by_month: list[ReleasesInMonth]


class Figures(BaseModel):
    held: HeldFigures
    at_liberty: AtLibertyFigures
    period: PeriodFigures
    cumulative: CumulativeFigures
    claims: ClaimFigures
    breakdowns: Breakdowns
    by_collective_event: list[CollectiveEventFigures]
    series: Series


class NamedPerson(BaseModel):
    name: str


class Movement(BaseModel):
    count: Count
    named: list[NamedPerson] = Field(description="Those who may be named publicly")


class Differences(BaseModel):
    previous_id: uuid.UUID | None = Field(
        description="The previous snapshot of the series; none for the first"
    )
    previous_as_of: date | None
    entered_custody: Movement | None
    left_custody: Movement | None
    died: Movement | None


class ReportRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: ReportKind
    generated_at: datetime
    generated_by: uuid.UUID | None
    generator_version: str
    parameters: ReportParameters
    content_sha256: str = Field(
        description="SHA-256 of the canonical JSON (RFC 8785) of kind, generator_version, "
        "parameters and figures"
    )
    figures: Figures
    differences: Differences


class ReportSummary(BaseModel):
    """A snapshot in the list: its parameters and hash, without the figures."""

    id: uuid.UUID
    kind: ReportKind
    generated_at: datetime
    generated_by: uuid.UUID | None
    parameters: ReportParameters
    content_sha256: str


class PublicListEntry(BaseModel):
    names: list[str] = Field(description="The person's public spellings")
    birth_year: int | None
    region: str | None
    articles: list[str]
    sentence_type: str | None
    term_months: int | None
    held_since: date = Field(description="The day the current stretch of custody began")
