"""The API's shapes for the facility register and the custody timeline."""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.access.principal import Tier
from app.access.tiers import exclusion
from app.cases.statuses import Confidence
from app.core.clock import latest_today
from app.core.dates import DATE_IN_FUTURE, PartialDate, PartialDateText
from app.core.types import (
    INPUT,
    NOT_TEXT,
    OUTPUT,
    CountryCode,
    Label,
    LanguageCode,
    PartialUpdate,
    RegionCode,
    ScriptCode,
    Text,
    details_rule,
)
from app.custody.models import PERIODS, CustodyKind, FacilityType
from app.sources.schemas import SourceIds

# The error type of an end that lies before its period's start.
END_BEFORE_START = "end_before_start"
# The error type of an ISO 3166-2 region outside the facility's country.
REGION_OUTSIDE_COUNTRY = "region_outside_country"


# The facility register ----------------------------------------------------------------


class FacilityName(BaseModel):
    model_config = INPUT

    value: Label
    script: ScriptCode
    language: LanguageCode | None = None


FacilityNames = Annotated[list[FacilityName], Field(min_length=1, max_length=20)]


def refuse_region_outside(country: str, region: str | None) -> None:
    """An ISO 3166-2 region belongs to its country ("BY-HM" is in BY)."""
    if region is not None and not region.startswith(f"{country}-"):
        raise PydanticCustomError(REGION_OUTSIDE_COUNTRY, "region must be a subdivision of country")


class FacilityCreate(BaseModel):
    model_config = INPUT

    names: FacilityNames
    country: CountryCode
    region: RegionCode | None = None
    type: FacilityType

    @model_validator(mode="after")
    def _region_in_country(self) -> Self:
        refuse_region_outside(self.country, self.region)
        return self


class FacilityUpdate(PartialUpdate):
    names: FacilityNames | None = None
    country: CountryCode | None = None
    region: RegionCode | None = None
    type: FacilityType | None = None


class FacilityNameRead(BaseModel):
    model_config = OUTPUT

    value: str
    script: str
    language: str | None


class FacilityRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    names: list[FacilityNameRead]
    country: str
    region: str | None
    type: FacilityType
    version: int
    created_at: datetime
    updated_at: datetime


# The custody timeline -----------------------------------------------------------------


class NoDetails(BaseModel):
    model_config = INPUT


class PunishmentCellDetails(BaseModel):
    model_config = INPUT

    # the term imposed, when known (the period's end says when it really ended)
    days: Annotated[int, Field(ge=1, le=366), NOT_TEXT] | None = None


class NewChargeDetails(BaseModel):
    model_config = INPUT

    # as the source gives it, e.g. "BY-CC 411" ("malicious disobedience to the administration")
    article: Label
    description: Label | None = None


class ExpectedReleaseDetails(BaseModel):
    model_config = INPUT

    # the expected release date itself (may lie ahead); the entry's effective date is the
    # day from which this expectation holds (a verdict, an appeal, a new term)
    release_on: PartialDateText


# What each kind of entry may (and must) say about itself.
DETAILS_BY_KIND: Mapping[CustodyKind, type[BaseModel]] = {
    CustodyKind.transfer: NoDetails,
    CustodyKind.incommunicado: NoDetails,
    CustodyKind.hunger_strike: NoDetails,
    CustodyKind.punishment_cell: PunishmentCellDetails,
    CustodyKind.new_charge: NewChargeDetails,
    CustodyKind.expected_release: ExpectedReleaseDetails,
}


def _details_by_kind_schema(schema: dict[str, Any]) -> None:
    """Publish what `details` holds for each kind, and which kinds name facilities or
    take an end."""
    rules = []
    for kind, model in DETAILS_BY_KIND.items():
        then = details_rule(model)
        if kind is CustodyKind.transfer:
            then["required"] = ["facility_id"]
            then["properties"]["facility_id"] = {"type": "string", "format": "uuid"}
        else:
            then["properties"] |= {
                "facility_id": {"type": "null"},
                "from_facility_id": {"type": "null"},
            }
        if kind not in PERIODS:
            then["properties"]["end_date"] = {"type": "null"}
        rules.append(
            {
                "if": {"properties": {"kind": {"const": kind.value}}, "required": ["kind"]},
                "then": then,
            }
        )
    schema["allOf"] = rules
    schema["properties"]["details"]["description"] = (
        "What the entry says about itself; its fields depend on kind."
    )


def _not_in_future(text: str, where: str) -> PartialDate:
    value = PartialDate.parse(text)
    if value.start > latest_today():
        raise PydanticCustomError(DATE_IN_FUTURE, f"{where} is in the future")
    return value


