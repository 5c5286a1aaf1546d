import uuid
from datetime import date, datetime
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from app.core.clock import today
from app.core.dates import DATE_IN_FUTURE, DayFrom1990
from app.core.types import INPUT, OUTPUT, UNIQUE_ITEMS, Label, Text
from app.recognition.criteria import CRITERIA, REQUIRES_CRITERIA, RecognitionStatus
from app.sources.schemas import SourceIds

CriterionCode = Annotated[
    str,
    Field(max_length=10, examples=["G3.1a", "PACE-a"], json_schema_extra={"enum": list(CRITERIA)}),
]


def _decision_schema(schema: dict[str, Any]) -> None:
    """Publish the rule between status and criteria: some decisions must cite one."""
    schema["if"] = {
        "properties": {"status": {"enum": sorted(REQUIRES_CRITERIA)}},
        "required": ["status"],
    }
    schema["then"] = {"properties": {"criteria": {"minItems": 1}}, "required": ["criteria"]}


class DecisionCreate(BaseModel):
    model_config = ConfigDict(**INPUT, json_schema_extra=_decision_schema)

    status: RecognitionStatus
    criteria: Annotated[list[CriterionCode], Field(max_length=len(CRITERIA)), UNIQUE_ITEMS] = []
    co_signers: Annotated[list[Label], Field(max_length=30)] = []
    # From 1990 (the centre's practice began then), and not after today.
    decided_on: DayFrom1990
    rationale: Text | None = None
    exclusion_reason: Text | None = None
    source_ids: SourceIds = []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        unknown = [code for code in self.criteria if code not in CRITERIA]
        if unknown:
            raise ValueError(
                f"unknown criteria: {', '.join(unknown)}; known: {', '.join(CRITERIA)}"
            )
        if len(set(self.criteria)) != len(self.criteria):
            raise ValueError("criteria lists a code twice")
        if self.status in REQUIRES_CRITERIA and not self.criteria:
            raise ValueError(f"a '{self.status}' decision must cite at least one criterion")
        if self.decided_on > today():
            raise PydanticCustomError(DATE_IN_FUTURE, "decided_on is in the future")
        return self


class DecisionRead(BaseModel):
    model_config = OUTPUT

    id: uuid.UUID
    person_id: uuid.UUID
    version: int
    status: RecognitionStatus
    criteria: list[str]
    decided_on: date
    recorded_at: datetime
    # restricted: absent below that clearance
    co_signers: list[str] | None = None
    rationale: str | None = None
    exclusion_reason: str | None = None
    source_ids: list[uuid.UUID] | None = None
    decided_by: uuid.UUID | None = None


class RecognitionRead(BaseModel):
    """A person's recognition: the current decision and every decision, newest first."""

    model_config = OUTPUT

    person_id: uuid.UUID
    status: RecognitionStatus
    version: int
    current: DecisionRead | None
    history: list[DecisionRead]
