"""What the change feed answers; what a batch takes and answers."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from app.cases.schemas import (
    CaseFields,
    CaseRead,
    CaseUpdate,
    StatusEventInput,
    StatusEventRead,
)
from app.cases.statuses import Confidence
from app.core.types import INPUT, OUTPUT, UNIQUE_ITEMS, Text
from app.custody.schemas import CustodyTimeline
from app.persons.schemas import PersonCreate, PersonRead, PersonUpdate
from app.recognition.criteria import CRITERIA, RecognitionStatus
from app.recognition.schemas import CriterionCode, DecisionRead
from app.sources.schemas import SourceRead


class ChangeKind(StrEnum):
    # The record as the partner may see it now: create it or replace its copy.
    upsert = "upsert"
    # The record left the partner's agreement (or was merged into one the partner may
    # not see): delete its copy.
    tombstone = "tombstone"
    # A person merged into another: their copy becomes a pointer to `merged_into`.
    redirect = "redirect"


class FeedItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(
        description="The audit trail's number of the write this state follows (for items of "
        "the starting snapshot: the number the snapshot was taken at)."
    )
    kind: Literal["person", "case"]
    id: uuid.UUID
    change: ChangeKind
    person: PersonRead | None = Field(
        default=None, description="An upserted person, fields up to the agreement's tier."
    )
    case: CaseRead | None = Field(
        default=None, description="An upserted case file, fields up to the agreement's tier."
    )
    status_events: list[StatusEventRead] | None = Field(
        default=None,
        description="An upserted case file's path: every status event and claim in effective "
        "order, with its state (retracted, superseded, confirmed, rejected).",
    )
    recognition: list[DecisionRead] | None = Field(
        default=None,
        description="An upserted person's recognition decisions, newest first, each with the "
        "shared case files it covers.",
    )
    custody: CustodyTimeline | None = Field(
        default=None,
        description="An upserted case file's custody timeline (transfers, incommunicado, "
        "hunger strikes …), the entries the agreement's tier shows.",
    )
    sources: list[SourceRead] | None = Field(
        default=None,
        description="Beside an upserted record, for an agreement that shares the restricted "
        "tier (where citations are shown): the sources its status events, claims, custody "
        "entries and recognition decisions cite, in id order, at that tier (a witness is "
        "never shown; a decision that also covers a case file not shared shows none), an "
        "empty list when it cites none; null below that tier. A partner reads sources only "
        "here.",
    )
    merged_into: uuid.UUID | None = Field(
        default=None, description="For a redirect: the person this one was merged into."
    )


class FeedPhase(StrEnum):
    snapshot = "snapshot"
    changes = "changes"


# What a streamed page's position line holds (after its items, one object a line).
POSITION_FIELDS = ("next", "phase", "caught_up", "reset")


class FeedPage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[FeedItem]
    next: str = Field(
        description="Where to continue: follow it to read on; keep it to resume later (it is "
        "never empty: a caught-up feed answers with its own position)."
    )
    phase: FeedPhase = Field(
        description="`snapshot` while the starting copy of everything shared is handed over "
        "(a new partner, or after its agreement changed), then `changes`."
    )
    caught_up: bool = Field(
        description="Every change committed when this page was read has been handed over."
    )
    reset: bool = Field(
        description="Drop your copy: the feed starts again with a snapshot, as the database "
        "no longer holds the position of your cursor (it was restored from a backup)."
    )


# Batches (POST /sync/batches) ---------------------------------------------------------------

BATCH_MAX_OPERATIONS = 500

ExternalId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="The partner's own id for the record (visible ASCII, no spaces): later "
        "operations and batches name the record by it.",
    ),
]


class RecordRef(BaseModel):
    """One of our records, named by the partner's external id or by our id (a record the
    partner received from the feed), exactly one of the two."""

    model_config = ConfigDict(
        **INPUT,
        json_schema_extra={"oneOf": [{"required": ["external_id"]}, {"required": ["id"]}]},
    )

    external_id: ExternalId | None = None
    id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.external_id is None) == (self.id is None):
            raise ValueError("name the record by external_id or by id, exactly one")
        return self


Version = Annotated[
    int,
    Field(
        ge=1,
        le=2**31 - 1,
        description="The version of the record the partner last saw (its ETag, or the "
        "feed's `version`): a record changed since makes the batch a conflict.",
    ),
]


class BatchPerson(PersonCreate):
    """A person as `POST /persons` takes it, fields up to the agreement's tier."""

    publish_consent: StrictBool = Field(
        default=False,
        description="Whether the family consented to publication (restricted tier). Left "
        "out: false, so that nobody a partner reports is published without a consent our "
        "caseworkers recorded.",
    )