def refuse_end_before(start: PartialDate, end: PartialDate) -> None:
    """An end that certainly lies before the start (its last possible day precedes the
    start's first) is refused; partial dates that overlap are accepted."""
    if end.end < start.start:
        raise PydanticCustomError(END_BEFORE_START, "the end is before the start")


class CustodyEntryInput(BaseModel):
    model_config = ConfigDict(**INPUT, json_schema_extra=_details_by_kind_schema)

    kind: CustodyKind
    # when it happened (the start of a period); never in the future
    effective_date: PartialDateText
    confidence: Confidence
    # transfers only: where to (required), and where from (when known)
    facility_id: uuid.UUID | None = None
    from_facility_id: uuid.UUID | None = None
    # periods only (incommunicado, hunger strike, punishment cell): an end already known.
    # An open period is closed later at …/{entry_id}/end.
    end_date: PartialDateText | None = None
    note: Text | None = None
    source_ids: SourceIds = []
    details: dict[str, Any] = {}

    @model_validator(mode="after")
    def _fits_its_kind(self) -> Self:
        model = DETAILS_BY_KIND[self.kind].model_validate(self.details)
        self.details = model.model_dump(mode="json", exclude_none=True)
        start = _not_in_future(self.effective_date, "effective_date")
        is_transfer = self.kind is CustodyKind.transfer
        if is_transfer and self.facility_id is None:
            raise PydanticCustomError("missing_facility", "a transfer needs facility_id")
        if not is_transfer and (self.facility_id or self.from_facility_id):
            raise PydanticCustomError("facility_not_allowed", "only a transfer names facilities")
        if is_transfer and self.from_facility_id == self.facility_id:
            raise PydanticCustomError(
                "same_facility", "a transfer goes from one facility to another"
            )
        if self.end_date is not None:
            if self.kind not in PERIODS:
                raise PydanticCustomError("end_not_allowed", f"a {self.kind} has no end")
            refuse_end_before(start, _not_in_future(self.end_date, "end_date"))
        return self


class PeriodEndInput(BaseModel):
    model_config = INPUT

    # when the period ended; never in the future, never before its start
    effective_date: PartialDateText
    confidence: Confidence
    note: Text | None = None
    source_ids: SourceIds = []

    @model_validator(mode="after")
    def _not_ahead(self) -> Self:
        _not_in_future(self.effective_date, "effective_date")
        return self


class CustodyRetractionInput(BaseModel):
    model_config = INPUT

    reason: Annotated[Text, Field(min_length=1)]


class CustodyRetractionRead(BaseModel):
    model_config = OUTPUT

    recorded_at: datetime
    # restricted: absent below that clearance
    reason: str | None = None
    recorded_by: uuid.UUID | None = None


class PeriodEndRead(BaseModel):
    model_config = OUTPUT

    effective_date: str
    confidence: Confidence
    recorded_at: datetime
    # restricted: absent below that clearance
    note: str | None = None
    source_ids: list[uuid.UUID] | None = None
    recorded_by: uuid.UUID | None = None


class CustodyEntryRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    case_file_id: uuid.UUID
    kind: CustodyKind
    effective_date: str
    confidence: Confidence
    recorded_at: datetime
    facility_id: uuid.UUID | None
    from_facility_id: uuid.UUID | None
    details: dict[str, Any]
    retraction: CustodyRetractionRead | None
    # periods: when it ended, or null while it lasts; other kinds: null
    end: PeriodEndRead | None
    # restricted: absent below that clearance
    note: str | None = None
    source_ids: list[uuid.UUID] | None = None
    recorded_by: uuid.UUID | None = None


class CustodyTimeline(BaseModel):
    """A case file's custody timeline in effective order (ties: as recorded). Entries of a
    restricted kind (transfers, incommunicado, hunger strikes, punishment cells) are
    absent below the restricted tier."""

    model_config = OUTPUT

    case_file_id: uuid.UUID
    entries: list[CustodyEntryRead]
    # restricted: the facility of the latest standing transfer, and whether an
    # incommunicado period is open (only confirmed and reported entries count)
    current_facility_id: uuid.UUID | None = None
    incommunicado: bool | None = None


def timeline_exclusion(clearance: Tier) -> dict[str, Any]:
    """What to leave out of a custody timeline for this clearance, entries included."""
    hidden: dict[str, Any] = exclusion("custody_timeline", clearance)
    inner = exclusion("custody_event", clearance)
    if inner:
        hidden["entries"] = {"__all__": inner}
    return hidden
