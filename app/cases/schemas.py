import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cases.held import is_former_political_prisoner
from app.cases.models import (
    CaseFile,
    Confidentiality,
    DeprivationType,
    StatusEvent,
    StatusEventRetraction,
)
from app.cases.statuses import IN_CUSTODY, Confidence, Status
from app.core.dates import PartialDate, PartialDateText, Precision
from app.core.types import (
    INPUT,
    NOT_TEXT,
    OUTPUT,
    CountryCode,
    Label,
    Money,
    PartialUpdate,
    Text,
    inline_schema,
)
from app.recognition.criteria import RecognitionStatus
from app.sources.schemas import SourceIds

Article = Annotated[
    str, Field(pattern=r"^[0-9]{1,4}(-[0-9]{1,2})?(\.[0-9]{1,2})?$", examples=["342", "361-1"])
]


@dataclass(frozen=True)
class CaseFilters:
    status: str | None = None
    jurisdiction: str | None = None
    article: str | None = None
    detained_from: date | None = None
    detained_to: date | None = None
    person_id: uuid.UUID | None = None
    recognition_status: str | None = None
    former_political_prisoner: bool | None = None


class Charge(BaseModel):
    model_config = INPUT

    code: Annotated[str, Field(pattern=r"^[A-Z]{2}-[A-Z]{2,4}$", examples=["BY-CC"])]
    article: Article
    part: Annotated[str, Field(pattern=r"^[0-9]{1,2}$")] | None = None
    charged_on: PartialDateText | None = None
    description: Label | None = None


class CourtDecision(BaseModel):
    model_config = INPUT

    court: Label
    decided_on: PartialDateText
    term_months: Annotated[int, Field(ge=0, le=1200), NOT_TEXT] | None = None
    regime: Label | None = None
    fine_amount: Money | None = None
    fine_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None


class DetentionPlace(BaseModel):
    model_config = INPUT

    place: Label
    since: PartialDateText | None = None
    note: Text | None = None


class ReleaseReason(StrEnum):
    sentence_served = "sentence_served"
    acquitted = "acquitted"
    charges_dropped = "charges_dropped"
    parole = "parole"
    other = "other"


class DetainedDetails(BaseModel):
    model_config = INPUT

    place: Label | None = None
    authority: Label | None = None


class SentencedDetails(BaseModel):
    model_config = INPUT

    term_months: Annotated[int, Field(ge=0, le=1200), NOT_TEXT] | None = None
    regime: Label | None = None
    court: Label | None = None


class ReleasedDetails(BaseModel):
    model_config = INPUT

    release_reason: ReleaseReason


class PardonedDetails(BaseModel):
    model_config = INPUT

    pardon_decree: Label | None = None


class DeportedDetails(BaseModel):
    model_config = INPUT

    destination_country: CountryCode


class DiedInCustodyDetails(BaseModel):
    model_config = INPUT

    place_of_death: Label | None = None
    reported_cause: Text | None = None


# What each kind of status event may (and must) say about itself.
DETAILS_BY_STATUS: Mapping[Status, type[BaseModel]] = {
    Status.detained: DetainedDetails,
    Status.sentenced: SentencedDetails,
    Status.released: ReleasedDetails,
    Status.pardoned: PardonedDetails,
    Status.deported: DeportedDetails,
    Status.died_in_custody: DiedInCustodyDetails,
}


def validated_details(status: Status, details: dict[str, Any]) -> dict[str, Any]:
    model = DETAILS_BY_STATUS[status].model_validate(details)
    return model.model_dump(mode="json", exclude_none=True)


def _has_required_field(model: type[BaseModel]) -> bool:
    return any(field.is_required() for field in model.model_fields.values())


def details_by_status(status: Status) -> dict[str, Any]:
    """For a schema with `to_status` and `details`: the condition and what then holds."""
    model = DETAILS_BY_STATUS[status]
    return {
        "if": {"properties": {"to_status": {"const": status.value}}, "required": ["to_status"]},
        "then": {
            "properties": {"details": inline_schema(model)},
            # Details with a required field cannot be left out.
            **({"required": ["details"]} if _has_required_field(model) else {}),
        },
    }


def _details_by_status_schema(schema: dict[str, Any]) -> None:
    """Publish what `details` holds for each status (DETAILS_BY_STATUS)."""
    schema["allOf"] = [details_by_status(status) for status in DETAILS_BY_STATUS]
    schema["properties"]["details"]["description"] = (
        "What the event says about itself; its fields depend on to_status."
    )


