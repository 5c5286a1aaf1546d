import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
)

from app.cases.held import is_former_political_prisoner
from app.cases.models import (
    CaseFile,
    ClaimOutcome,
    ClaimResolution,
    Confidentiality,
    DeprivationType,
    StatusEvent,
    StatusEventRetraction,
)
from app.cases.statuses import Confidence, SentenceType, Status
from app.core.dates import PartialDate, PartialDateText, Precision
from app.core.ids import new_id
from app.core.types import (
    CHARGE_ITEM_FORMAT,
    INPUT,
    NOT_TEXT,
    OUTPUT,
    UNIQUE_ITEMS,
    CountryCode,
    Label,
    Money,
    PartialUpdate,
    Text,
)
from app.recognition.criteria import RecognitionStatus
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
    confidence: Confidence | None = None
    has_pending_claims: bool | None = None
    in_custody: bool | None = None
    sentence_type: SentenceType | None = None
    status_changed_from: date | None = None
    status_changed_to: date | None = None
    released_from: date | None = None
    released_to: date | None = None
    destination_country: str | None = None
    # The custody timeline (app/custody/filters.py): held there now; incommunicado now.
    facility_id: uuid.UUID | None = None
    incommunicado: bool | None = None
    recognition_status: str | None = None
    former_political_prisoner: bool | None = None

    def on_restricted_facts(self) -> bool:
        """Whether it filters on a fact of the restricted tier: where a person is held,
        whether anyone knows, where they were deported to (an event's details)."""
        return any(
            value is not None
            for value in (self.facility_id, self.incommunicado, self.destination_country)
        )


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


class ChargedSituation(StrEnum):
    """Where a person prosecuted but not held is."""

    released_pending_trial = "released_pending_trial"
    travel_ban = "travel_ban"
    wanted = "wanted"
    abroad_tried_in_absentia = "abroad_tried_in_absentia"
    other = "other"


class DetainedDetails(BaseModel):
    model_config = INPUT

    place: Label | None = None
    authority: Label | None = None


class ChargedDetails(BaseModel):
    model_config = INPUT

    situation: ChargedSituation | None = None
    authority: Label | None = None


class SentencedDetails(BaseModel):
    """The sentence: the one place it is recorded (the case file's `court_decisions` are
    derived from its `sentenced` events)."""

    model_config = INPUT

    sentence_type: SentenceType
    term_months: Annotated[int, Field(ge=0, le=1200), NOT_TEXT] | None = None
    regime: Label | None = None
    court: Label | None = None
    fine_amount: Money | None = None
    fine_currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None
    in_absentia: StrictBool | None = None
    # The charges (their `charge_id` on the case file) this verdict decided.
    charge_ids: Annotated[list[uuid.UUID], Field(max_length=50), UNIQUE_ITEMS] | None = None


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
    Status.charged: ChargedDetails,
    Status.sentenced: SentencedDetails,
    Status.released: ReleasedDetails,
    Status.pardoned: PardonedDetails,
    Status.deported: DeportedDetails,
    Status.died_in_custody: DiedInCustodyDetails,
}


def validated_details(status: Status, details: dict[str, Any]) -> dict[str, Any]:
    model = DETAILS_BY_STATUS[status].model_validate(details)
    return model.model_dump(mode="json", exclude_none=True)


class StatusEventFields(BaseModel):
    model_config = INPUT

    effective_date: PartialDateText
    confidence: Confidence = Field(
        description="confirmed and reported events take effect; an unconfirmed one is a "
        "claim, pending until it is confirmed or rejected"
    )
    note: Text | None = None
    source_ids: SourceIds = []
    details: BaseModel

    def details_json(self) -> dict[str, Any]:
        return self.details.model_dump(mode="json", exclude_none=True)

    @property
    def status(self) -> Status:
        # Each member of the union declares its own `to_status` literal.
        return Status(getattr(self, "to_status"))  # noqa: B009


