import uuid
from datetime import datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.cases.schemas import StatusEventInput, details_by_status, validated_details
from app.cases.statuses import Confidence, Status
from app.collective.models import CollectiveKind
from app.core.dates import PartialDateText
from app.core.types import INPUT, OUTPUT, UNIQUE_ITEMS, CountryCode, Label, Text
from app.sources.schemas import SourceIds

MAX_CASE_FILES = 2000


def _collective_schema(schema: dict[str, Any]) -> None:
    """Publish the rules of `_consistent`: details by status, as for one status event, and
    a deportation's country given once, at the top or in `details`."""
    deported = details_by_status(Status.deported)
    deported["then"] = {
        "oneOf": [
            {
                "required": ["destination_country"],
                "properties": {
                    "destination_country": {"type": "string"},
                    "details": {"type": "object", "maxProperties": 0},
                },
            },
            {
                **deported["then"],
                "properties": {
                    **deported["then"]["properties"],
                    "destination_country": {"type": "null"},
                },
            },
        ]
    }
    schema["allOf"] = [
        deported if status is Status.deported else details_by_status(status) for status in Status
    ]


class CollectiveEventCreate(BaseModel):
    model_config = ConfigDict(**INPUT, json_schema_extra=_collective_schema)

    title: Label
    kind: CollectiveKind
    effective_date: PartialDateText
    to_status: Status
    confidence: Confidence
    destination_country: CountryCode | None = None
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
        if self.to_status is Status.deported and self.destination_country is not None:
            if "destination_country" in self.details:
                raise ValueError("give destination_country once: at the top or in details")
            self.details = {**self.details, "destination_country": self.destination_country}
        self.details = validated_details(self.to_status, self.details)
        return self

    def transition(self) -> StatusEventInput:
        return StatusEventInput(
            to_status=self.to_status,
            effective_date=self.effective_date,
            confidence=self.confidence,
            note=self.note,
            source_ids=self.source_ids,
            details=self.details,
        )


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
    note: str | None
    source_ids: list[uuid.UUID]
    case_file_count: int = Field(description="How many of its case files the caller may see")
    recorded_at: datetime
    recorded_by: uuid.UUID | None


class CollectiveEventRead(CollectiveEventSummary):
    results: list[CollectiveResult]