class StatusEventInput(BaseModel):
    model_config = ConfigDict(**INPUT, json_schema_extra=_details_by_status_schema)

    to_status: Status
    effective_date: PartialDateText
    confidence: Confidence
    note: Text | None = None
    source_ids: SourceIds = []
    details: dict[str, Any] = {}

    @model_validator(mode="after")
    def _details_fit_the_status(self) -> Self:
        self.details = validated_details(self.to_status, self.details)
        return self


class CaseFields(BaseModel):
    model_config = INPUT

    jurisdiction: CountryCode
    deprivation_type: DeprivationType
    confidentiality: Confidentiality = Confidentiality.normal
    assigned_caseworkers: Annotated[list[uuid.UUID], Field(max_length=20)] = []
    charges: Annotated[list[Charge], Field(max_length=50)] = []
    court_decisions: Annotated[list[CourtDecision], Field(max_length=50)] = []
    detention_places: Annotated[list[DetentionPlace], Field(max_length=100)] = []


class CaseCreate(CaseFields):
    person_id: uuid.UUID
    # The first event must be `detained`; a longer list imports an existing history.
    status_history: Annotated[list[StatusEventInput], Field(min_length=1, max_length=100)]


class CaseUpdate(PartialUpdate):
    jurisdiction: CountryCode | None = None
    deprivation_type: DeprivationType | None = None
    confidentiality: Confidentiality | None = None
    assigned_caseworkers: Annotated[list[uuid.UUID], Field(max_length=20)] | None = None
    charges: Annotated[list[Charge], Field(max_length=50)] | None = None
    court_decisions: Annotated[list[CourtDecision], Field(max_length=50)] | None = None
    detention_places: Annotated[list[DetentionPlace], Field(max_length=100)] | None = None


class CaseRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID
    reference: str
    jurisdiction: str
    deprivation_type: DeprivationType
    charges: list[dict[str, Any]]
    court_decisions: list[dict[str, Any]]
    # Fields above the public tier are absent unless the caller's clearance allows them.
    confidentiality: Confidentiality | None = None
    assigned_caseworkers: list[uuid.UUID] | None = None
    detention_places: list[dict[str, Any]] | None = None
    status: Status
    status_since: str
    in_custody: bool
    detained_on: date
    version: int
    created_at: datetime
    updated_at: datetime
    recognition_status: RecognitionStatus = Field(
        description="The status of the latest recognition decision covering this case file;"
        " not_assessed when none does (a decision about another case file of the person"
        " does not count)"
    )
    former_political_prisoner: bool = Field(
        description="Recognised as a political prisoner for this case file and no longer"
        " held (derived)"
    )


class RetractionInput(BaseModel):
    model_config = INPUT

    reason: Annotated[Text, Field(min_length=1)]


class RetractionRead(BaseModel):
    model_config = OUTPUT

    reason: str
    recorded_at: datetime
    recorded_by: uuid.UUID | None


class StatusEventRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    case_file_id: uuid.UUID
    position: int
    from_status: Status | None
    to_status: Status
    effective_date: str
    confidence: Confidence
    collective_event_id: uuid.UUID | None
    recorded_at: datetime
    retraction: RetractionRead | None
    # restricted: absent below that clearance
    note: str | None = None
    details: dict[str, Any] | None = None
    source_ids: list[uuid.UUID] | None = None
    recorded_by: uuid.UUID | None = None


class StatusChange(BaseModel):
    """The answer to an appended event or a retraction: the event and the case file after it."""

    model_config = OUTPUT

    event: StatusEventRead
    case_status: Status
    case_version: int


class CaseHistory(BaseModel):
    model_config = OUTPUT

    case_file_id: uuid.UUID
    status: Status
    events: list[StatusEventRead]


def case_read(case: CaseFile) -> CaseRead:
    return CaseRead.model_validate(
        {
            **{
                name: getattr(case, name)
                for name in CaseRead.model_fields
                if name not in ("status_since", "in_custody", "former_political_prisoner")
            },
            "status_since": str(
                PartialDate(case.status_since, Precision(case.status_since_precision))
            ),
            "in_custody": Status(case.status) in IN_CUSTODY,
            "former_political_prisoner": is_former_political_prisoner(case),
        }
    )


def event_read(
    event: StatusEvent, retraction: StatusEventRetraction | None, from_status: Status | None
) -> StatusEventRead:
    return StatusEventRead.model_validate(
        {
            **{
                name: getattr(event, name)
                for name in StatusEventRead.model_fields
                if name not in ("effective_date", "from_status", "retraction")
            },
            "effective_date": str(
                PartialDate(event.effective_date, Precision(event.effective_precision))
            ),
            "from_status": from_status,
            "retraction": RetractionRead.model_validate(retraction) if retraction else None,
        }
    )