class DetainedEvent(StatusEventFields):
    to_status: Literal[Status.detained]
    details: DetainedDetails = DetainedDetails()


class ChargedEvent(StatusEventFields):
    to_status: Literal[Status.charged]
    details: ChargedDetails = ChargedDetails()


class SentencedEvent(StatusEventFields):
    to_status: Literal[Status.sentenced]
    details: SentencedDetails


class ReleasedEvent(StatusEventFields):
    to_status: Literal[Status.released]
    details: ReleasedDetails


class PardonedEvent(StatusEventFields):
    to_status: Literal[Status.pardoned]
    details: PardonedDetails = PardonedDetails()


class DeportedEvent(StatusEventFields):
    to_status: Literal[Status.deported]
    details: DeportedDetails


class DiedInCustodyEvent(StatusEventFields):
    to_status: Literal[Status.died_in_custody]
    details: DiedInCustodyDetails = DiedInCustodyDetails()


# One schema per status (a discriminated union on `to_status`), so that a client sees what
# each kind of event needs: a release its reason, a deportation its country.
StatusEventInput = Annotated[
    DetainedEvent
    | ChargedEvent
    | SentencedEvent
    | ReleasedEvent
    | PardonedEvent
    | DeportedEvent
    | DiedInCustodyEvent,
    Field(discriminator="to_status"),
]
StatusEventInputs = TypeAdapter[Any](StatusEventInput)


def status_event_input(values: Mapping[str, Any]) -> StatusEventFields:
    """A status event input built from plain values (a collective event's transition)."""
    event: StatusEventFields = StatusEventInputs.validate_python(dict(values))
    return event


class CaseFields(BaseModel):
    model_config = INPUT

    jurisdiction: CountryCode
    deprivation_type: DeprivationType
    confidentiality: Confidentiality = Confidentiality.normal
    assigned_caseworkers: Annotated[list[uuid.UUID], Field(max_length=20)] = []
    charges: Charges = []
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
    detention_places: Annotated[list[DetentionPlace], Field(max_length=100)] | None = None


class CaseRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID
    reference: str
    jurisdiction: str
    deprivation_type: DeprivationType
    charges: list[ChargeRead]
    court_decisions: list[dict[str, Any]] = Field(
        description="The verdicts: derived from the path's `sentenced` events, whose details "
        "are the one record of a sentence"
    )
    court_decisions_unmatched: list[dict[str, Any]] | None = Field(
        default=None,
        description="Court decisions recorded (before sentences lived on their events) that "
        "match no `sentenced` event of the path; kept as they were recorded",
    )
    # Fields above the public tier are absent unless the caller's clearance allows them.
    confidentiality: Confidentiality | None = None
    assigned_caseworkers: list[uuid.UUID] | None = None
    detention_places: list[dict[str, Any]] | None = None
    status: Status
    status_since: PartialDateText
    status_confidence: Confidence = Field(
        description="How sure the current status is: the confidence of the event that set it"
    )
    in_custody: bool = Field(
        description="Held now: detained, or serving a custodial sentence (imprisonment, "
        "restriction of freedom in an open facility, compulsory treatment)"
    )
    sentence_type: SentenceType | None = Field(
        description="The type of the latest sentence on the path, if any"
    )
    pending_claims: int = Field(
        description="Unconfirmed events (claims) neither confirmed nor rejected yet; they do "
        "not move the status"
    )
    detained_on: PartialDateText = Field(
        description="The date of the path's first step (detained or charged), as precise as "
        "it is known: YYYY, YYYY-MM or YYYY-MM-DD"
    )
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


class SupersessionInput(BaseModel):
    """A corrected event that replaces a wrong one (a term, a date): the original stays on
    record, retracted with this reason, and the correction keeps its collective event."""

    model_config = INPUT

    reason: Annotated[Text, Field(min_length=1)]
    event: StatusEventInput


class ConfirmationInput(BaseModel):
    model_config = INPUT

    confidence: Literal[Confidence.confirmed, Confidence.reported] = Confidence.confirmed
    reason: Text | None = None
    source_ids: SourceIds = []


