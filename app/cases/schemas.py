import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from app.cases.models import (
    CaseFile,
    Confidentiality,
    DeprivationType,
    StatusEvent,
    StatusEventRetraction,
)
from app.cases.statuses import IN_CUSTODY, Confidence, Status
from app.core.dates import PartialDate, PartialDateText, Precision
from app.core.ids import new_id
from app.core.types import (
    CHARGE_ITEM_FORMAT,
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
from app.sources.schemas import SourceIds

# A reference into a code as the code itself writes it: an article number, with a hyphened
# addition ("361-1") and dotted sub-articles where the code numbers them so (Russia's code of
# administrative offences: "20.3.3"; Azerbaijan's criminal code: "206.3.2").
ARTICLE_PATTERN = r"^[0-9]{1,4}(?:-[0-9]{1,2})?(?:\.[0-9]{1,3}(?:-[0-9]{1,2})?){0,3}$"
Article = Annotated[
    str,
    Field(
        pattern=ARTICLE_PATTERN,
        description="An article as its code writes it: 342, 361-1, 19.34, 20.3.3, 206.3.2",
        examples=["342", "361-1", "20.3.3"],
    ),
]


@dataclass(frozen=True)
class CaseFilters:
    status: str | None = None
    jurisdiction: str | None = None
    article: str | None = None
    detained_from: date | None = None
    detained_to: date | None = None
    person_id: uuid.UUID | None = None


ChargeCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Z]{2}-[A-Z]{2,6}$",
        description="The country (ISO 3166-1 alpha-2) and its code: CC the criminal code,"
        " CAO the code of administrative offences, …",
        examples=["BY-CC", "RU-CAO", "AZ-CC"],
    ),
]
ChargePart = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,2}(?:\.[0-9]{1,2})?$",
        description="The part of the article: 2, or 1.1 where the code numbers parts so",
        examples=["2", "1.1"],
    ),
]
_ITEM_DIGITS = 3
_ITEM_LETTERS = 2


def _charge_item(value: str) -> str:
    value = unicodedata.normalize("NFC", value)
    is_number = value.isascii() and value.isdigit() and len(value) <= _ITEM_DIGITS
    is_letters = len(value) <= _ITEM_LETTERS and all(
        unicodedata.category(character).startswith("L") for character in value
    )
    if not (is_number or is_letters):
        raise ValueError("an item is a letter of any script or a number, without quotes: d, г, 1")
    return value


ChargeItem = Annotated[
    str,
    StringConstraints(min_length=1, max_length=_ITEM_DIGITS),
    AfterValidator(_charge_item),
    Field(
        description="The item (point) of the part, as the code writes it: «d» is d, «г» is г",
        examples=["d", "г", "1"],
        json_schema_extra={"format": CHARGE_ITEM_FORMAT},
    ),
]


class Charge(BaseModel):
    """One charge: where in which code, and when it was brought. `charge_id` names it, so
    that the decisions on the case file (a verdict) can say which charges they decided."""

    model_config = INPUT

    charge_id: Annotated[
        uuid.UUID | None,
        Field(
            description="The charge's id: send it back unchanged to keep the charge (and"
            " what refers to it) when the charges are changed; left out, the charge is new"
            " and gets one."
        ),
    ] = None
    code: ChargeCode
    article: Article
    part: ChargePart | None = None
    item: ChargeItem | None = None
    charged_on: PartialDateText | None = None
    description: Label | None = None


def _distinct_charge_ids(charges: list[Charge]) -> list[Charge]:
    ids = [charge.charge_id for charge in charges if charge.charge_id is not None]
    if len(ids) != len(set(ids)):
        raise ValueError("two charges have the same charge_id")
    return charges


Charges = Annotated[list[Charge], Field(max_length=50), AfterValidator(_distinct_charge_ids)]


def stored_charges(charges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Charges as the case file keeps them (their JSON form): each with its charge_id, a
    new one for a charge given without."""
    return [{**charge, "charge_id": charge.get("charge_id") or str(new_id())} for charge in charges]


class ChargeRead(BaseModel):
    """A charge as given, with its `charge_id`: the id by which the case file's decisions
    (a verdict) name the charges they decided, and which a change of the charges keeps when
    the charge is sent back with it."""

    model_config = OUTPUT

    charge_id: uuid.UUID
    code: str
    article: str
    part: str | None = None
    item: str | None = None
    # As given: "2021", "2021-08" or "2021-08-15".
    charged_on: str | None = None
    description: str | None = None


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
    charges: Charges = []
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
    charges: Charges | None = None
    court_decisions: Annotated[list[CourtDecision], Field(max_length=50)] | None = None
    detention_places: Annotated[list[DetentionPlace], Field(max_length=100)] | None = None


class CaseRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID
    reference: str
    jurisdiction: str
    deprivation_type: DeprivationType
    charges: list[ChargeRead]
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
                if name not in ("status_since", "in_custody")
            },
            "status_since": str(
                PartialDate(case.status_since, Precision(case.status_since_precision))
            ),
            "in_custody": Status(case.status) in IN_CUSTODY,
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