class PersonCreateOperation(BaseModel):
    model_config = INPUT

    op: Literal["person.create"]
    external_id: ExternalId
    person: BatchPerson = Field(
        description="As `POST /persons` takes it, fields up to the agreement's tier. The "
        "person must have a case file the agreement shares by the end of the batch."
    )


class PersonUpdateOperation(BaseModel):
    model_config = INPUT

    op: Literal["person.update"]
    person: RecordRef
    version: Version
    changes: PersonUpdate


class CaseInput(CaseFields):
    """A case file as `POST /cases` takes it, without `person_id` (the operation names the
    person)."""

    status_history: Annotated[list[StatusEventInput], Field(min_length=1, max_length=100)]


class CaseCreateOperation(BaseModel):
    model_config = INPUT

    op: Literal["case.create"]
    external_id: ExternalId
    person: RecordRef
    case: CaseInput = Field(
        description="The case file; it must be one the agreement shares. Its events enter "
        "as `reported` unless the agreement trusts the partner's confirmations."
    )


class CaseUpdateOperation(BaseModel):
    model_config = INPUT

    op: Literal["case.update"]
    case: RecordRef
    version: Version
    changes: CaseUpdate


class EventAppendOperation(BaseModel):
    model_config = INPUT

    op: Literal["event.append"]
    external_id: ExternalId | None = None
    case: RecordRef
    version: Version = Field(description="The case file's version the partner last saw.")
    event: StatusEventInput = Field(
        description="A status event, or a claim (`confidence: unconfirmed`). `confirmed` is "
        "recorded as `reported` unless the agreement trusts the partner's confirmations."
    )


class RecognitionProposeOperation(BaseModel):
    model_config = INPUT

    op: Literal["recognition.propose"]
    person: RecordRef
    status: Literal[
        RecognitionStatus.political_prisoner,
        RecognitionStatus.politically_persecuted,
        RecognitionStatus.withdrawn,
    ]
    case_files: Annotated[list[RecordRef], Field(max_length=100)] = Field(
        default=[], description="The case files of the person the proposal concerns."
    )
    criteria: Annotated[list[CriterionCode], Field(max_length=len(CRITERIA)), UNIQUE_ITEMS] = []
    rationale: Text | None = None


BatchOperation = Annotated[
    PersonCreateOperation
    | PersonUpdateOperation
    | CaseCreateOperation
    | CaseUpdateOperation
    | EventAppendOperation
    | RecognitionProposeOperation,
    Field(discriminator="op"),
]


class BatchInput(BaseModel):
    model_config = INPUT

    operations: Annotated[
        list[BatchOperation], Field(min_length=1, max_length=BATCH_MAX_OPERATIONS)
    ] = Field(description="Applied in order, all in one transaction, or none.")


class BatchRecordType(StrEnum):
    person = "person"
    case = "case"
    status_event = "status_event"
    recognition_proposal = "recognition_proposal"


class BatchItemResult(BaseModel):
    model_config = OUTPUT

    index: int = Field(description="The operation's place in the batch, from 0.")
    op: str
    record_type: BatchRecordType
    id: uuid.UUID = Field(description="Our id of the record the operation wrote.")
    external_id: str | None = Field(description="The partner's id for it, if any.")
    version: int | None = Field(
        description="The person's or case file's version after the operation (the case "
        "file's, for an event)."
    )
    confidence: Confidence | None = Field(
        default=None, description="For an event: the confidence it was recorded with."
    )


class BatchResult(BaseModel):
    model_config = OUTPUT

    applied: Literal[True] = True
    items: list[BatchItemResult]


class BatchItemProblem(BaseModel):
    """Why one operation could not apply (the batch applied nothing)."""

    model_config = OUTPUT

    index: int
    op: str
    problem: dict[str, Any] = Field(
        description="The problem (RFC 9457) this operation alone would have been answered "
        "with; for a stale version, `current_version` and `current` (the record's values "
        "at the agreement's tier)."
    )


# Webhooks --------------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    model_config = INPUT

    url: Annotated[
        str,
        Field(
            min_length=8,
            max_length=2000,
            description="Where to send notifications: an https:// address of a public host.",
        ),
    ]


class WebhookRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    partner_id: uuid.UUID
    url: str
    notified_seq: int = Field(description="The feed position the endpoint was last told of.")
    failures: int = Field(description="Failed deliveries in a row.")
    next_attempt_at: datetime | None = Field(description="When a failed delivery is retried.")
    disabled_at: datetime | None
    disabled_reason: str | None
    created_at: datetime


class WebhookWithSecret(WebhookRead):
    secret: str = Field(
        description="The signing secret (`whsec_` and base64), shown once: verify each "
        "message's `webhook-signature` with it, as the Standard Webhooks specification says."
    )


class WebhookList(BaseModel):
    model_config = OUTPUT

    items: list[WebhookRead]