class RejectionInput(BaseModel):
    model_config = INPUT

    reason: Annotated[Text, Field(min_length=1)]


class RetractionRead(BaseModel):
    model_config = OUTPUT

    reason: str
    recorded_at: datetime
    recorded_by: uuid.UUID | None
    superseded_by: uuid.UUID | None = Field(
        description="The corrected event that replaced this one, if it was superseded"
    )


class ClaimResolutionRead(BaseModel):
    model_config = OUTPUT

    outcome: ClaimOutcome
    confidence: Confidence | None
    reason: str | None
    source_ids: list[uuid.UUID]
    recorded_at: datetime
    recorded_by: uuid.UUID | None


class EventState(StrEnum):
    in_effect = "in_effect"
    pending_claim = "pending_claim"
    rejected_claim = "rejected_claim"
    retracted = "retracted"
    superseded = "superseded"


class StatusEventRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    case_file_id: uuid.UUID
    position: int = Field(description="Order of recording in the case file")
    state: EventState = Field(
        description="in_effect: on the path; pending_claim / rejected_claim: an unconfirmed "
        "event not (yet) taking effect; retracted / superseded: withdrawn, kept on record"
    )
    from_status: Status | None = Field(
        description="The status on the path before this event's effective date"
    )
    to_status: Status
    effective_date: PartialDateText
    confidence: Confidence
    collective_event_id: uuid.UUID | None
    supersedes: uuid.UUID | None = Field(description="The event this one corrected, if any")
    recorded_at: datetime
    retraction: RetractionRead | None
    claim: ClaimResolutionRead | None = Field(
        description="How an unconfirmed event was settled: confirmed or rejected"
    )
    # restricted: absent below that clearance
    note: str | None = None
    details: dict[str, Any] | None = None
    source_ids: list[uuid.UUID] | None = None
    recorded_by: uuid.UUID | None = None
    reported_by_partner: uuid.UUID | None = Field(
        default=None,
        description="The partner organisation whose system sent this event (a sync batch)",
    )


class StatusChange(BaseModel):
    """The answer to a change of the path: the event and the case file after it."""

    model_config = OUTPUT

    event: StatusEventRead
    case_status: Status
    case_version: int


class CaseHistory(BaseModel):
    model_config = OUTPUT

    case_file_id: uuid.UUID
    status: Status
    events: list[StatusEventRead] = Field(
        description="Every event in effective order (ties: the order given), the withdrawn "
        "and the pending included"
    )


def case_read(case: CaseFile) -> CaseRead:
    return CaseRead.model_validate(
        {
            **{
                name: getattr(case, name)
                for name in CaseRead.model_fields
                if name not in ("status_since", "detained_on", "former_political_prisoner")
            },
            "status_since": str(
                PartialDate(case.status_since, Precision(case.status_since_precision))
            ),
            "detained_on": str(PartialDate(case.detained_on, Precision(case.detained_precision))),
            "former_political_prisoner": is_former_political_prisoner(case),
        }
    )


def event_read(
    event: StatusEvent,
    *,
    state: EventState,
    from_status: Status | None,
    retraction: StatusEventRetraction | None,
    resolution: ClaimResolution | None,
    supersedes: uuid.UUID | None,
) -> StatusEventRead:
    return StatusEventRead.model_validate(
        {
            **{
                name: getattr(event, name)
                for name in StatusEventRead.model_fields
                if name
                not in (
                    "effective_date",
                    "from_status",
                    "retraction",
                    "claim",
                    "state",
                    "supersedes",
                )
            },
            "state": state,
            "supersedes": supersedes,
            "effective_date": str(
                PartialDate(event.effective_date, Precision(event.effective_precision))
            ),
            "from_status": from_status,
            "retraction": RetractionRead.model_validate(retraction) if retraction else None,
            "claim": ClaimResolutionRead.model_validate(resolution) if resolution else None,
        }
    )
