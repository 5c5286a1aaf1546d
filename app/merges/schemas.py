import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool, StringConstraints

from app.core.types import INPUT, OUTPUT, Text


class MergeableField(StrEnum):
    """A person's single values: when both persons hold different ones, the merge request
    says whose the kept person takes. Lists (citizenships, affiliations, special risks)
    are joined; names, case files and recognition decisions move."""

    birth_date = "birth_date"
    gender = "gender"
    region = "region"
    occupation = "occupation"
    publish_consent = "publish_consent"
    health = "health"
    lawyer = "lawyer"
    notes = "notes"
    relatives = "relatives"
    contacts = "contacts"
    address = "address"


class Side(StrEnum):
    kept = "kept"
    merged = "merged"


Reason = Annotated[Text, StringConstraints(min_length=1, max_length=2000)]


class MergeCreate(BaseModel):
    model_config = INPUT

    merged_person_id: uuid.UUID = Field(
        description="The person folded into this one: their record becomes a redirect here"
    )
    merged_person_version: int = Field(
        ge=1, le=2**31 - 1, description="The version (ETag) of the merged person you read"
    )
    reason: Reason = Field(description="Why they are one person (the evidence)")
    resolutions: dict[MergeableField, Side] = Field(
        default_factory=dict,
        description=(
            "For each value both persons hold differently, whose value the kept person "
            "takes: `kept` (this one's) or `merged`. A value only one holds is taken as is"
        ),
    )
    keep_overlapping_custody: StrictBool = Field(
        default=False,
        description=(
            "Both persons are held now on case files of their own: true states that these "
            "are separate prosecutions of one person, to be kept both"
        ),
    )
    overrule_distinction: StrictBool = Field(
        default=False,
        description="The persons were stated to be different people: true withdraws that",
    )


class MovedRead(BaseModel):
    model_config = OUTPUT

    case_file_ids: list[uuid.UUID]
    recognition_decision_ids: list[uuid.UUID]
    names: int = Field(description="How many of the merged person's names moved")


class StayedRead(BaseModel):
    """What was added to the kept person while the merge was in effect: it stays."""

    model_config = OUTPUT

    case_file_ids: list[uuid.UUID]
    recognition_decision_ids: list[uuid.UUID]
    fields: list[str] = Field(
        description="Fields of the kept person changed since the merge: kept as they are now"
    )


class MergeRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID = Field(description="The person kept")
    merged_person_id: uuid.UUID
    reason: str
    merged_at: datetime
    merged_by: uuid.UUID | None
    resolutions: dict[MergeableField, Side]
    changed_fields: list[str] = Field(description="The kept person's fields the merge changed")
    moved: MovedRead
    unmerged_at: datetime | None
    unmerged_by: uuid.UUID | None
    stayed: StayedRead | None = Field(description="Set by the unmerge")


class MergeList(BaseModel):
    model_config = OUTPUT

    items: list[MergeRead]
