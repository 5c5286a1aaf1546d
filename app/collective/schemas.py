import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cases.schemas import (
    DETAILS_BY_STATUS,
    StatusEventFields,
    status_event_input,
    validated_details,
)
from app.cases.statuses import Confidence, Status
from app.collective.models import KIND_FITS, CollectiveKind
from app.core.dates import PartialDateText
from app.core.types import (
    INPUT,
    OUTPUT,
    UNIQUE_ITEMS,
    CountryCode,
    Label,
    Text,
    details_rule,
)
from app.sources.schemas import SourceIds

MAX_CASE_FILES = 2000


# "Pardoned and expelled": the transitions an expulsion may follow.
EXPELLED_AFTER: frozenset[Status] = frozenset({Status.pardoned, Status.released})


def _when(status_condition: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    return {
        "if": {"properties": {"to_status": status_condition}, "required": ["to_status"]},
        "then": then,
    }


def _details_of(status: Status) -> dict[str, Any]:
    """What `details` holds (and whether it must be given) for a transition to `status`."""
    model = DETAILS_BY_STATUS[status]
    then = details_rule(model)
    if status is Status.deported:
        # The country at the top, or in details: exactly once.
        then = {
            "oneOf": [
                {
                    "required": ["destination_country"],
                    "properties": {
                        "destination_country": {"type": "string"},
                        "details": {"type": "object", "maxProperties": 0},
                    },
                },
                {
                    **then,
                    "properties": {**then["properties"], "destination_country": {"type": "null"}},
                },
            ]
        }
    return _when({"const": status.value}, then)


def _collective_schema(schema: dict[str, Any]) -> None:
    """Publish the rules of `_consistent`: each kind's transitions, what `details` holds
    for each status, and where a deportation's country and an expulsion are given."""
    expels = sorted(EXPELLED_AFTER)
    schema["allOf"] = [
        *(
            {
                "if": {"properties": {"kind": {"const": kind.value}}, "required": ["kind"]},
                "then": {"properties": {"to_status": {"enum": sorted(KIND_FITS[kind])}}},
            }
            for kind in CollectiveKind
            if KIND_FITS[kind] != frozenset(Status)
        ),
        *(_details_of(status) for status in Status if status is not Status.deported),
        _details_of(Status.deported),
        _when(
            {"not": {"const": Status.deported.value}},
            {"properties": {"destination_country": {"type": "null"}}},
        ),
        _when({"not": {"enum": expels}}, {"properties": {"expelled_to": {"type": "null"}}}),
    ]
    schema["properties"]["details"]["description"] = (
        "What each event says about itself, as for one status event of `to_status` "
        "(a release its release_reason, a pardon its pardon_decree)."
    )


class CollectiveEventCreate(BaseModel):
    model_config = ConfigDict(**INPUT, json_schema_extra=_collective_schema)

    title: Label
    kind: CollectiveKind
    effective_date: PartialDateText
    to_status: Status
    confidence: Confidence
    destination_country: CountryCode | None = Field(
        default=None,
        description="For to_status=deported: the country (or give it in details)",
    )
    expelled_to: CountryCode | None = Field(
        default=None,
        description='"Pardoned and expelled": after the pardon (or release), each person was '
        "deported to this country on the same date; both events are recorded, so reports "
        "count a pardon and a deportation",
    )
    note: Text | None = None
    source_ids: SourceIds = []
    details: dict[str, Any] = {}
    case_file_ids: Annotated[
        list[uuid.UUID], Field(min_length=1, max_length=MAX_CASE_FILES), UNIQUE_ITEMS
    ]

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(set(self.case_file_ids)) != len(self.case_file_ids):
            raise ValueError("case_file_ids lists a case file twice")
        if self.to_status not in KIND_FITS[self.kind]:
            allowed = ", ".join(sorted(KIND_FITS[self.kind]))
            raise ValueError(f"a {self.kind} collective event applies one of: {allowed}")
        if self.destination_country is not None:
            if self.to_status is not Status.deported:
                raise ValueError("destination_country is for to_status=deported")
            if "destination_country" in self.details:
                raise ValueError("give destination_country once: at the top or in details")
            self.details = {**self.details, "destination_country": self.destination_country}
        if self.expelled_to is not None and self.to_status not in EXPELLED_AFTER:
            raise ValueError("expelled_to follows a pardon or a release")
        self.details = validated_details(self.to_status, self.details)
        return self

    def steps(self) -> list[StatusEventFields]:
        """The events each case file receives: the transition, then the expulsion."""
        common = {
            "effective_date": self.effective_date,
            "confidence": self.confidence,
            "note": self.note,
            "source_ids": self.source_ids,
        }
        steps = [
            status_event_input({**common, "to_status": self.to_status, "details": self.details})
        ]
        if self.expelled_to is not None:
            steps.append(
                status_event_input(
                    {
                        **common,
                        "to_status": Status.deported,
                        "details": {"destination_country": self.expelled_to},
                    }
                )
            )
        return steps


class CollectiveRetractionInput(BaseModel):
    model_config = INPUT

    reason: Annotated[Text, Field(min_length=1)]


class CollectiveRetractionRead(BaseModel):
    model_config = OUTPUT

    reason: str
    recorded_at: datetime
    recorded_by: uuid.UUID | None


class CollectiveResult(BaseModel):
    model_config = OUTPUT

    case_file_id: uuid.UUID
    outcome: str
    from_status: Status | None
    event_id: uuid.UUID | None


class CollectiveEventSummary(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    title: str
    kind: CollectiveKind
    to_status: Status
    effective_date: str
    destination_country: str | None
    expelled_to: str | None
    note: str | None
    source_ids: list[uuid.UUID]
    case_file_count: int = Field(description="How many of its case files the caller may see")
    retraction: CollectiveRetractionRead | None = Field(
        description="Set when every event it made was retracted at once"
    )
    recorded_at: datetime
    recorded_by: uuid.UUID | None


class CollectiveEventRead(CollectiveEventSummary):
    results: list[CollectiveResult]
